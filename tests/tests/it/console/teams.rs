//! A team's page: an administrator adds, promotes and removes members; a
//! lead manages their own team's members and no other team's.

use super::organization::{Person, founder, joiner, world};
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

/// Creates teams named `names` as `owner`; their pages' paths.
async fn teams(owner: &mut Person, names: &[&str]) -> Vec<String> {
    for name in names {
        let form = [("display_name", *name), ("request_id", "")];
        let created = owner
            .submit(TREE, "/console/organization/teams", &form)
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    }
    let tree = owner.browser.get(TREE).await.body;
    names.iter().map(|name| team_path(&tree, name)).collect()
}

/// `by` adds `who` to the team at `team` with `role`, through its form.
async fn add(by: &mut Person, team: &str, who: &Person, role: &str) -> Answer {
    let user = format!("users/{}", who.user.id);
    let form = [("user", user.as_str()), ("role", role), ("request_id", "")];
    by.submit(team, &format!("{team}/members"), &form).await
}

#[tokio::test]
async fn a_team_lead_manages_their_own_team_and_no_other() {
    let (sandbox, channel) = world().await;
    let (mut owner, org) = founder(&sandbox, &channel, "owner@teams.example").await;
    let member = "roles/member";
    let mut lead = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "lead@teams.example",
        member,
    )
    .await;
    let dev = joiner(
        &sandbox,
        &channel,
        &owner,
        &org,
        "dev@teams.example",
        member,
    )
    .await;
    let paths = teams(&mut owner, &["Alpha", "Beta"]).await;
    let (alpha, beta) = (&paths[0], &paths[1]);

    let added = add(&mut owner, alpha, &lead, "lead").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = owner.browser.get(alpha).await.body;
    assert!(page.contains(&row(&lead.email)), "{page}");
    assert!(page.contains(r#"<strong class="lead">Lead</strong>"#));

    // The lead adds a member to their own team.
    let page = lead.browser.get(alpha).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Add to team"), "{}", page.body);
    let added = add(&mut lead, alpha, &dev, "member").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = lead.browser.get(alpha).await.body;
    assert!(page.contains(&row(&dev.email)), "{page}");

    // Another team: no form, and a forged one is refused with nothing added.
    let page = lead.browser.get(beta).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("Add to team"), "{}", page.body);
    let refused = add(&mut lead, beta, &dev, "member").await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    let page = owner.browser.get(beta).await.body;
    assert!(!page.contains(&row(&dev.email)), "{page}");
}

#[tokio::test]
async fn an_administrator_promotes_removes_deletes_and_restores() {
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
    let crew = teams(&mut owner, &["Crew"]).await.remove(0);
    let empty = owner.browser.get(&crew).await.body;
    assert!(empty.contains("No members yet."), "{empty}");

    let added = add(&mut owner, &crew, &dev, "member").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let page = owner.browser.get(&crew).await.body;
    let make_lead = format!(r#"aria-label="Make lead: {}""#, dev.email);
    assert!(page.contains(&make_lead), "{page}");

    let id = crew.rsplit('/').next().unwrap();
    let member = format!("organizations/{org}/teams/{id}/members/{}", dev.user.id);
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

    let remove = [("name", member.as_str())];
    let removed = owner
        .submit(&crew, &format!("{crew}/members/remove"), &remove)
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    let page = owner.browser.get(&crew).await.body;
    assert!(
        page.contains("No members yet.") && !page.contains(&row(&dev.email)),
        "{page}"
    );

    // Deleted, the team leaves the tree's links with a way back.
    let deleted = owner.submit(&crew, &format!("{crew}/delete"), &[]).await;
    assert_eq!(deleted.location(), TREE, "{}", deleted.body);
    let tree = owner.browser.get(TREE).await.body;
    assert!(!tree.contains(&format!(r#"href="{crew}""#)), "{tree}");
    assert!(tree.contains(r#"aria-label="Undelete team Crew""#));
    let name = format!("organizations/{org}/teams/{id}");
    let undelete = [("name", name.as_str())];
    let restored = owner
        .submit(TREE, "/console/organization/teams/undelete", &undelete)
        .await;
    assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.body);
    let tree = owner.browser.get(TREE).await.body;
    assert!(tree.contains(&format!(r#"href="{crew}""#)), "{tree}");
}
