//! The scenarios of the permission matrix, one flow each.

use super::*;

#[test]
fn roles_flow_down_unless_a_child_stops_them() {
    let mut index = build(&[
        node("organization", "acme", None),
        node("organization", "eng", Some("acme")),
        node("organization", "secret", Some("eng")),
        node("project", "rocket", Some("secret")),
        member("acme", "ada", &["roles/admin"]),
    ]);
    assert!(
        index
            .check_by_id("ada", "project", "rocket", "project.read")
            .unwrap()
    );
    assert!(
        index
            .check_by_id("ada", "organization", "eng", "project.create")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("ada", "organization", "eng", "billing.manage")
            .unwrap()
    );
    index
        .apply(&Change::Node {
            object_type: "organization".into(),
            id: "secret".into(),
            parent: Some("eng".into()),
            inherit: false,
        })
        .unwrap();
    assert!(
        !index
            .check_by_id("ada", "project", "rocket", "project.read")
            .unwrap()
    );
    assert!(
        index
            .check_by_id("ada", "organization", "eng", "project.read")
            .is_err(),
        "wrong type"
    );
    let (allowed, trace) = index
        .explain("ada", "project", "rocket", "project.read")
        .unwrap();
    assert!(!allowed);
    assert_eq!(
        trace.stopped.as_deref(),
        Some("does not inherit access from above")
    );
    // Removing the membership removes everything at once.
    index.apply(&member("acme", "ada", &[])).unwrap();
    assert!(
        !index
            .check_by_id("ada", "organization", "acme", "organization.read")
            .unwrap()
    );
}

#[test]
fn teams_grants_and_custom_roles() {
    let mut index = build(&[
        node("organization", "acme", None),
        node("team", "core", Some("acme")),
        node("project", "rocket", Some("acme")),
        node("project", "other", Some("acme")),
        member("acme", "ada", &["roles/member"]),
        member("acme", "fin", &["roles/finance"]),
        Change::TeamMember {
            team: "core".into(),
            user: "lee".into(),
            lead: Some(true),
        },
        Change::ProjectGrant {
            project: "rocket".into(),
            subject: GrantSubject::Team("core".into()),
            level: Some(AccessLevel::Contributor),
        },
        Change::ProjectGrant {
            project: "other".into(),
            subject: GrantSubject::User("guest".into()),
            level: Some(AccessLevel::Viewer),
        },
    ]);
    // A team lead manages the team's members, not the team.
    assert!(
        index
            .check_by_id("lee", "team", "core", "team.members.manage")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("lee", "team", "core", "team.manage")
            .unwrap()
    );
    assert!(
        index
            .check_by_id("lee", "project", "rocket", "resources.use")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("lee", "project", "other", "project.read")
            .unwrap()
    );
    // An external user sees the one project granted.
    assert_eq!(
        index.lookup("guest", "project", "project.read").unwrap(),
        vec!["other"]
    );
    assert!(
        !index
            .check_by_id("guest", "organization", "acme", "organization.read")
            .unwrap()
    );
    // Finance: billing, no development resources.
    assert!(
        index
            .check_by_id("fin", "organization", "acme", "billing.manage")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("fin", "project", "rocket", "project.read")
            .unwrap()
    );
    // A custom role, then changed: every holder follows at once.
    index
        .apply(&Change::Role {
            name: "organizations/acme/roles/auditor".into(),
            permissions: vec!["audit.read".into()],
        })
        .unwrap();
    index
        .apply(&member(
            "acme",
            "ada",
            &["roles/member", "organizations/acme/roles/auditor"],
        ))
        .unwrap();
    assert!(
        index
            .check_by_id("ada", "organization", "acme", "audit.read")
            .unwrap()
    );
    index
        .apply(&Change::Role {
            name: "organizations/acme/roles/auditor".into(),
            permissions: vec![],
        })
        .unwrap();
    assert!(
        !index
            .check_by_id("ada", "organization", "acme", "audit.read")
            .unwrap()
    );
    assert!(
        index
            .check_by_id("ada", "project", "rocket", "project.read")
            .unwrap()
    );
    // Deleting the project ends access to it.
    index
        .apply(&Change::Live {
            object_type: "project".into(),
            id: "rocket".into(),
            live: false,
        })
        .unwrap();
    assert!(
        !index
            .check_by_id("ada", "project", "rocket", "project.read")
            .unwrap()
    );
    assert_eq!(
        index.lookup("ada", "project", "project.read").unwrap(),
        vec!["other"]
    );
}

#[test]
fn registered_types_inherit_from_their_parents() {
    let mut index = build(&[
        node("organization", "acme", None),
        node("project", "rocket", Some("acme")),
        member("acme", "ada", &["roles/member"]),
        member("acme", "root", &["roles/admin"]),
        Change::ProjectGrant {
            project: "rocket".into(),
            subject: GrantSubject::User("guest".into()),
            level: Some(AccessLevel::Viewer),
        },
    ]);
    index
        .apply(&Change::RegisterType {
            definition: deployment_type(),
        })
        .unwrap();
    index
        .apply(&node("deployment", "d1", Some("rocket")))
        .unwrap();
    // Read through the parent's project.read, for members and grantees.
    for user in ["ada", "root", "guest"] {
        assert!(
            index
                .check_by_id(user, "deployment", "d1", "deployment.read")
                .unwrap(),
            "{user}"
        );
    }
    // Deploy: admins (by role) and contributors (by level), not viewers.
    assert!(
        index
            .check_by_id("root", "deployment", "d1", "deployment.deploy")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("ada", "deployment", "d1", "deployment.deploy")
            .unwrap()
    );
    assert!(
        !index
            .check_by_id("guest", "deployment", "d1", "deployment.deploy")
            .unwrap()
    );
    assert_eq!(
        index
            .lookup("guest", "deployment", "deployment.read")
            .unwrap(),
        vec!["d1"]
    );
    // A custom role with project.read reads deployments too.
    index
        .apply(&Change::Role {
            name: "organizations/acme/roles/reader".into(),
            permissions: vec!["project.read".into()],
        })
        .unwrap();
    index
        .apply(&member(
            "acme",
            "rita",
            &["organizations/acme/roles/reader"],
        ))
        .unwrap();
    assert!(
        index
            .check_by_id("rita", "deployment", "d1", "deployment.read")
            .unwrap()
    );
    // Bad definitions are refused.
    let mut bad = deployment_type();
    bad.name = "project".into();
    assert!(
        index
            .apply(&Change::RegisterType { definition: bad })
            .is_err()
    );
    let mut bad = deployment_type();
    bad.parent_type = "galaxy".into();
    assert!(
        index
            .apply(&Change::RegisterType { definition: bad })
            .is_err()
    );
    let mut bad = deployment_type();
    bad.permissions[0].name = "project.steal".into();
    assert!(
        index
            .apply(&Change::RegisterType { definition: bad })
            .is_err()
    );
    let mut bad = deployment_type();
    bad.permissions[0].granted_by = vec![Grantor::ParentPermission("billing.manage".into())];
    assert!(
        index
            .apply(&Change::RegisterType { definition: bad })
            .is_err()
    );
}

#[test]
fn unknown_names_are_refused() {
    let index = Index::new();
    assert_eq!(
        index.check_by_id("u", "widget", "w", "project.read"),
        Err(IndexError::UnknownType("widget".into()))
    );
    assert_eq!(
        index.check_by_id("u", "project", "p", "project.fly"),
        Err(IndexError::UnknownPermission("project.fly".into()))
    );
    let mut index = Index::new();
    assert!(
        index
            .apply(&member("acme", "ada", &["roles/emperor"]))
            .is_err()
    );
}

#[test]
fn ended_sessions_are_remembered_until_their_tokens_expire() {
    let mut index = Index::new();
    let end = |id: &str, at_us: i64| Change::SessionEnded {
        id: id.into(),
        at_us,
        until_us: at_us + 100,
    };
    assert!(index.session_live("s0"));
    index.apply(&end("s0", 0)).unwrap();
    assert!(!index.session_live("s0"));
    assert!(index.session_live("s1"));
    // Many later endings: the first is forgotten once its tokens are gone,
    // and the set stays bounded by what may still be presented.
    for i in 1..5000 {
        index.apply(&end(&format!("s{i}"), 1000 + i)).unwrap();
    }
    assert!(
        index.session_live("s0"),
        "forgotten after its tokens expired"
    );
    assert!(!index.session_live("s4999"));
    assert!(
        index.ended_sessions.len() < 2 * 1024 + 200,
        "{}",
        index.ended_sessions.len()
    );
}
