//! The index against the reference evaluator on random worlds
//! (`random`, `api_keys`), and the scenarios of the permission matrix
//! (`scenarios`); this file holds what they share.

use super::*;

mod api_keys;
mod random;
mod scenarios;

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

fn build(changes: &[Change]) -> Index {
    let mut index = Index::new();
    for change in changes {
        index.apply(change).unwrap();
    }
    index
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
