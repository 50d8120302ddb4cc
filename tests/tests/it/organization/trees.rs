//! Trees ten levels deep that move within their root, departments, settings, updates and etags.

use super::*;

/// Acme Corp, Ada's root, its creation seen on the bus.
struct AcmeCorp {
    w: World,
    tap: EventTap,
    ada: String,
    token: String,
    root: pb::Organization,
}

impl AcmeCorp {
    async fn start(storage: Storage) -> AcmeCorp {
        let mut w = World::start(storage).await;
        let mut tap: EventTap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;

        let root = w.root(&ada, &token, "Acme Corp").await;
        assert_eq!(root.slug, "acme-corp");
        assert_eq!(root.depth, 1);
        assert_eq!(root.root, root.name);
        assert_eq!(root.owner, format!("users/{ada}"));
        assert!(root.workspace.starts_with("workspaces/"));
        assert_eq!(root.inherit_access, Some(true));
        let created = tap
            .expect_about("organization.created", id(&root.name), EVENT_WAIT)
            .await
            .unwrap();
        let body: events::OrganizationCreated = payload(&created);
        assert_eq!(body.owner_user_id, ada);
        assert_eq!(body.root_id, id(&root.name));
        assert_eq!(created.organization_id, id(&root.name));
        tap.expect_about("workspace.created", id(&root.workspace), EVENT_WAIT)
            .await
            .unwrap();

        AcmeCorp {
            w,
            tap,
            ada,
            token,
            root,
        }
    }
}

#[tokio::test]
async fn trees_nest_ten_levels_move_within_their_root_and_emit_events() {
    for storage in storages() {
        let mut a = AcmeCorp::start(storage).await;
        let chain = a_chain_reaches_ten_levels_and_the_eleventh_is_refused(&mut a).await;
        ancestry_lists_the_root_first(&mut a, &chain).await;
        subtrees_move_under_the_root_but_never_deeper_than_ten(&mut a, &chain).await;
        cycles_roots_and_other_trees_do_not_move(&mut a, &chain).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_chain_reaches_ten_levels_and_the_eleventh_is_refused(
    a: &mut AcmeCorp,
) -> Vec<pb::Organization> {
    let AcmeCorp {
        w,
        ada,
        token,
        root,
        ..
    } = a;
    // A chain down to the tenth level; the eleventh is refused.
    let mut chain = vec![root.clone()];
    for level in 2..=10 {
        let parent = chain.last().unwrap().clone();
        let org = w
            .child(
                ada,
                token,
                &parent,
                &format!("Level {level}"),
                pb::OrganizationKind::Organization,
            )
            .await
            .unwrap();
        assert_eq!(org.depth, level);
        assert_eq!(org.root, root.name);
        assert_eq!(org.parent, parent.name);
        chain.push(org);
    }
    let before = w.organization_rows().await;
    let too_deep = w
        .child(
            ada,
            token,
            &chain[9],
            "Level 11",
            pb::OrganizationKind::Organization,
        )
        .await
        .unwrap_err();
    assert_eq!(too_deep.code(), Code::FailedPrecondition);
    let info = too_deep.get_details_error_info().unwrap();
    assert_eq!(info.reason, "TREE_TOO_DEEP");
    assert_eq!(info.metadata.get("max_depth").unwrap(), "10");
    assert_eq!(w.organization_rows().await, before, "nothing was written");

    chain
}

async fn ancestry_lists_the_root_first(a: &mut AcmeCorp, chain: &[pb::Organization]) {
    let AcmeCorp { w, token, .. } = a;
    // Ancestry, root first.
    let ancestry = w
        .orgs
        .get_organization_ancestry(authed(
            pb::GetOrganizationAncestryRequest {
                name: chain[3].name.clone(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .ancestors;
    let names: Vec<&str> = ancestry.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        vec![chain[0].name.as_str(), &chain[1].name, &chain[2].name]
    );
}

async fn subtrees_move_under_the_root_but_never_deeper_than_ten(
    a: &mut AcmeCorp,
    chain: &[pb::Organization],
) {
    let AcmeCorp {
        w,
        tap,
        token,
        root,
        ..
    } = a;
    // Moving level 5 (with its five descendants) under the root is
    // fine; moving a subtree deeper than ten levels is not.
    let moved = w
        .orgs
        .move_organization(authed(
            pb::MoveOrganizationRequest {
                name: chain[4].name.clone(),
                new_parent: root.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(moved.depth, 2);
    assert_eq!(moved.parent, root.name);
    let deepest = w.get(token, &chain[9].name).await.unwrap();
    assert_eq!(deepest.depth, 7, "the subtree moved with it");
    let event = tap.expect("organization.moved", EVENT_WAIT).await.unwrap();
    let body: events::OrganizationMoved = payload(&event);
    assert_eq!(body.new_parent_id, id(&root.name));
    assert_eq!(body.old_parent_id, id(&chain[3].name));
    assert_eq!(body.subtree_size, 6);
    let deeper = w
        .orgs
        .move_organization(authed(
            pb::MoveOrganizationRequest {
                name: chain[4].name.clone(),
                new_parent: chain[3].name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap();
    assert_eq!(deeper.into_inner().organization.unwrap().depth, 5);
    let level9 = w.get(token, &chain[8].name).await.unwrap();
    let too_deep = w
        .orgs
        .move_organization(authed(
            pb::MoveOrganizationRequest {
                name: chain[4].name.clone(),
                new_parent: level9.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(too_deep.code(), Code::FailedPrecondition);
}

async fn cycles_roots_and_other_trees_do_not_move(a: &mut AcmeCorp, chain: &[pb::Organization]) {
    let AcmeCorp {
        w,
        ada,
        token,
        root,
        ..
    } = a;
    // Cycles, roots and other trees.
    let cases = [
        (chain[2].name.clone(), chain[5].name.clone(), "MOVE_CYCLE"),
        (chain[2].name.clone(), chain[2].name.clone(), "MOVE_CYCLE"),
        (root.name.clone(), chain[1].name.clone(), "ROOT_CANNOT_MOVE"),
    ];
    for (name, new_parent, expected) in cases {
        let error = w
            .orgs
            .move_organization(authed(
                pb::MoveOrganizationRequest {
                    name,
                    new_parent,
                    etag: String::new(),
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert_eq!(reason(&error), expected);
    }
    let other = w.root(ada, token, "Other Root").await;
    let across = w
        .orgs
        .move_organization(authed(
            pb::MoveOrganizationRequest {
                name: chain[2].name.clone(),
                new_parent: other.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&across), "CROSS_TREE_MOVE");
    let root_move = w
        .orgs
        .move_organization(authed(
            pb::MoveOrganizationRequest {
                name: other.name.clone(),
                new_parent: chain[1].name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(root_move.code(), Code::FailedPrecondition);
}

/// Flat Co, Ada's root, with the Research department; the event tap open.
struct FlatCo {
    w: World,
    tap: EventTap,
    ada: String,
    token: String,
    root: pb::Organization,
    department: pb::Organization,
}

impl FlatCo {
    async fn start(storage: Storage) -> FlatCo {
        let mut w = World::start(storage).await;
        let tap = w.sandbox.event_tap().await.unwrap();
        let (ada, token) = w.user("ada@example.com").await;
        let root = w.root(&ada, &token, "Flat Co").await;
        let department = w
            .child(
                &ada,
                &token,
                &root,
                "Research",
                pb::OrganizationKind::Department,
            )
            .await
            .unwrap();
        assert_eq!(department.kind, pb::OrganizationKind::Department as i32);

        FlatCo {
            w,
            tap,
            ada,
            token,
            root,
            department,
        }
    }
}

#[tokio::test]
async fn departments_settings_updates_and_etags() {
    for storage in storages() {
        let mut f = FlatCo::start(storage).await;
        let updated = switching_departments_off_refuses_new_ones(&mut f).await;
        a_sub_organization_is_still_allowed(&mut f).await;
        stale_etags_and_bad_masks_write_nothing(&mut f, &updated).await;
        deactivation_keeps_the_data_and_shows_in_the_state(&mut f).await;
        f.w.sandbox.shutdown().await.unwrap();
    }
}

async fn switching_departments_off_refuses_new_ones(f: &mut FlatCo) -> pb::Organization {
    let FlatCo {
        w,
        tap,
        ada,
        token,
        root,
        department,
    } = f;
    // Switch departments off: new ones are refused (also below a
    // department, whose nearest organization decides), old ones stay.
    let updated = w
        .orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: root.name.clone(),
                    display_name: "Flat Company".into(),
                    settings: Some(pb::OrganizationSettings {
                        departments_enabled: Some(false),
                        require_mfa: true,
                        allowed_email_domains: vec!["Flat.example".into()],
                        ..Default::default()
                    }),
                    etag: root.etag.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name", "settings"]),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    let settings = updated.settings.clone().unwrap();
    assert_eq!(updated.display_name, "Flat Company");
    assert_eq!(settings.departments_enabled, Some(false));
    assert!(settings.require_mfa);
    assert_eq!(settings.allowed_email_domains, vec!["flat.example"]);
    assert_ne!(updated.etag, root.etag);
    let event = tap
        .expect("organization.updated", EVENT_WAIT)
        .await
        .unwrap();
    let body: events::OrganizationUpdated = payload(&event);
    assert!(
        body.changed_fields
            .contains(&"settings.require_mfa".to_string())
    );
    let name_change = event
        .changes
        .iter()
        .find(|c| c.field == "display_name")
        .unwrap();
    assert_eq!(
        (name_change.before.as_str(), name_change.after.as_str()),
        ("Flat Co", "Flat Company")
    );

    for parent in [&root, &department] {
        let refused = w
            .child(
                ada,
                token,
                parent,
                "Sales",
                pb::OrganizationKind::Department,
            )
            .await
            .unwrap_err();
        assert_eq!(reason(&refused), "DEPARTMENTS_DISABLED");
    }
    assert!(
        w.get(token, &department.name).await.is_ok(),
        "existing departments stay readable"
    );
    updated
}

async fn a_sub_organization_is_still_allowed(f: &mut FlatCo) {
    let FlatCo {
        w,
        ada,
        token,
        root,
        ..
    } = f;
    // A sub-organization is still allowed.
    w.child(
        ada,
        token,
        root,
        "Subsidiary",
        pb::OrganizationKind::Organization,
    )
    .await
    .unwrap();
}

async fn stale_etags_and_bad_masks_write_nothing(f: &mut FlatCo, updated: &pb::Organization) {
    let FlatCo { w, token, root, .. } = f;

    // A stale etag is ABORTED; unknown and immutable mask paths are
    // INVALID_ARGUMENT; none of them write.
    let stale = w
        .orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: root.name.clone(),
                    display_name: "Again".into(),
                    etag: root.etag.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    for path in ["owner", "parent", "kind", "nonsense", "settings.nope"] {
        let error = w
            .orgs
            .update_organization(authed(
                pb::UpdateOrganizationRequest {
                    organization: Some(pb::Organization {
                        name: root.name.clone(),
                        display_name: "Again".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&[path]),
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{path}");
        let violations = error.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "update_mask.paths[0]");
    }
    let bad_metadata = w
        .orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: root.name.clone(),
                    metadata: (0..65)
                        .map(|i| (format!("k{i}"), "v".to_string()))
                        .collect(),
                    ..Default::default()
                }),
                update_mask: mask(&["metadata"]),
            },
            token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_metadata.code(), Code::InvalidArgument);
    let now = w.get(token, &root.name).await.unwrap();
    assert_eq!(now.display_name, "Flat Company");
    assert_eq!(now.etag, updated.etag, "nothing was written");
    assert!(now.metadata.is_empty());
}

async fn deactivation_keeps_the_data_and_shows_in_the_state(f: &mut FlatCo) {
    let FlatCo {
        w,
        tap,
        token,
        root,
        ..
    } = f;
    // Deactivation keeps the data and is reported in the state.
    let deactivated = w
        .orgs
        .deactivate_organization(authed(
            pb::DeactivateOrganizationRequest {
                name: root.name.clone(),
                etag: String::new(),
                reason: "unpaid".into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(deactivated.state, pb::OrganizationState::Deactivated as i32);
    let event = tap
        .expect("organization.deactivated", EVENT_WAIT)
        .await
        .unwrap();
    assert_eq!(
        payload::<events::OrganizationDeactivated>(&event).reason,
        "unpaid"
    );
    let reactivated = w
        .orgs
        .reactivate_organization(authed(
            pb::ReactivateOrganizationRequest {
                name: root.name.clone(),
                etag: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(reactivated.state, pb::OrganizationState::Active as i32);
    tap.expect("organization.reactivated", EVENT_WAIT)
        .await
        .unwrap();
}
