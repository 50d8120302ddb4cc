use std::path::Path;

use super::*;

const SCHEMA: &str = "\
types:
  - name: deployment
    parent: project
    permissions:
      - name: deployment.read
        description: See it.
        granted_by:
          - parent_permission: project.read
      - name: deployment.deploy
        description: Roll it out.
        granted_by:
          - access_level: contributor
          - role: admin
  - name: alert_channel
    parent: organization
    permissions:
      - name: alert_channel.manage
        description: Change it.
        granted_by:
          - role: admin
";

const WORLD: &str = "\
schema: schema.yaml
relationships:
  - organization:acme#member@user:alice
  - organization:acme#admin@user:olga
  - organization:acme-eu#parent@organization:acme
  - project:rocket#parent@organization:acme-eu
  - team:ops#parent@organization:acme
  - team:ops#member@user:tom
  - project:rocket#contributor@team:ops#member
  - project:rocket#viewer@user:vera
  - deployment:web#parent@project:rocket
  - alert_channel:pager#parent@organization:acme
";

fn outcome(tests: &str) -> Result<Outcome, Diagnostics> {
    let schema = Schema::load(Path::new("schema.yaml"), SCHEMA).unwrap();
    let suite = Suite::parse(Path::new("t.yaml"), &format!("{WORLD}{tests}"))?;
    run(&suite, &schema)
}

fn failures(tests: &str) -> Vec<String> {
    outcome(tests)
        .unwrap()
        .failures
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn checks_follow_roles_grants_teams_and_parent_permissions() {
    let tests = "\
checks:
  - user:tom may deploy deployment:web
  - user:olga may deployment.deploy deployment:web
  - user:vera may read deployment:web
  - user:vera may not deploy deployment:web
  - user:alice may read deployment:web
  - user:alice may not deploy deployment:web
  - user:nobody may not read deployment:web
  - user:olga may manage alert_channel:pager
  - user:tom may not manage alert_channel:pager
";
    let outcome = outcome(tests).unwrap();
    assert_eq!(outcome.failures, []);
    assert_eq!(outcome.passed, 9);
}

#[test]
fn lookups_answer_both_ways() {
    let tests = "\
lookups:
  - query: user:tom may deploy deployment:*
    expect: [deployment:web]
  - query: user:* may deploy deployment:web
    expect: [user:olga, user:tom]
  - query: user:vera may deploy deployment:*
    expect: []
";
    assert_eq!(failures(tests), Vec::<String>::new());
}

#[test]
fn a_failing_assertion_says_which_what_and_what_came() {
    let tests = "checks:\n  - user:alice may deploy deployment:web\nlookups:\n  - query: user:* may deploy deployment:web\n    expect: [user:tom]\n";
    assert_eq!(
        failures(tests),
        [
            "t.yaml:14:5: `user:alice may deploy deployment:web`: expected allowed, got denied",
            "t.yaml:16:12: `user:* may deploy deployment:web`: expected [user:tom], got [user:olga, user:tom]",
        ]
    );
}

#[test]
fn relationships_the_services_would_refuse_are_diagnostics() {
    let cases = [
        (
            "deployment:api#parent@organization:acme",
            "the parent of a `deployment` is an `project:…`",
        ),
        (
            "deployment:api#owner@user:alice",
            "objects of `deployment` have one relation, `parent`",
        ),
        (
            "team:ops#viewer@user:alice",
            "`team` has no relation `viewer`",
        ),
        (
            "queue:q1#parent@project:rocket",
            "`queue` is not a type of the schema",
        ),
        (
            "deployment:api#parent@project:ghost",
            "project:ghost has no parent",
        ),
        (
            "deployment:web#parent@project:other",
            "already has the parent project:rocket",
        ),
        (
            "project:rocket#admin@organization:other#admin",
            "a role grant names the project's own organization",
        ),
    ];
    for (relationship, message) in cases {
        let extra = format!("  - {relationship}\n");
        let error = outcome(&extra).unwrap_err().to_string();
        assert!(error.contains(message), "{relationship}: {error}");
        assert!(error.starts_with("t.yaml:"), "{error}");
    }
}

#[test]
fn an_unknown_permission_is_a_diagnostic() {
    let error = outcome("checks:\n  - user:tom may fly deployment:web\n").unwrap_err();
    assert!(error.to_string().contains("deployment.fly"), "{error}");
}

#[test]
fn malformed_sentences_name_the_expected_shape() {
    let error = outcome("checks:\n  - tom can deploy web\n")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("t.yaml:14:5: "), "{error}");
    assert!(error.contains("SUBJECT may PERMISSION OBJECT"), "{error}");
    let error = outcome("lookups:\n  - query: user:* may deploy deployment:*\n    expect: []\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("exactly one side"), "{error}");
}
