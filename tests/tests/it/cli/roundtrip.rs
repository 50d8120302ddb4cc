//! Relationships of a registered type, all through the binary: a service
//! account registers the example schema, writes relationships one by one
//! and from a file, exports them, deletes them, and imports the export to
//! get the same set back.

use super::*;

const ROOT: &str = "root@example.com";

/// The sandbox, and contexts signed in as the platform administrator and
/// as a service account (for the administrator's organization) that
/// registered the example resource types; the organization's project.
struct Deployer {
    sandbox: Sandbox,
    admin: tempfile::TempDir,
    service: tempfile::TempDir,
    project: String,
    organization: String,
}

async fn deployer() -> Deployer {
    let sandbox = Sandbox::builder()
        .configure(|config| config.identity.platform_admins = vec![ROOT.into()])
        .start()
        .await
        .unwrap();
    let (sandbox, _root, organization, admin) = signed_in_on(sandbox, ROOT).await;
    let account = json(admin.path(), &["service-accounts", "create", "deployer"]);
    let account = account["name"].as_str().unwrap();
    let created = json(
        admin.path(),
        &["service-accounts", "credentials", "create", account],
    );
    let client_id = created["credential"]["clientId"].as_str().unwrap();
    let secret = created["clientSecret"].as_str().unwrap();
    let credentials = ["--client-id", client_id, "--client-secret", secret];

    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/schema/schema.yaml");
    let endpoint = format!("http://{}", sandbox.server.grpc_addr);
    let apply = [
        &["schema", "apply", schema.to_str().unwrap()],
        &credentials[..],
    ]
    .concat();
    let apply = [&apply[..], &["--endpoint", &endpoint]].concat();
    let applied = tenantry(admin.path(), &apply, "");
    assert_eq!(code(&applied), 0, "{}", stderr(&applied));

    let service = context(&sandbox);
    let login = [
        &["login"],
        &credentials[..],
        &["--organization", &organization],
    ]
    .concat();
    let signed = tenantry(service.path(), &login, "");
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    let project = json(
        admin.path(),
        &["projects", "create", "-O", &organization, "Web"],
    );
    let project = tenantry_testkit::last_id(project["name"].as_str().unwrap());
    Deployer {
        sandbox,
        admin,
        service,
        project,
        organization: format!("organizations/{organization}"),
    }
}

/// `relationships export deployment` and `tunnel_config` in the
/// organization, sorted.
fn exported(config: &Path, organization: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for kind in ["deployment", "tunnel_config"] {
        let output = tenantry(
            config,
            &[
                "relationships",
                "export",
                kind,
                "--organization",
                organization,
            ],
            "",
        );
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        lines.extend(stdout(&output).lines().map(str::to_string));
    }
    lines.sort();
    lines
}

/// `relationships import` of `text` from a file, in one write: a parent
/// and the child attached to it after it may come in the same batch.
fn import(config: &Path, file: &str, text: &str) {
    let file = config.join(file);
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let args = ["relationships", "import", file];
    let imported = tenantry(config, &args, "");
    assert_eq!(code(&imported), 0, "{}", stderr(&imported));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_relationships_import_back_to_the_same_set() {
    let Deployer {
        sandbox,
        admin,
        service,
        project,
        organization,
    } = deployer().await;
    let path = service.path();
    let web = format!("deployment:web#parent@project:{project}");
    let written = tenantry(path, &["relationships", "write", &web, "--create"], "");
    assert_eq!(code(&written), 0, "{}", stderr(&written));
    import(
        path,
        "more.txt",
        &format!(
            "# the API and its tunnel\ndeployment:api#parent@project:{project}\n\
         tunnel_config:edge#parent@deployment:api\n"
        ),
    );

    let before = exported(path, &organization);
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.contains(&web), "{before:?}");
    let read = json(
        path,
        &[
            "relationships",
            "read",
            "deployment",
            "--relation",
            "parent",
        ],
    );
    assert_eq!(read.as_array().map(Vec::len), Some(2), "{read}");

    // Deleted, they are gone; the export imports back to the same set.
    let delete = [
        &["relationships", "delete"],
        &before.iter().map(String::as_str).collect::<Vec<_>>()[..],
    ]
    .concat();
    let deleted = tenantry(path, &delete, "");
    assert_eq!(code(&deleted), 0, "{}", stderr(&deleted));
    assert_eq!(exported(path, &organization), Vec::<String>::new());
    import(path, "backup.txt", &(before.join("\n") + "\n"));
    assert_eq!(exported(path, &organization), before);
    let again = json(
        path,
        &[
            "relationships",
            "read",
            "deployment",
            "--relation",
            "parent",
        ],
    );
    assert_eq!(again, read);
    // The administrator sees them too.
    assert_eq!(exported(admin.path(), &organization), before);
    sandbox.shutdown().await.unwrap();
}
