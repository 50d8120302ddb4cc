//! Random worlds checked against the reference evaluator.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::engine::reference::Facts;

const LEVELS: [AccessLevel; 3] = [
    AccessLevel::Viewer,
    AccessLevel::Contributor,
    AccessLevel::Admin,
];

/// A random world: trees up to ten deep, departments that do not inherit,
/// deleted nodes, teams, projects, members with built-in and custom roles,
/// team members, and grants of every kind.
pub(super) fn random_world(seed: u64) -> (Vec<Change>, Facts, Vec<String>) {
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
    // A membership with one to four roles (two or more are held apart).
    let join = |rng: &mut StdRng,
                changes: &mut Vec<Change>,
                facts: &mut Facts,
                org: String,
                user: String| {
        let held: Vec<String> = (0..rng.random_range(1..5))
            .map(|_| roles[rng.random_range(0..roles.len())].clone())
            .collect();
        changes.push(Change::Membership {
            organization: org.clone(),
            user: user.clone(),
            roles: held.clone(),
        });
        facts.memberships.insert((org, user), held);
    };
    for _ in 0..rng.random_range(0..16) {
        let user = users[rng.random_range(0..users.len())].clone();
        let org = orgs[rng.random_range(0..orgs.len())].clone();
        join(&mut rng, &mut changes, &mut facts, org, user);
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
    // Some teams and projects move to another organization (the index
    // threads children through their siblings: unlinking in the middle of
    // a list must keep the rest reachable).
    for (kind, id) in &children {
        if rng.random_bool(0.25) {
            let org = orgs[rng.random_range(0..orgs.len())].clone();
            changes.push(Change::Node {
                object_type: kind.to_string(),
                id: id.clone(),
                parent: Some(org.clone()),
                inherit: true,
            });
            let object = facts
                .objects
                .get_mut(&(kind.to_string(), id.clone()))
                .unwrap();
            object.0 = Some(org);
        }
    }
    // Churn: some memberships change their roles, some team members leave,
    // some user grants are withdrawn, and some are given again.
    let memberships: Vec<(String, String)> = facts.memberships.keys().cloned().collect();
    for (org, user) in memberships {
        if rng.random_bool(0.3) {
            join(&mut rng, &mut changes, &mut facts, org, user);
        }
    }
    let members: Vec<(String, String)> = facts.team_members.keys().cloned().collect();
    for (team, user) in members {
        if rng.random_bool(0.3) {
            changes.push(Change::TeamMember {
                team: team.clone(),
                user: user.clone(),
                lead: None,
            });
            facts.team_members.remove(&(team, user));
        }
    }
    let grants: Vec<(String, String)> = facts.user_grants.keys().cloned().collect();
    for (project, user) in grants {
        if rng.random_bool(0.3) {
            changes.push(Change::ProjectGrant {
                project: project.clone(),
                subject: GrantSubject::User(user.clone()),
                level: None,
            });
            facts.user_grants.remove(&(project.clone(), user.clone()));
            if rng.random_bool(0.5) {
                let level = LEVELS[rng.random_range(0..3)];
                changes.push(Change::ProjectGrant {
                    project: project.clone(),
                    subject: GrantSubject::User(user.clone()),
                    level: Some(level),
                });
                facts.user_grants.insert((project, user), level);
            }
        }
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
