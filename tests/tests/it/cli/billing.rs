//! Plans, usage, limits and roles from the CLI: the catalog, usage that
//! counts what was made, the FREE plan's limits, and what FREE refuses
//! (custom roles) or cannot find (an unknown plan), with nothing written.

use super::*;

/// The `subtreeQuantity` of one metric in `tenantry usage -o json`.
fn used(config: &Path, organization: &str, metric: &str) -> i64 {
    let usage = json(config, &["usage", "-O", organization, "--metric", metric]);
    let usages = usage["usages"].as_array().unwrap();
    assert_eq!(usages.len(), 1, "{usage}");
    count(&usages[0]["subtreeQuantity"])
}

/// A proto3 JSON int64 (a string, absent when zero).
fn count(value: &serde_json::Value) -> i64 {
    value.as_str().map_or(0, |s| s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_a_new_project_within_the_free_plans_limit() {
    let (sandbox, _ada, organization, config) = signed_in("ada@example.com").await;
    let path = config.path();
    let plans = tenantry(path, &["plans", "list"], "");
    assert_eq!(code(&plans), 0, "{}", stderr(&plans));
    assert!(stdout(&plans).contains("plans/free"), "{}", stdout(&plans));
    let free = json(path, &["plans", "get", "free"]);
    let free_projects = count(&free["limits"]["projects"]);
    assert!(free_projects > 0, "{free}");

    let before = used(path, &organization, "projects");
    let created = tenantry(
        path,
        &["projects", "create", "-O", &organization, "Web"],
        "",
    );
    assert_eq!(code(&created), 0, "{}", stderr(&created));
    assert_eq!(used(path, &organization, "projects"), before + 1);

    // The effective project limit is FREE's, from the plan, with the usage.
    let limits = json(
        path,
        &["limits", "-O", &organization, "--metric", "projects"],
    );
    let limit = &limits["effectiveLimits"][0];
    assert_eq!(limit["metric"], "METRIC_PROJECTS", "{limits}");
    assert_eq!(count(&limit["value"]), free_projects, "{limits}");
    assert_eq!(limit["source"], "LIMIT_SOURCE_PLAN", "{limits}");
    assert_eq!(count(&limit["used"]), before + 1, "{limits}");
    let table = tenantry(path, &["limits", "-O", &organization], "");
    let line = stdout(&table)
        .lines()
        .find(|l| l.trim_start().starts_with("projects "))
        .map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("{}", stdout(&table)));
    assert!(
        line.contains(&free_projects.to_string()) && line.contains("plan"),
        "{line}"
    );

    // An unknown metric is the caller's mistake, before any call.
    let bad = tenantry(
        path,
        &["usage", "-O", &organization, "--metric", "bogus"],
        "",
    );
    assert_eq!(code(&bad), 6, "{}", stderr(&bad));
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_refuses_custom_roles_and_an_unknown_plan_changes_nothing() {
    let (sandbox, _ada, organization, config) = signed_in("ada@example.com").await;
    let path = config.path();
    let custom = ["roles", "list", "-O", &organization, "--kind", "custom"];
    assert_eq!(json(path, &custom), serde_json::json!([]));

    // FREE lacks the custom_roles feature: FAILED_PRECONDITION, exit 2.
    let role = [
        "roles",
        "create",
        "-O",
        &organization,
        "Auditor",
        "--permission",
        "project.read",
    ];
    let refused = tenantry(path, &role, "");
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("FEATURE_NOT_INCLUDED"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(json(path, &custom), serde_json::json!([]));
    let all = json(path, &["roles", "list", "-O", &organization]);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"roles/admin"), "{names:?}");

    // An unknown plan is not found, and the subscription stays on FREE.
    let subscription = json(path, &["subscription", "get", "-O", &organization]);
    assert_eq!(subscription["plan"], "plans/free", "{subscription}");
    let unknown = tenantry(path, &["plans", "get", "platinum"], "");
    assert_eq!(code(&unknown), 7, "{}", stderr(&unknown));
    let change = [
        "subscription",
        "change-plan",
        "-O",
        &organization,
        "platinum",
    ];
    let changed = tenantry(path, &change, "");
    assert!(matches!(code(&changed), 6 | 7), "{}", stderr(&changed));
    let after = json(path, &["subscription", "get", "-O", &organization]);
    assert_eq!(after, subscription);
    sandbox.shutdown().await.unwrap();
}
