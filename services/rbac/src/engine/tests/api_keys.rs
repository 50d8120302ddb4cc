//! API keys on random worlds: what a key carries, inside its scope, while
//! its owner holds it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::random::random_world;
use super::*;
use crate::engine::reference::Facts;

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
