//! What an import refuses, and that a refused record writes nothing of its
//! run: a tenant, a malformed or misplaced record, a taken address, an
//! unusable password hash, an oversized message, and a tenant calling the
//! internal records services directly.

use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_testkit::clients::Members;
use tonic::Code;

use super::*;

fn user(id: &str, email: &str) -> bulk::Record {
    bulk::Record {
        kind: Some(Kind::User(identity::User {
            name: format!("users/{id}"),
            email: email.into(),
            display_name: "Imported".into(),
            ..Default::default()
        })),
        password_hash: String::new(),
    }
}

fn membership(organization: &str, user: &str, roles: &[&str]) -> bulk::Record {
    bulk::Record {
        kind: Some(Kind::Membership(rbac::Membership {
            name: format!("organizations/{organization}/memberships/{user}"),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        })),
        password_hash: String::new(),
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether the administrator finds the user.
async fn user_exists(channel: &Channel, root: &User, id: &str) -> bool {
    match tenantry_testkit::clients::Identity::new(channel.clone())
        .get_user(authed(
            identity::GetUserRequest {
                name: format!("users/{id}"),
            },
            &root.token,
        ))
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => panic!("GetUser failed: {status:?}"),
    }
}

/// The members of `organization`, as its owner lists them.
async fn members(channel: &Channel, owner: &User, organization: &str) -> usize {
    Members::new(channel.clone())
        .list_memberships(authed(
            rbac::ListMembershipsRequest {
                parent: format!("organizations/{organization}"),
                page_size: 100,
                ..Default::default()
            },
            &owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .memberships
        .len()
}

fn refused(result: Result<bulk::ImportResponse, tonic::Status>, code: Code, naming: &str) {
    let status = result.expect_err("the import is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(naming),
        "{status:?} names {naming}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_administrators_import_and_a_refused_record_writes_nothing_of_its_run() {
    for storage in storages() {
        let (_sandbox, channel, root) = sandbox(storage).await;
        let (ada, acme) = people::sign_up(&channel, "ada@example.com", "Ada").await;
        let (x, y) = (new_id(), new_id());

        // A tenant imports nothing and exports nothing.
        let tenant = import(&channel, &ada.token, &[user(&x, "x@example.com")], 10).await;
        assert_eq!(tenant.unwrap_err().code(), Code::PermissionDenied);
        assert!(!user_exists(&channel, &root, &x).await);
        let export = Bulk::new(channel.clone())
            .export(authed(bulk::ExportRequest {}, &ada.token))
            .await;
        assert_eq!(export.err().map(|s| s.code()), Some(Code::PermissionDenied));

        // A message's runs commit one by one: the user run before the
        // refused membership stays, the membership run writes nothing.
        let records = [
            user(&x, "x@example.com"),
            membership(&acme, &x, &["roles/member"]),
            membership(&acme, &ada.id, &["roles/owner"]),
        ];
        refused(
            import(&channel, &root.token, &records, 10).await,
            Code::InvalidArgument,
            "records[2].membership.roles[0]",
        );
        assert!(user_exists(&channel, &root, &x).await);
        assert_eq!(members(&channel, &ada, &acme).await, 1, "only Ada");

        // Records must come after what they name.
        refused(
            import(
                &channel,
                &root.token,
                &[membership(&acme, &y, &["roles/member"])],
                10,
            )
            .await,
            Code::FailedPrecondition,
            "records[0]",
        );
        refused(
            import(
                &channel,
                &root.token,
                &[membership(&new_id(), &x, &["roles/member"])],
                10,
            )
            .await,
            Code::FailedPrecondition,
            "records[0]",
        );
        assert_eq!(members(&channel, &ada, &acme).await, 1);

        // An address that is someone else's, and a hash nobody can verify.
        refused(
            import(&channel, &root.token, &[user(&y, "ada@example.com")], 10).await,
            Code::AlreadyExists,
            "records[0].user.email",
        );
        let mut hashed = user(&y, "y@example.com");
        hashed.password_hash = "$2b$12$notargon2".into();
        refused(
            import(&channel, &root.token, &[hashed], 10).await,
            Code::InvalidArgument,
            "records[0].password_hash",
        );
        assert!(!user_exists(&channel, &root, &y).await);

        // A message holds at most a thousand records.
        let many: Vec<_> = (0..1001)
            .map(|i| user(&new_id(), &format!("many{i}@example.com")))
            .collect();
        refused(
            import(&channel, &root.token, &many, 1001).await,
            Code::InvalidArgument,
            "records",
        );

        // The internal records services take no tenant's call.
        let forged = bulk::RecordBatch {
            actor: format!("users/{}", ada.id),
            records: vec![membership(&acme, &x, &["roles/admin"])],
            first_index: 0,
        };
        let direct = bulk::membership_records_service_client::MembershipRecordsServiceClient::new(
            channel.clone(),
        )
        .import_membership_records(authed(
            bulk::ImportMembershipRecordsRequest {
                batch: Some(forged.clone()),
            },
            &ada.token,
        ))
        .await;
        assert_eq!(direct.unwrap_err().code(), Code::PermissionDenied);
        let direct =
            bulk::organization_records_service_client::OrganizationRecordsServiceClient::new(
                channel.clone(),
            )
            .import_organization_records(authed(
                bulk::ImportOrganizationRecordsRequest {
                    batch: Some(forged),
                },
                &root.token,
            ))
            .await;
        assert_eq!(direct.unwrap_err().code(), Code::PermissionDenied);
        assert_eq!(members(&channel, &ada, &acme).await, 1);

        // Once the records are in order, the same import goes through.
        let done = import(&channel, &root.token, &records[..2], 10)
            .await
            .unwrap();
        assert_eq!((done.created, done.existing), (1, 1));
        assert_eq!(members(&channel, &ada, &acme).await, 2);
    }
}
