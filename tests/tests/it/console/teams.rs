//! A team's page: an administrator adds, promotes and removes members; a
//! lead manages their own team's members and no other team's.

use super::organization::{founder, joiner, world};
use super::*;

const TREE: &str = "/console/organization";

/// The path of the team page the tree links as `name`.
fn team_path(tree: &str, name: &str) -> String {
    let end = tree
        .find(&format!(r#"">{name}</a>"#))
        .unwrap_or_else(|| panic!("{name} is in the tree: {tree}"));
    let start = tree[..end].rfind("/console/teams/").unwrap();
    tree[start..end].to_string()
}

/// The row of the member with `email`, as the team page shows it.
fn row(email: &str) -> String {
    format!("<td>{email}</td>")
}

#[tokio::test]
async fn a_team_lead_manages_their_own_team_and_no_other() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@teams.example").await;
    let mut lead = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "lead@teams.example",
        "roles/member",
    )
    .await;
    let dev = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "dev@teams.example",
        "roles/member",
    )
    .await;
    for name in ["Alpha", "Beta"] {
        let form = [("display_name", name), ("request_id", "")];
        let created = owner
            .submit(TREE, "/console/organization/teams", &form)
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    }
    let tree = owner.browser.get(TREE).await.body;
    let (alpha, beta) = (team_path(&tree, "Alpha"), team_path(&tree, "Beta"));

    let lead_user = format!("users/{}", lead.user.id);
    let form = [
        ("user", lead_user.as_str()),
        ("role", "lead"),
        ("request_id", ""),
    ];
    let added = owner
        .submit(&alpha, &format!("{alpha}/members"), &form)
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = owner.browser.get(&alpha).await.body;
    assert!(
        page.contains(&row(&lead.email)) && page.contains(r#"<strong class="lead">Lead</strong>"#),
        "{page}"
    );

    // The lead adds a member to their own team.
    let page = lead.browser.get(&alpha).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Add to team"), "{}", page.body);
    let dev_user = format!("users/{}", dev.user.id);
    let form = [
        ("user", dev_user.as_str()),
        ("role", "member"),
        ("request_id", ""),
    ];
    let added = lead
        .submit(&alpha, &format!("{alpha}/members"), &form)
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    assert!(
        lead.browser
            .get(&alpha)
            .await
            .body
            .contains(&row(&dev.email))
    );

    // Another team: no form, and a forged one is refused with nothing added.
    let page = lead.browser.get(&beta).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("Add to team"), "{}", page.body);
    let refused = lead.submit(&beta, &format!("{beta}/members"), &form).await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert!(
        !owner
            .browser
            .get(&beta)
            .await
            .body
            .contains(&row(&dev.email))
    );
}

#[tokio::test]
async fn an_administrator_promotes_and_removes_a_team_member() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@crew.example").await;
    let dev = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "dev@crew.example",
        "roles/member",
    )
    .await;
    let form = [("display_name", "Crew"), ("request_id", "")];
    owner
        .submit(TREE, "/console/organization/teams", &form)
        .await;
    let crew = team_path(&owner.browser.get(TREE).await.body, "Crew");
    let empty = owner.browser.get(&crew).await.body;
    assert!(empty.contains("No members yet."), "{empty}");

    let dev_user = format!("users/{}", dev.user.id);
    let form = [
        ("user", dev_user.as_str()),
        ("role", "member"),
        ("request_id", ""),
    ];
    let added = owner.submit(&crew, &format!("{crew}/members"), &form).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = owner.browser.get(&crew).await.body;
    assert!(
        page.contains(&format!(r#"aria-label="Make lead: {}""#, dev.email)),
        "{page}"
    );

    let member = format!(
        "organizations/{org}/teams/{}/members/{}",
        crew.rsplit('/').next().unwrap(),
        dev.user.id
    );
    let promote = [("name", member.as_str()), ("role", "lead")];
    let promoted = owner
        .submit(&crew, &format!("{crew}/members/role"), &promote)
        .await;
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.body);
    let page = owner.browser.get(&crew).await.body;
    assert!(
        page.contains(r#"<strong class="lead">Lead</strong>"#),
        "{page}"
    );

    let removed = owner
        .submit(
            &crew,
            &format!("{crew}/members/remove"),
            &[("name", member.as_str())],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = owner.browser.get(&crew).await.body;
    assert!(
        page.contains("No members yet.") && !page.contains(&row(&dev.email)),
        "{page}"
    );
}
