//! `tenantry export` writes a file that `tenantry import` reads back
//! (nothing new the second time); a refused record stops the import with
//! the line to resume from, and the resumed import finishes the job.

use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::clients::Members;
use tenantry_testkit::{authed, storages};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imports_back_and_a_refused_line_says_where_to_resume() {
    for storage in storages() {
        let sandbox = Sandbox::builder()
            .storage(storage)
            .configure(|config| config.identity.platform_admins = vec!["root@example.com".into()])
            .start()
            .await
            .unwrap();
        let (sandbox, _root, _, config) = signed_in_on(sandbox, "root@example.com").await;
        let channel = sandbox.channel().await.unwrap();
        let (ada, acme) = people::sign_up(&channel, "ada@example.com", "Ada").await;
        let path = config.path();

        let file = path.join("deployment.jsonl");
        let file = file.to_str().unwrap();
        let exported = tenantry(path, &["export", file], "");
        assert_eq!(code(&exported), 0, "{}", stderr(&exported));
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.lines().next().unwrap().starts_with(r#"{"user":"#),
            "{text}"
        );
        assert!(
            text.contains(&format!(r#""name":"organizations/{acme}""#)),
            "{text}"
        );
        assert!(
            !text.contains("passwordHash"),
            "an export carries no password hash"
        );
        let again = json(path, &["import", file]);
        assert_eq!(
            again["created"],
            serde_json::Value::Null,
            "nothing new: {again}"
        );
        assert_eq!(
            again["existing"].as_str().unwrap(),
            text.lines().count().to_string()
        );

        let x = uuid::Uuid::now_v7();
        let lines = format!(
            "# a new person and her membership\n\
             {{\"user\":{{\"name\":\"users/{x}\",\"email\":\"x@example.com\",\"displayName\":\"X\"}}}}\n\
             {{\"membership\":{{\"name\":\"organizations/{acme}/memberships/{x}\",\"roles\":[\"roles/owner\"]}}}}\n"
        );
        let refused = tenantry(path, &["import", "-", "--batch-size", "1"], &lines);
        assert_ne!(code(&refused), 0);
        assert!(
            stderr(&refused).contains("resume with --start-line 3"),
            "{}",
            stderr(&refused)
        );
        let members = || async {
            Members::new(channel.clone())
                .list_memberships(authed(
                    rbac::ListMembershipsRequest {
                        parent: format!("organizations/{acme}"),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .memberships
                .len()
        };
        assert_eq!(members().await, 1, "the refused membership is not written");
        let fixed = lines.replace("roles/owner", "roles/member");
        let resumed = tenantry(path, &["import", "-", "--start-line", "3"], &fixed);
        assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
        assert!(
            stderr(&resumed).contains("1 created"),
            "{}",
            stderr(&resumed)
        );
        assert_eq!(members().await, 2);
    }
}
