use std::path::Path;

use super::*;

/// Validates `yaml` and returns its diagnostics as `line:col: message`.
fn problems(yaml: &str) -> Vec<String> {
    match Schema::load(Path::new("s.yaml"), yaml) {
        Ok(_) => Vec::new(),
        Err(d) => {
            d.0.iter()
                .map(|d| format!("{}:{}: {}", d.pos.line, d.pos.column, d.message))
                .collect()
        }
    }
}

const GOOD: &str = "\
types:
  - name: tunnel_config
    parent: deployment
    permissions:
      - name: tunnel_config.read
        description: Read it.
        granted_by:
          - parent_permission: deployment.read
  - name: deployment
    display_name: Deployment
    parent: project
    permissions:
      - name: deployment.read
        description: See it.
        granted_by:
          - access_level: viewer
          - role: member
      - name: deployment.deploy
        description: Roll it out.
        granted_by:
          - access_level: contributor
";

#[test]
fn a_good_schema_registers_parents_first() {
    let schema = Schema::load(Path::new("s.yaml"), GOOD).unwrap();
    let names: Vec<&str> = schema.definitions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["deployment", "tunnel_config"]);
    let deployment = schema.definition("deployment").unwrap();
    assert_eq!(
        deployment.permissions[0].granted_by,
        [
            Grantor::AccessLevel(AccessLevel::Viewer),
            Grantor::Role("roles/member".into())
        ]
    );
    assert!(schema.engine.permission("tunnel_config.read").is_some());
}

#[test]
fn a_yaml_error_has_its_line_and_column() {
    let found = problems("types:\n  - name: x\n    parent: [oops\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("3:") || found[0].starts_with("4:"),
        "{found:?}"
    );
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    let found = problems(&GOOD.replace(
        "    display_name: Deployment",
        "    dispaly_name: Deployment",
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("10:5: "), "{found:?}");
    assert!(found[0].contains("dispaly_name"), "{found:?}");
}

#[test]
fn engine_refusals_point_at_the_field() {
    let cases = [
        (
            "          - role: member",
            "          - role: boss",
            "17:13: `roles/boss` is not a built-in role",
        ),
        (
            "    parent: project",
            "    parent: projekt",
            "11:13: unknown parent type `projekt`",
        ),
        (
            "      - name: deployment.deploy",
            "      - name: deploy",
            "18:15: `deploy` must be named `<type>.<action>` after its type",
        ),
        (
            "          - parent_permission: deployment.read",
            "          - parent_permission: project.read",
            "8:13: `project.read` is not a permission of the parent type",
        ),
    ];
    for (from, to, expected) in cases {
        let found = problems(&GOOD.replace(from, to));
        assert_eq!(found, [expected.to_string()], "{to}");
    }
}

#[test]
fn contract_rules_the_engine_leaves_to_the_handler() {
    let found = problems(&GOOD.replace(
        "          - parent_permission: deployment.read",
        "          - access_level: viewer\n          - team_role: lead",
    ));
    assert_eq!(
        found,
        [
            "9:13: `tunnel_config` is not under a team, so no team role can grant `tunnel_config.read`"
        ]
    );
    let found = problems(&GOOD.replace("        description: Read it.\n", ""));
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("5:15: permission `tunnel_config.read` needs a `description`"));
    let found = problems(&GOOD.replace("name: tunnel_config\n", "name: deployment\n"));
    assert!(
        found
            .iter()
            .any(|f| f.contains("defined twice (first at line 2)")),
        "{found:?}"
    );
    let found = problems(&GOOD.replace("name: tunnel_config\n", "name: project\n"));
    assert!(
        found
            .iter()
            .any(|f| f == "2:11: `project` is a built-in type"),
        "{found:?}"
    );
}

#[test]
fn a_parent_cycle_is_refused() {
    let yaml = "\
types:
  - name: aaa
    parent: bbb
    permissions: [{name: aaa.read, description: x}]
  - name: bbb
    parent: aaa
    permissions: [{name: bbb.read, description: x}]
";
    let found = problems(yaml);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("comes back to it"), "{found:?}");
}
