//! Bulk import and export through `BulkService`: a deployment built one
//! call at a time, exported and imported into a fresh one, decides every
//! check the same, holds the same records, and logs the import in a
//! verifiable audit chain; importing again changes nothing; only platform
//! administrators may import, and a bad record writes nothing of its run.

mod refusals;

use std::collections::BTreeSet;

use argon2::PasswordHasher as _;
use futures::TryStreamExt as _;
use tenantry_proto::tenantry::audit::v1 as audit;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::bulk::v1 as bulk;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::clients::{Audit, Authz, Grants, Orgs, Projects, TeamMembers, Teams};
use tenantry_testkit::people::{self, PASSWORD, User};
use tenantry_testkit::usage::own_usage;
use tenantry_testkit::{Sandbox, Storage, authed, last_id as id, storages};
use tonic::transport::Channel;

use bulk::record::Kind;

type Bulk = bulk::bulk_service_client::BulkServiceClient<Channel>;

const ROOT: &str = "root@example.com";

async fn sandbox(storage: Storage) -> (Sandbox, Channel, User) {
    let sandbox = Sandbox::builder()
        .storage(storage)
        .configure(|config| config.identity.platform_admins = vec![ROOT.into()])
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let (root, _) = people::sign_up(&channel, ROOT, "Root").await;
    (sandbox, channel, root)
}

/// Imports `records` in messages of `size`.
async fn import(
    channel: &Channel,
    token: &str,
    records: &[bulk::Record],
    size: usize,
) -> Result<bulk::ImportResponse, tonic::Status> {
    let messages: Vec<bulk::ImportRequest> = records
        .chunks(size)
        .map(|chunk| bulk::ImportRequest {
            records: chunk.to_vec(),
        })
        .collect();
    Bulk::new(channel.clone())
        .import(authed(futures::stream::iter(messages), token))
        .await
        .map(|r| r.into_inner())
}

async fn export(channel: &Channel, token: &str) -> Vec<bulk::Record> {
    Bulk::new(channel.clone())
        .export(authed(bulk::ExportRequest {}, token))
        .await
        .unwrap()
        .into_inner()
        .map_ok(|page| futures::stream::iter(page.records.into_iter().map(Ok::<_, tonic::Status>)))
        .try_flatten()
        .try_collect()
        .await
        .unwrap()
}

/// The organization a record belongs to (a user's is none).
fn organization_of(record: &bulk::Record) -> Option<String> {
    let name = match record.kind.as_ref()? {
        Kind::User(_) => return None,
        Kind::Organization(o) => &o.name,
        Kind::Team(t) => &t.name,
        Kind::Project(p) => &p.name,
        Kind::Membership(m) => &m.name,
        Kind::TeamMember(m) => &m.name,
        Kind::ProjectGrant(g) => &g.name,
    };
    name.split('/').nth(1).map(str::to_string)
}

/// What a record says, without the fields a deployment fills in itself.
fn content(record: &bulk::Record) -> String {
    match record.kind.as_ref().expect("a record") {
        Kind::User(u) => format!(
            "user {} {} {} {}",
            u.name, u.email, u.display_name, u.email_verified
        ),
        Kind::Organization(o) => format!(
            "organization {} {} {} {:?} {} {} {:?}",
            o.name, o.slug, o.display_name, o.kind, o.parent, o.owner, o.inherit_access
        ),
        Kind::Team(t) => format!("team {} {} {}", t.name, t.slug, t.display_name),
        Kind::Project(p) => format!(
            "project {} {} {} {}",
            p.name, p.slug, p.display_name, p.team
        ),
        Kind::Membership(m) => format!("membership {} {:?}", m.name, m.roles),
        Kind::TeamMember(m) => format!("team member {} {}", m.name, m.role),
        Kind::ProjectGrant(g) => format!("grant {} {:?} {}", g.name, g.subject, g.access_level),
    }
}

/// The records of everyone but the administrator who imports, and of
/// every organization but `skipped`.
fn tenants(records: Vec<bulk::Record>, skipped: &BTreeSet<String>) -> Vec<bulk::Record> {
    records
        .into_iter()
        .filter(|r| !matches!(&r.kind, Some(Kind::User(u)) if u.email == ROOT))
        .filter(|r| organization_of(r).is_none_or(|o| !skipped.contains(&o)))
        .collect()
}

/// The organizations `owner` owns among `records`.
fn owned_by(records: &[bulk::Record], owner: &User) -> BTreeSet<String> {
    let owner = format!("users/{}", owner.id);
    records
        .iter()
        .filter_map(|r| match &r.kind {
            Some(Kind::Organization(o)) if o.owner == owner => Some(id(&o.name)),
            _ => None,
        })
        .collect()
}

/// One `PASSWORD` hash for every imported user, so that each signs in
/// as they did before.
fn with_passwords(records: Vec<bulk::Record>) -> Vec<bulk::Record> {
    let hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    records
        .into_iter()
        .map(|mut r| {
            if matches!(r.kind, Some(Kind::User(_))) {
                r.password_hash = hash.clone();
            }
            r
        })
        .collect()
}

/// Every decision `user` gets on `objects`, in order.
async fn decisions(channel: &Channel, user: &User, objects: &[(&str, String, &str)]) -> Vec<bool> {
    let items = objects
        .iter()
        .map(
            |(kind, id, permission)| authz::CheckBulkPermissionsRequestItem {
                resource: Some(authz::ObjectReference {
                    object_type: (*kind).into(),
                    object_id: id.clone(),
                }),
                permission: (*permission).into(),
                subject: Some(authz::SubjectReference {
                    object: Some(authz::ObjectReference {
                        object_type: "user".into(),
                        object_id: user.id.clone(),
                    }),
                    optional_relation: String::new(),
                }),
            },
        )
        .collect();
    Authz::new(channel.clone())
        .check_bulk_permissions(authed(
            authz::CheckBulkPermissionsRequest {
                consistency: None,
                items,
            },
            &user.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .pairs
        .into_iter()
        .map(|pair| match pair.response {
            Some(authz::check_bulk_permissions_pair::Response::Item(item)) => {
                item.permissionship() == authz::Permissionship::Allowed
            }
            other => panic!("a check failed: {other:?}"),
        })
        .collect()
}

/// The audit events of `organization`, as its owner reads them.
async fn audit_events(
    channel: &Channel,
    owner: &User,
    organization: &str,
) -> Vec<audit::AuditEvent> {
    Audit::new(channel.clone())
        .list_audit_events(authed(
            audit::ListAuditEventsRequest {
                parent: format!("organizations/{organization}"),
                page_size: 1000,
                ..Default::default()
            },
            &owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_events
}

/// Ada's company as people build it, one call at a time: Acme with a
/// child organization, a team, a project; Bob an admin, Cy a member and
/// the team's lead, Dee in the child with a grant on the project, which
/// the team may change too.
struct Acme {
    people: Vec<(String, User)>,
    organizations: Vec<String>,
    team: String,
    project: String,
}

async fn build_acme(sandbox: &Sandbox, channel: &Channel) -> Acme {
    let (ada, acme) = people::sign_up(channel, "ada@example.com", "Ada").await;
    let mut people_list = vec![("ada@example.com".to_string(), ada.clone())];
    for email in ["bob@example.com", "cy@example.com", "dee@example.com"] {
        people_list.push((
            email.into(),
            people::sign_up(channel, email, "Someone").await.0,
        ));
    }
    let eu = id(&Orgs::new(channel.clone())
        .create_organization(authed(
            org::CreateOrganizationRequest {
                organization: Some(org::Organization {
                    display_name: "Acme EU".into(),
                    parent: format!("organizations/{acme}"),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap()
        .name);
    let team = id(&Teams::new(channel.clone())
        .create_team(authed(
            org::CreateTeamRequest {
                parent: format!("organizations/{acme}"),
                team: Some(org::Team {
                    display_name: "Core".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name);
    let project = id(&Projects::new(channel.clone())
        .create_project(authed(
            org::CreateProjectRequest {
                parent: format!("organizations/{acme}"),
                project: Some(org::Project {
                    display_name: "Rocket".into(),
                    team: format!("organizations/{acme}/teams/{team}"),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap()
        .name);
    let joins = [
        (1, &acme, "roles/admin"),
        (2, &acme, "roles/member"),
        (3, &eu, "roles/finance"),
    ];
    for (who, organization, role) in joins {
        tenantry_tests::people::join(
            sandbox,
            channel,
            &ada.token,
            organization,
            &people_list[who].1.token,
            &[role],
        )
        .await;
    }
    TeamMembers::new(channel.clone())
        .add_team_member(authed(
            rbac::AddTeamMemberRequest {
                parent: format!("organizations/{acme}/teams/{team}"),
                team_member: Some(rbac::TeamMember {
                    user: format!("users/{}", people_list[2].1.id),
                    role: authz::TeamRole::Lead as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let grants = [
        rbac::project_grant::Subject::User(format!("users/{}", people_list[3].1.id)),
        rbac::project_grant::Subject::Team(format!("organizations/{acme}/teams/{team}")),
    ];
    for (subject, level) in grants.into_iter().zip([
        authz::ProjectAccessLevel::Viewer,
        authz::ProjectAccessLevel::Contributor,
    ]) {
        Grants::new(channel.clone())
            .create_project_grant(authed(
                rbac::CreateProjectGrantRequest {
                    parent: format!("organizations/{acme}/projects/{project}"),
                    project_grant: Some(rbac::ProjectGrant {
                        subject: Some(subject),
                        access_level: level as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
    }
    Acme {
        people: people_list,
        organizations: vec![acme, eu],
        team,
        project,
    }
}

/// What the probes ask about Acme.
fn probes(acme: &Acme) -> Vec<(&'static str, String, &'static str)> {
    let mut probes = Vec::new();
    for organization in &acme.organizations {
        for permission in [
            "organization.read",
            "organization.members.manage",
            "organization.suborganizations.create",
            "billing.read",
            "billing.manage",
            "project.create",
        ] {
            probes.push(("organization", organization.clone(), permission));
        }
    }
    for permission in ["team.read", "team.members.manage", "team.manage"] {
        probes.push(("team", acme.team.clone(), permission));
    }
    for permission in [
        "project.read",
        "project.manage",
        "project.grants.manage",
        "project.delete",
    ] {
        probes.push(("project", acme.project.clone(), permission));
    }
    probes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exported_deployment_imports_into_a_fresh_one_and_decides_the_same() {
    for storage in storages() {
        let (source, from, root) = sandbox(storage).await;
        let acme = build_acme(&source, &from).await;
        let exported = export(&from, &root.token).await;
        // The administrator's own organizations stay behind: the fresh
        // deployment has its own administrator.
        let own = owned_by(&exported, &root);
        let records = tenants(exported, &own);
        assert!(
            records
                .iter()
                .filter(|r| matches!(r.kind, Some(Kind::Membership(_))))
                .count()
                >= 3,
            "the export holds the memberships: {records:?}"
        );

        let (target, to, new_root) = sandbox(storage).await;
        let imported = import(&to, &new_root.token, &with_passwords(records.clone()), 7)
            .await
            .unwrap();
        assert_eq!(
            (imported.created, imported.existing),
            (records.len() as i64, 0),
            "every record is created once"
        );

        // The same records, and the same decisions for everyone.
        let there = export(&to, &new_root.token).await;
        let own_there = owned_by(&there, &new_root);
        let again = tenants(there, &own_there);
        let set = |records: &[bulk::Record]| records.iter().map(content).collect::<BTreeSet<_>>();
        assert_eq!(set(&again), set(&records));
        let probes = probes(&acme);
        for (email, before) in &acme.people {
            let after = people::log_in(&to, email).await;
            assert_eq!(after.id, before.id, "{email} keeps their id");
            assert_eq!(
                decisions(&to, &after, &probes).await,
                decisions(&from, before, &probes).await,
                "{email} is allowed exactly what they were"
            );
        }

        // Billing counts the same seats and projects.
        let ada_before = &acme.people[0].1;
        let ada_after = people::log_in(&to, "ada@example.com").await;
        for metric in [
            billing::Metric::Members,
            billing::Metric::Projects,
            billing::Metric::Teams,
        ] {
            for organization in &acme.organizations {
                assert_eq!(
                    own_usage(&to, &ada_after.token, organization, metric).await,
                    own_usage(&from, &ada_before.token, organization, metric).await,
                    "{metric:?} of {organization}"
                );
            }
        }

        // The log holds the import, by the administrator, in a chain that
        // verifies; a second run creates nothing and logs nothing.
        let ada = people::log_in(&to, "ada@example.com").await;
        let acme_id = &acme.organizations[0];
        let logged = audit_events(&to, &ada, acme_id).await;
        let memberships = logged
            .iter()
            .filter(|e| e.action == "organization.member.added")
            .filter(|e| e.actor.as_ref().is_some_and(|a| a.id == new_root.id))
            .count();
        assert_eq!(
            memberships, 2,
            "Bob's and Cy's memberships, by the importer: {logged:?}"
        );
        let verified = Audit::new(to.clone())
            .verify_chain(authed(
                audit::VerifyChainRequest {
                    organization: format!("organizations/{acme_id}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(verified.ok && verified.verified_count > 0, "{verified:?}");
        let rerun = import(&to, &new_root.token, &records, 1000).await.unwrap();
        assert_eq!((rerun.created, rerun.existing), (0, records.len() as i64));
        assert_eq!(audit_events(&to, &ada, acme_id).await.len(), logged.len());
        drop((source, target));
    }
}
