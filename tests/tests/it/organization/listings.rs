//! Unique slugs, replayed requests, and listings that filter and paginate.

use super::*;

/// Ada, signed up, with no organization of her own making yet.
struct Ada {
    w: World,
    token: String,
}

#[tokio::test]
async fn slugs_are_unique_and_request_ids_replay() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (_, token) = w.user("ada@example.com").await;
        let mut a = Ada { w, token };
        let rows = a_request_id_replays_and_a_slug_is_unique(&mut a).await;
        bad_request_ids_and_missing_names_write_nothing(&mut a, rows).await;
        a_derived_slug_gets_a_suffix_and_organizations_are_ones_own(&mut a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_request_id_replays_and_a_slug_is_unique(a: &mut Ada) -> i64 {
    let Ada { w, token } = a;
    let create = |slug: &str, request_id: &str| pb::CreateOrganizationRequest {
        organization: Some(pb::Organization {
            display_name: "Slugged".into(),
            slug: slug.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    };
    let first = w
        .orgs
        .create_organization(authed(create("slugged", "req-1"), token))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    // The same request id answers with the same organization.
    let replay = w
        .orgs
        .create_organization(authed(create("slugged", "req-1"), token))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(replay.name, first.name);
    let rows = w.organization_rows().await;

    let duplicate = w
        .orgs
        .create_organization(authed(create("slugged", "req-2"), token))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    for bad in [
        "ab",
        "Upper",
        "1digit",
        "trailing-",
        "under_score",
        "sp ace",
    ] {
        let error = w
            .orgs
            .create_organization(authed(create(bad, ""), token))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{bad}");
        let violations = error.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "organization.slug");
    }
    rows
}

async fn bad_request_ids_and_missing_names_write_nothing(a: &mut Ada, rows: i64) {
    let Ada { w, token } = a;
    let create = |slug: &str, request_id: &str| pb::CreateOrganizationRequest {
        organization: Some(pb::Organization {
            display_name: "Slugged".into(),
            slug: slug.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    };
    let bad_request_id = w
        .orgs
        .create_organization(authed(create("fine-slug", "not a valid id!"), token))
        .await
        .unwrap_err();
    assert_eq!(bad_request_id.code(), Code::InvalidArgument);
    let no_name = w
        .orgs
        .create_organization(authed(
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization::default()),
                request_id: String::new(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(no_name.code(), Code::InvalidArgument);
    assert_eq!(w.organization_rows().await, rows, "nothing was written");
}

async fn a_derived_slug_gets_a_suffix_and_organizations_are_ones_own(a: &mut Ada) {
    let Ada { w, token } = a;
    let create = |slug: &str, request_id: &str| pb::CreateOrganizationRequest {
        organization: Some(pb::Organization {
            display_name: "Slugged".into(),
            slug: slug.into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    };
    // A derived slug that collides gets a suffix instead of failing.
    let twin = w
        .orgs
        .create_organization(authed(create("", ""), token))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert!(twin.slug.starts_with("slugged-"), "{}", twin.slug);

    // A user can create an organization only for themselves.
    let (bob, _) = w.user("bob@example.com").await;
    let for_bob = w
        .orgs
        .create_organization(authed(
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    display_name: "Not Mine".into(),
                    owner: format!("users/{bob}"),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(for_bob.code(), Code::InvalidArgument);
}

/// Parent, Ada's, with seven children: organizations and departments in
/// turn, oldest first.
struct Parent {
    w: World,
    token: String,
    root: pb::Organization,
    children: Vec<pb::Organization>,
}

impl Parent {
    async fn start(storage: Storage) -> Parent {
        let mut w = World::start(storage).await;
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Parent").await;
        let mut children = Vec::new();
        for i in 0..7 {
            let kind = if i % 2 == 0 {
                pb::OrganizationKind::Organization
            } else {
                pb::OrganizationKind::Department
            };
            children.push(
                w.child(&ada, &token, &root, &format!("Unit {i}"), kind)
                    .await
                    .unwrap(),
            );
        }
        Parent {
            w,
            token,
            root,
            children,
        }
    }
}

#[tokio::test]
async fn listings_filter_and_paginate_with_tokens_bound_to_the_query() {
    for storage in storages() {
        let mut p = Parent::start(storage).await;
        pages_list_every_child_once_and_filters_select(&mut p).await;
        wildcards_in_a_prefix_are_literal(&mut p).await;
        a_token_of_another_query_or_tampered_with_is_refused(&mut p).await;
        soft_deleted_children_show_only_when_asked_for(&mut p).await;
        the_callers_own_organizations_list_with_roles(&mut p).await;
        p.w.sandbox.shutdown().await.unwrap();
    }
}

async fn pages_list_every_child_once_and_filters_select(p: &mut Parent) {
    let Parent {
        w,
        token,
        root,
        children,
    } = p;
    let list = |request: pb::ListOrganizationsRequest| authed(request, token);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = w
            .orgs
            .list_organizations(list(pb::ListOrganizationsRequest {
                parent: root.name.clone(),
                page_size: 3,
                page_token: page_token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.organizations.len() <= 3);
        seen.extend(page.organizations.into_iter().map(|o| o.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = children.iter().map(|o| o.name.clone()).collect();
    assert_eq!(seen, expected, "every child once, oldest first");

    let departments = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            kind: pb::OrganizationKind::Department as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(departments.len(), 3);
    let prefixed = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            name_prefix: "unit 4".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(prefixed.len(), 1);
}

async fn wildcards_in_a_prefix_are_literal(p: &mut Parent) {
    let Parent { w, token, .. } = p;
    let list = |request: pb::ListOrganizationsRequest| authed(request, token);
    // Wildcards in a prefix are literal.
    let wildcard = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            name_prefix: "%".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert!(wildcard.is_empty());
}

async fn a_token_of_another_query_or_tampered_with_is_refused(p: &mut Parent) {
    let Parent { w, token, root, .. } = p;
    let list = |request: pb::ListOrganizationsRequest| authed(request, token);
    // A token from another query, or tampered with, is refused.
    let first = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            page_size: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let other_query = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            page_size: 2,
            kind: pb::OrganizationKind::Department as i32,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(other_query.code(), Code::InvalidArgument);
    let mut tampered = first.next_page_token.clone();
    tampered.replace_range(..1, if tampered.starts_with('A') { "B" } else { "A" });
    let tampered = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            page_size: 2,
            page_token: tampered,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(tampered.code(), Code::InvalidArgument);
}

async fn soft_deleted_children_show_only_when_asked_for(p: &mut Parent) {
    let Parent {
        w,
        token,
        root,
        children,
    } = p;
    let list = |request: pb::ListOrganizationsRequest| authed(request, token);
    // Soft-deleted children show only when asked for.
    let gone = &children[6];
    w.orgs
        .delete_organization(authed(
            pb::DeleteOrganizationRequest {
                name: gone.name.clone(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap();
    let live = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(live.len(), 6);
    let all = w
        .orgs
        .list_organizations(list(pb::ListOrganizationsRequest {
            parent: root.name.clone(),
            show_deleted: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .organizations;
    assert_eq!(all.len(), 7);
    assert!(
        all.iter()
            .any(|o| o.name == gone.name && o.delete_time.is_some())
    );
}

async fn the_callers_own_organizations_list_with_roles(p: &mut Parent) {
    let Parent {
        w, root, children, ..
    } = p;
    // The caller's own organizations, with roles, for switching.
    let (bob, bob_token) = w.user("bob@example.com").await;
    w.member(&bob, id(&children[0].name));
    w.member(&bob, id(&root.name));
    let mine = w
        .orgs
        .list_my_organizations(authed(
            pb::ListMyOrganizationsRequest {
                page_size: 1,
                ..Default::default()
            },
            &bob_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.organizations.len(), 1);
    assert_eq!(
        mine.organizations[0]
            .organization
            .as_ref()
            .unwrap()
            .display_name,
        "Parent"
    );
    assert!(!mine.organizations[0].roles.is_empty());
    assert!(!mine.organizations[0].owner);
    let rest = w
        .orgs
        .list_my_organizations(authed(
            pb::ListMyOrganizationsRequest {
                page_size: 1,
                page_token: mine.next_page_token,
                ..Default::default()
            },
            &bob_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rest.organizations[0]
            .organization
            .as_ref()
            .unwrap()
            .display_name,
        "Unit 0"
    );
    assert!(rest.next_page_token.is_empty());
}
