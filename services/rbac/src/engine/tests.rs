//! The index against the reference evaluator on random worlds, and the
//! scenarios of the permission matrix.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reference::Facts;
use super::*;

const LEVELS: [AccessLevel; 3] = [
    AccessLevel::Viewer,
    AccessLevel::Contributor,
    AccessLevel::Admin,
];

/// A random world: trees up to ten deep, departments that do not inherit,
/// deleted nodes, teams, projects, members with built-in and custom roles,
/// team members, and grants of every kind.
/// A type an internal service registers: deployments in projects.
fn deployment_type() -> TypeDefinition {
    TypeDefinition {
        name: "deployment".into(),
        parent_type: "project".into(),
        permissions: vec![
            PermissionDefinition {
                name: "deployment.read".into(),
                description: "see it".into(),
                granted_by: vec![Grantor::ParentPermission("project.read".into())],
            },
            PermissionDefinition {
                name: "deployment.deploy".into(),
                description: "roll it out".into(),
                granted_by: vec![
                    Grantor::AccessLevel(AccessLevel::Contributor),
                    Grantor::Role("roles/admin".into()),
                ],
            },
        ],
        display_name: String::new(),
        description: String::new(),
    }
}

fn schema_with_deployments() -> Schema {
    let mut schema = Schema::built_in();
    schema.register(&deployment_type()).unwrap();
    schema
}

fn random_world(seed: u64) -> (Vec<Change>, Facts, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let schema = schema_with_deployments();
    let mut changes = vec![Change::RegisterType {
        definition: deployment_type(),
    }];
    let mut facts = Facts::default();
    let users: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    let mut orgs: Vec<String> = Vec::new();
    let mut depth: Vec<usize> = Vec::new();
    for i in 0..rng.random_range(1..14) {
        let id = format!("o{i}");
        let parent = if orgs.is_empty() || rng.random_bool(0.2) {
            None
        } else {
            let p = rng.random_range(0..orgs.len());
            (depth[p] < 10).then(|| orgs[p].clone())
        };
        let d = parent
            .as_ref()
            .map(|p| depth[orgs.iter().position(|o| o == p).unwrap()] + 1)
            .unwrap_or(1);
        let inherit = parent.is_none() || rng.random_bool(0.8);
        let live = rng.random_bool(0.9);
        changes.push(Change::Node {
            object_type: "organization".into(),
            id: id.clone(),
            parent: parent.clone(),
            inherit,
        });
        changes.push(Change::Live {
            object_type: "organization".into(),
            id: id.clone(),
            live,
        });
        facts
            .objects
            .insert(("organization".into(), id.clone()), (parent, inherit, live));
        if rng.random_bool(0.2) {
            changes.push(Change::ProjectVisibility {
                organization: id.clone(),
                granted_only: true,
            });
            facts.granted_only.insert(id.clone());
        }
        orgs.push(id);
        depth.push(d);
    }
    let mut children = Vec::new();
    for (kind, prefix) in [("team", "t"), ("project", "p")] {
        for i in 0..rng.random_range(0..8) {
            let id = format!("{prefix}{i}");
            let org = orgs[rng.random_range(0..orgs.len())].clone();
            let live = rng.random_bool(0.9);
            changes.push(Change::Node {
                object_type: kind.into(),
                id: id.clone(),
                parent: Some(org.clone()),
                inherit: true,
            });
            changes.push(Change::Live {
                object_type: kind.into(),
                id: id.clone(),
                live,
            });
            facts
                .objects
                .insert((kind.to_string(), id.clone()), (Some(org), true, live));
            children.push((kind, id));
        }
    }
    let project_ids: Vec<String> = children
        .iter()
        .filter(|c| c.0 == "project")
        .map(|c| c.1.clone())
        .collect();
    for i in 0..rng.random_range(0..6) {
        if project_ids.is_empty() {
            break;
        }
        let id = format!("d{i}");
        let project = project_ids[rng.random_range(0..project_ids.len())].clone();
        let live = rng.random_bool(0.9);
        changes.push(Change::Node {
            object_type: "deployment".into(),
            id: id.clone(),
            parent: Some(project.clone()),
            inherit: true,
        });
        changes.push(Change::Live {
            object_type: "deployment".into(),
            id: id.clone(),
            live,
        });
        facts
            .objects
            .insert(("deployment".to_string(), id), (Some(project), true, live));
    }
    let all_permissions: Vec<&str> = schema.all_permissions().iter().map(|p| p.0).collect();
    let mut roles: Vec<String> = schema::BUILT_IN_ROLES
        .iter()
        .map(|r| r.to_string())
        .collect();
    for i in 0..rng.random_range(0..3) {
        let name = format!("organizations/o0/roles/r{i}");
        let permissions: Vec<String> = all_permissions
            .iter()
            .filter(|_| rng.random_bool(0.3))
            .map(|p| p.to_string())
            .collect();
        changes.push(Change::Role {
            name: name.clone(),
            permissions: permissions.clone(),
        });
        facts.roles.insert(name.clone(), permissions);
        roles.push(name);
    }
    for _ in 0..rng.random_range(0..16) {
        let user = users[rng.random_range(0..users.len())].clone();
        let org = orgs[rng.random_range(0..orgs.len())].clone();
        let held: Vec<String> = (0..rng.random_range(1..3))
            .map(|_| roles[rng.random_range(0..roles.len())].clone())
            .collect();
        changes.push(Change::Membership {
            organization: org.clone(),
            user: user.clone(),
            roles: held.clone(),
        });
        facts.memberships.insert((org, user), held);
    }
    // Visibility switched after the members joined, both ways.
    for org in &orgs {
        if rng.random_bool(0.3) {
            let granted_only = !facts.granted_only.contains(org);
            changes.push(Change::ProjectVisibility {
                organization: org.clone(),
                granted_only,
            });
            if granted_only {
                facts.granted_only.insert(org.clone());
            } else {
                facts.granted_only.remove(org);
            }
        }
    }
    let teams: Vec<&String> = children
        .iter()
        .filter(|c| c.0 == "team")
        .map(|c| &c.1)
        .collect();
    let projects: Vec<&String> = children
        .iter()
        .filter(|c| c.0 == "project")
        .map(|c| &c.1)
        .collect();
    for _ in 0..rng.random_range(0..8) {
        if teams.is_empty() {
            break;
        }
        let user = users[rng.random_range(0..users.len())].clone();
        let team = teams[rng.random_range(0..teams.len())].clone();
        let lead = rng.random_bool(0.3);
        changes.push(Change::TeamMember {
            team: team.clone(),
            user: user.clone(),
            lead: Some(lead),
        });
        facts.team_members.insert((team, user), lead);
    }
    for _ in 0..rng.random_range(0..10) {
        if projects.is_empty() {
            break;
        }
        let project = projects[rng.random_range(0..projects.len())].clone();
        let level = LEVELS[rng.random_range(0..3)];
        let subject = match rng.random_range(0..3) {
            0 => GrantSubject::User(users[rng.random_range(0..users.len())].clone()),
            1 if !teams.is_empty() => {
                GrantSubject::Team(teams[rng.random_range(0..teams.len())].clone())
            }
            _ => GrantSubject::Role(roles[rng.random_range(0..roles.len())].clone()),
        };
        match &subject {
            GrantSubject::User(u) => facts
                .user_grants
                .insert((project.clone(), u.clone()), level),
            GrantSubject::Team(t) => facts
                .team_grants
                .insert((project.clone(), t.clone()), level),
            GrantSubject::Role(r) => facts
                .role_grants
                .insert((project.clone(), r.clone()), level),
        };
        changes.push(Change::ProjectGrant {
            project,
            subject,
            level: Some(level),
        });
    }
    // A disabled user holds nothing, whatever their grants; some come back.
    for user in &users {
        if rng.random_bool(0.15) {
            changes.push(Change::UserActive {
                user: user.clone(),
                active: false,
            });
            facts.inactive.insert(user.clone());
            if rng.random_bool(0.3) {
                changes.push(Change::UserActive {
                    user: user.clone(),
                    active: true,
                });
                facts.inactive.remove(user);
            }
        }
    }
    // Some removals, so the index's bookkeeping of deletions is exercised.
    if rng.random_bool(0.5)
        && let Some(((org, user), _)) = facts
            .memberships
            .iter()
            .next()
            .map(|(k, v)| (k.clone(), v.clone()))
    {
        changes.push(Change::Membership {
            organization: org.clone(),
            user: user.clone(),
            roles: Vec::new(),
        });
        facts.memberships.remove(&(org, user));
    }
    (changes, facts, users)
}

fn build(changes: &[Change]) -> Index {
    let mut index = Index::new();
    for change in changes {
        index.apply(change).unwrap();
    }
    index
}

#[test]
fn subjects_are_found_from_the_object_without_testing_everyone() {
    let schema = schema_with_deployments();
    for seed in 0..150 {
        let (changes, facts, users) = random_world(seed);
        let index = build(&changes);
        let holdings: Vec<_> = users
            .iter()
            .map(|u| (u, facts.holdings(&schema, u)))
            .collect();
        for (object_type, id) in facts.objects.keys() {
            let kind = schema.type_id(object_type).unwrap();
            for permission in schema.names(schema.resource_type(kind).permissions) {
                let bit = schema.permission(permission).unwrap();
                let expected: Vec<&str> = holdings
                    .iter()
                    .filter(|(_, h)| {
                        h.get(&(object_type.clone(), id.clone()))
                            .is_some_and(|p| p & bit != 0)
                    })
                    .map(|(u, _)| u.as_str())
                    .collect();
                let got = index.subjects_with(object_type, id, permission).unwrap();
                assert_eq!(
                    got, expected,
                    "seed {seed}: who has {permission} on {object_type}:{id}"
                );
            }
        }
    }
}

#[test]
fn the_index_agrees_with_the_reference_on_random_worlds() {
    let schema = schema_with_deployments();
    for seed in 0..300 {
        let (changes, facts, users) = random_world(seed);
        let index = build(&changes);
        for user in &users {
            let holdings = facts.holdings(&schema, user);
            for (object_type, id) in facts.objects.keys() {
                let kind = schema.type_id(object_type).unwrap();
                let allowed_here = holdings
                    .get(&(object_type.clone(), id.clone()))
                    .copied()
                    .unwrap_or(0);
                for permission in schema.names(schema.resource_type(kind).permissions) {
                    let expected = allowed_here & schema.permission(permission).unwrap() != 0;
                    let got = index
                        .check_by_id(user, object_type, id, permission)
                        .unwrap();
                    assert_eq!(
                        got, expected,
                        "seed {seed}: {user} {permission} on {object_type}:{id}\n{changes:#?}"
                    );
                }
            }
            for object_type in ["organization", "team", "project", "deployment"] {
                let kind = schema.type_id(object_type).unwrap();
                for permission in schema.names(schema.resource_type(kind).permissions) {
                    let bit = schema.permission(permission).unwrap();
                    let expected: Vec<&str> = holdings
                        .iter()
                        .filter(|((t, _), perms)| t == object_type && *perms & bit != 0)
                        .map(|((_, id), _)| id.as_str())
                        .collect();
                    let got = index.lookup(user, object_type, permission).unwrap();
                    assert_eq!(
                        got, expected,
                        "seed {seed}: lookup {user} {permission} {object_type}"
                    );
                }
            }
        }
    }
}

fn node(object_type: &str, id: &str, parent: Option<&str>) -> Change {
    Change::Node {
        object_type: object_type.into(),
        id: id.into(),
        parent: parent.map(str::to_string),
        inherit: true,
    }
}

fn member(org: &str, user: &str, roles: &[&str]) -> Change {
    Change::Membership {
        organization: org.into(),
        user: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

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

/// An API key as the reference sees it.
struct Key {
    id: String,
    organization: String,
    owner: String,
    scope: (String, String),
    permissions: Vec<String>,
}

impl Key {
    /// What the key may do on an object: it carries the permission, the
    /// object lies inside the scope (a team's scope: the team and the
    /// projects granted to it), the scope lies in the key's organization,
    /// and the owner holds the permission there.
    fn holds(&self, facts: &Facts, schema: &Schema, object: &(String, String), bit: Perms) -> bool {
        let carried = schema
            .permissions(self.permissions.iter().map(String::as_str))
            .unwrap();
        let chain = facts.chain(&object.0, &object.1);
        let inside = chain.contains(&self.scope)
            || (self.scope.0 == "team"
                && chain.iter().any(|(kind, id)| {
                    kind == "project"
                        && facts
                            .team_grants
                            .contains_key(&(id.clone(), self.scope.1.clone()))
                }));
        let in_organization = facts
            .chain(&self.scope.0, &self.scope.1)
            .contains(&("organization".to_string(), self.organization.clone()));
        let owner_holds = facts
            .holdings(schema, &self.owner)
            .get(object)
            .is_some_and(|p| p & bit != 0);
        carried & bit != 0 && inside && in_organization && owner_holds
    }
}

#[test]
fn api_keys_hold_what_they_carry_inside_their_scope_while_their_owner_does() {
    let schema = schema_with_deployments();
    let all_permissions: Vec<String> = schema
        .all_permissions()
        .iter()
        .map(|p| p.0.to_string())
        .collect();
    for seed in 0..200 {
        let (mut changes, facts, users) = random_world(seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b65_7973);
        let objects: Vec<(String, String)> = facts.objects.keys().cloned().collect();
        let organizations: Vec<&(String, String)> =
            objects.iter().filter(|o| o.0 == "organization").collect();
        let scopes: Vec<&(String, String)> = objects
            .iter()
            .filter(|o| matches!(o.0.as_str(), "organization" | "team" | "project"))
            .collect();
        let mut keys = Vec::new();
        for i in 0..rng.random_range(1..8) {
            let scope = scopes[rng.random_range(0..scopes.len())].clone();
            let key = Key {
                id: format!("k{i}"),
                organization: organizations[rng.random_range(0..organizations.len())]
                    .1
                    .clone(),
                owner: users[rng.random_range(0..users.len())].clone(),
                permissions: all_permissions
                    .iter()
                    .filter(|_| rng.random_bool(0.4))
                    .cloned()
                    .collect(),
                scope,
            };
            changes.push(Change::ApiKey {
                id: key.id.clone(),
                organization: key.organization.clone(),
                owner: key.owner.clone(),
                scope: match key.scope.0.as_str() {
                    "organization" => KeyScope::Organization(key.scope.1.clone()),
                    "team" => KeyScope::Team(key.scope.1.clone()),
                    _ => KeyScope::Project(key.scope.1.clone()),
                },
                permissions: key.permissions.clone(),
            });
            keys.push(key);
        }
        // A revoked key holds nothing.
        let revoked = rng.random_bool(0.3).then(|| keys.pop()).flatten();
        if let Some(key) = &revoked {
            changes.push(Change::RemoveApiKey { id: key.id.clone() });
        }
        let index = build(&changes);
        for object in &objects {
            let kind = schema.type_id(&object.0).unwrap();
            for permission in schema.names(schema.resource_type(kind).permissions) {
                let bit = schema.permission(permission).unwrap();
                for key in &keys {
                    let expected = key.holds(&facts, &schema, object, bit);
                    let got = index
                        .check_key(&key.id, &object.0, &object.1, permission)
                        .unwrap();
                    assert_eq!(
                        got, expected,
                        "seed {seed}: key {} {permission} on {object:?}",
                        key.id
                    );
                }
                if let Some(key) = &revoked {
                    assert!(
                        !index
                            .check_key(&key.id, &object.0, &object.1, permission)
                            .unwrap()
                    );
                }
            }
        }
        for object_type in ["organization", "team", "project", "deployment"] {
            let kind = schema.type_id(object_type).unwrap();
            for permission in schema.names(schema.resource_type(kind).permissions) {
                let bit = schema.permission(permission).unwrap();
                for key in &keys {
                    let expected: Vec<&str> = objects
                        .iter()
                        .filter(|o| o.0 == object_type && key.holds(&facts, &schema, o, bit))
                        .map(|o| o.1.as_str())
                        .collect();
                    let got = index.lookup_key(&key.id, object_type, permission).unwrap();
                    assert_eq!(
                        got, expected,
                        "seed {seed}: key {} looks up {permission} on {object_type}",
                        key.id
                    );
                }
            }
        }
    }
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
