//! The runbook's load-test catalog (docs/runbook.md): it raises the free
//! plan's limits and nothing else of any plan, organizations already on
//! the free plan get them when billing restarts with it, and removing it
//! restores the built-in limits.

use super::*;
use tenantry_billing::catalog::{self, PlanBody};
use tenantry_testkit::people;

/// The first TOML block of the runbook's section on the free plan.
fn load_test_catalog() -> String {
    let runbook = include_str!("../../../../docs/runbook.md");
    let section = &runbook[runbook
        .find("## Raise or restore the free plan's limits")
        .expect("the runbook has the section")..];
    let start = section.find("```toml\n").expect("a TOML block") + "```toml\n".len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_string()
}

fn catalog_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load-test-plans.toml");
    std::fs::write(&path, load_test_catalog()).unwrap();
    (dir, path)
}

#[test]
fn the_runbooks_load_test_catalog_raises_only_the_free_plans_limits() {
    let (_dir, path) = catalog_file();
    let raised = catalog::built_in(Some(&path)).expect("the runbook's file loads");
    let built_in = catalog::built_in(None).unwrap();
    assert_eq!(raised[1..], built_in[1..], "the other plans stay built in");
    let (free, before) = (&raised[0].body, &built_in[0].body);
    assert_eq!(
        PlanBody {
            limits: before.limits.clone(),
            ..free.clone()
        },
        *before,
        "everything but the limits is the built-in free plan's"
    );
    let (raised, before) = (&free.limits, &before.limits);
    for (raised, before) in [
        (raised.projects, before.projects),
        (raised.members, before.members),
        (raised.teams, before.teams),
        (raised.sub_organizations, before.sub_organizations),
        (raised.api_keys, before.api_keys),
        (raised.deployments_per_month, before.deployments_per_month),
    ] {
        assert_eq!(raised, before.map(|limit| limit * 100));
    }
    for (class, limit) in &before.rate_limits_per_minute {
        assert_eq!(raised.rate_limits_per_minute[class], limit * 100, "{class}");
    }
}

#[tokio::test]
async fn a_free_organization_gets_the_raised_limits_when_billing_restarts_and_loses_them_after() {
    let (_dir, path) = catalog_file();
    let sandbox = Sandbox::builder().start().await.unwrap();
    let channel = sandbox.channel().await.unwrap();
    let (owner, organization) = people::sign_up(&channel, "load@example.com", "Load").await;
    let projects = |channel: Channel, token: String, name: String| {
        let parent = format!("organizations/{organization}");
        async move {
            org::project_service_client::ProjectServiceClient::new(channel)
                .create_project(authed(
                    org::CreateProjectRequest {
                        parent,
                        project: Some(org::Project {
                            display_name: name,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
        }
    };
    // The first organization has its first project; the free plan allows
    // three.
    for name in ["two", "three"] {
        projects(channel.clone(), owner.token.clone(), name.into())
            .await
            .unwrap();
    }
    let refused = projects(channel.clone(), owner.token.clone(), "four".into())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    let mut sandbox = sandbox;
    for (catalog, allowed) in [(Some(path.clone()), true), (None, false)] {
        let stopped = sandbox.stop().await.unwrap();
        sandbox = Sandbox::builder()
            .resume(stopped)
            .configure(move |config| config.billing.catalog_file = catalog)
            .start()
            .await
            .unwrap();
        let channel = sandbox.channel().await.unwrap();
        let name = format!("after restart {allowed}");
        let created = projects(channel, owner.token.clone(), name).await;
        assert_eq!(created.is_ok(), allowed, "{created:?}");
    }
    sandbox.shutdown().await.unwrap();
}
