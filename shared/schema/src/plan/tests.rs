use std::path::Path;

use super::*;

const FILE: &str = "\
types:
  - name: deployment
    parent: project
    permissions:
      - name: deployment.read
        description: See it.
        granted_by:
          - access_level: viewer
      - name: deployment.deploy
        description: Roll it out.
        granted_by:
          - access_level: contributor
";

fn schema(yaml: &str) -> Schema {
    Schema::load(Path::new("s.yaml"), yaml).unwrap()
}

/// The types a server would answer after registering `yaml`.
fn registered(yaml: &str) -> Vec<pb::ResourceType> {
    schema(yaml)
        .definitions
        .iter()
        .map(|d| pb::ResourceType {
            etag: "W/\"1\"".into(),
            ..to_proto(d)
        })
        .collect()
}

#[test]
fn a_new_type_is_created_and_the_same_one_is_unchanged() {
    let plan = Plan::new(&schema(FILE), &[]).unwrap();
    assert_eq!(plan.steps[0].action, Action::Create);
    assert!(plan.has_changes());
    let plan = Plan::new(&schema(FILE), &registered(FILE)).unwrap();
    assert_eq!(plan.steps[0].action, Action::Unchanged);
    assert!(!plan.has_changes());
    assert_eq!(plan.to_string(), "= deployment (no changes)\nno changes");
}

#[test]
fn an_update_lists_what_it_adds_and_what_the_server_keeps() {
    let wider = FILE.replace(
        "          - access_level: contributor\n",
        "          - access_level: contributor\n          - role: admin\n",
    );
    let narrower = FILE.replace("      - name: deployment.read\n        description: See it.\n        granted_by:\n          - access_level: viewer\n", "");
    let plan = Plan::new(&schema(&wider), &registered(FILE)).unwrap();
    let Action::Update(changes) = &plan.steps[0].action else {
        panic!("{plan}")
    };
    assert_eq!(
        changes,
        &[Change::AddGrant {
            permission: "deployment.deploy".into(),
            grant: Grant("role: roles/admin".into())
        }]
    );
    assert_eq!(
        plan.steps[0].request.etag, "W/\"1\"",
        "an update is guarded"
    );
    let plan = Plan::new(&schema(&narrower), &registered(FILE)).unwrap();
    assert_eq!(plan.steps[0].action, Action::Unchanged);
    assert_eq!(plan.steps[0].kept, ["permission deployment.read"]);
}

#[test]
fn a_moved_type_and_a_built_in_name_are_conflicts() {
    let mut moved = registered(FILE);
    moved[0].parent_type = "team".into();
    let conflicts = Plan::new(&schema(FILE), &moved).unwrap_err();
    assert!(
        matches!(&conflicts[0], Conflict::ParentChanged { registered, .. } if registered == "team")
    );
    let mut built_in = registered(FILE);
    built_in[0].built_in = true;
    let conflicts = Plan::new(&schema(FILE), &built_in).unwrap_err();
    assert_eq!(conflicts, [Conflict::BuiltIn("deployment".into())]);
}

#[test]
fn types_only_the_server_has_are_left_alone() {
    let mut existing = registered(FILE);
    existing.push(pb::ResourceType {
        name: "resourceTypes/queue".into(),
        parent_type: "project".into(),
        ..Default::default()
    });
    let plan = Plan::new(&schema(FILE), &existing).unwrap();
    assert_eq!(plan.unlisted, ["queue"]);
    assert!(!plan.has_changes());
}
