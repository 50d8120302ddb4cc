//! A reference evaluator, written for clarity and not for speed, to check
//! the index against: it works from plain lists of facts and propagates
//! each grant **down** the tree to every object it reaches, where the
//! index walks **up** from the object. Agreement between the two is the
//! property test.

use std::collections::{BTreeMap, BTreeSet};
use tenantry_kit::names::BuiltInRole;

use super::schema::{AccessLevel, Perms, Schema};

/// The facts: plain data.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// (type, id) → (parent id, inherit, live).
    pub objects: BTreeMap<(String, String), (Option<String>, bool, bool)>,
    /// role name → permission names.
    pub roles: BTreeMap<String, Vec<String>>,
    /// (organization, user) → role names.
    pub memberships: BTreeMap<(String, String), Vec<String>>,
    /// (team, user) → lead?
    pub team_members: BTreeMap<(String, String), bool>,
    /// (project, user) → level.
    pub user_grants: BTreeMap<(String, String), AccessLevel>,
    /// (project, team) → level.
    pub team_grants: BTreeMap<(String, String), AccessLevel>,
    /// (project, role) → level.
    pub role_grants: BTreeMap<(String, String), AccessLevel>,
    /// Users who are disabled or deleted: they hold nothing.
    pub inactive: BTreeSet<String>,
    /// Organizations whose members see only the projects granted to them.
    pub granted_only: BTreeSet<String>,
}

fn parent_type(object_type: &str) -> &'static str {
    // Deployments (the registered type of the tests) live in projects;
    // everything else in organizations.
    if object_type == "deployment" {
        "project"
    } else {
        "organization"
    }
}

impl Facts {
    fn role_perms(&self, schema: &Schema, role: &str) -> Perms {
        schema.built_in_role(role).unwrap_or_else(|| {
            self.roles
                .get(role)
                .map(|names| {
                    schema
                        .permissions(names.iter().map(String::as_str))
                        .unwrap()
                })
                .unwrap_or(0)
        })
    }

    /// Whether an object and every ancestor are live.
    fn live(&self, object_type: &str, id: &str) -> bool {
        let Some((parent, _, live)) = self.objects.get(&(object_type.to_string(), id.to_string()))
        else {
            return false;
        };
        *live
            && match parent {
                Some(p) => self.live(parent_type(object_type), p),
                None => true,
            }
    }

    /// An object and its ancestors, object first.
    pub fn chain(&self, object_type: &str, id: &str) -> Vec<(String, String)> {
        let mut out = vec![(object_type.to_string(), id.to_string())];
        let (mut kind, mut at) = (object_type.to_string(), id.to_string());
        while let Some((Some(parent), _, _)) = self.objects.get(&(kind.clone(), at.clone())) {
            kind = parent_type(&kind).to_string();
            at = parent.clone();
            out.push((kind.clone(), at.clone()));
        }
        out
    }

    /// Every (type, id) that receives grants flowing down from (type, id):
    /// itself and every descendant reached through inheriting children.
    fn reach(&self, object_type: &str, id: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        out.insert((object_type.to_string(), id.to_string()));
        for ((child_type, child_id), (parent, inherit, _)) in &self.objects {
            if parent.as_deref() == Some(id) && parent_type(child_type) == object_type && *inherit {
                out.extend(self.reach(child_type, child_id));
            }
        }
        out
    }

    /// Everything `user` holds, as (type, id) → permission bits.
    pub fn holdings(&self, schema: &Schema, user: &str) -> BTreeMap<(String, String), Perms> {
        if self.inactive.contains(user) {
            return BTreeMap::new();
        }
        let mut grants: Vec<((String, String), Perms)> = Vec::new();
        // What the member role does not carry where members see only their
        // granted projects: the permissions of projects and deployments.
        let project_perms = ["project", "deployment"]
            .iter()
            .filter_map(|t| schema.type_id(t))
            .fold(0, |a, t| a | schema.resource_type(t).permissions);
        for ((org, member), roles) in &self.memberships {
            if member == user {
                let perms = roles.iter().fold(0, |a, r| {
                    let perms = self.role_perms(schema, r);
                    if BuiltInRole::Member.is(r) && self.granted_only.contains(org) {
                        a | (perms & !project_perms)
                    } else {
                        a | perms
                    }
                });
                grants.push((("organization".into(), org.clone()), perms));
            }
        }
        for ((team, member), lead) in &self.team_members {
            if member == user {
                grants.push((("team".into(), team.clone()), schema.team_role(*lead)));
            }
        }
        for ((project, grantee), level) in &self.user_grants {
            if grantee == user {
                grants.push((
                    ("project".into(), project.clone()),
                    schema.access_level(*level),
                ));
            }
        }
        for ((project, team), level) in &self.team_grants {
            let team_live = self
                .objects
                .get(&("team".to_string(), team.clone()))
                .is_some_and(|(_, _, live)| *live);
            if team_live
                && self
                    .team_members
                    .contains_key(&(team.clone(), user.to_string()))
            {
                grants.push((
                    ("project".into(), project.clone()),
                    schema.access_level(*level),
                ));
            }
        }
        for ((project, role), level) in &self.role_grants {
            let org = self
                .objects
                .get(&("project".to_string(), project.clone()))
                .and_then(|(parent, _, _)| parent.clone());
            let holds = org.is_some_and(|org| {
                self.memberships
                    .get(&(org, user.to_string()))
                    .is_some_and(|roles| roles.contains(role))
            });
            if holds {
                grants.push((
                    ("project".into(), project.clone()),
                    schema.access_level(*level),
                ));
            }
        }
        let mut out: BTreeMap<(String, String), Perms> = BTreeMap::new();
        for ((object_type, id), perms) in grants {
            if !self
                .objects
                .contains_key(&(object_type.clone(), id.clone()))
            {
                continue;
            }
            for reached in self.reach(&object_type, &id) {
                if self.live(&reached.0, &reached.1) {
                    *out.entry(reached).or_default() |= perms;
                }
            }
        }
        // A registered permission granted by a parent permission: held on
        // an object wherever the parent permission is held on its parent.
        for ((object_type, id), (parent, _, _)) in &self.objects {
            let Some(definition) = schema
                .type_id(object_type)
                .and_then(|t| schema.resource_type(t).definition.clone())
            else {
                continue;
            };
            let Some(parent) = parent else { continue };
            let held_on_parent = out
                .get(&(definition.parent_type.clone(), parent.clone()))
                .copied()
                .unwrap_or(0);
            for permission in &definition.permissions {
                for grantor in &permission.granted_by {
                    if let super::schema::Grantor::ParentPermission(q) = grantor
                        && held_on_parent & schema.permission(q).unwrap() != 0
                        && self.live(object_type, id)
                    {
                        *out.entry((object_type.clone(), id.clone())).or_default() |=
                            schema.permission(&permission.name).unwrap();
                    }
                }
            }
        }
        out
    }
}
