//! Object types that services register, and the objects they attach:
//! registration rules, the permission catalog, ownership of a type, the
//! relationships a service writes and what is refused, and purging.

use tenantry_proto::tenantry::authz::v1::relationship_update::Operation;

mod relationships;

use relationships::*;

use super::*;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_testkit::clients::{Schema, ServiceAccounts};

/// A service account of the platform, with a token for one organization.
async fn service_token(w: &World, root: &User, organization: &str) -> String {
    let mut accounts = ServiceAccounts::new(w.channel.clone());
    let account = accounts
        .create_service_account(authed(
            identity_pb::CreateServiceAccountRequest {
                service_account: Some(identity_pb::ServiceAccount {
                    display_name: "deployer".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    let credential = accounts
        .create_service_account_credential(authed(
            identity_pb::CreateServiceAccountCredentialRequest {
                parent: account.name,
                ..Default::default()
            },
            &root.token,
        ))
        .await
        .unwrap()
        .into_inner();
    accounts
        .issue_service_account_token(identity_pb::IssueServiceAccountTokenRequest {
            client_id: credential.credential.unwrap().client_id,
            client_secret: credential.client_secret,
            organization: format!("organizations/{organization}"),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

fn deployment_type() -> authz::ResourceType {
    use authz::permission_grant::Grantor;
    authz::ResourceType {
        name: "resourceTypes/deployment".into(),
        parent_type: "project".into(),
        permissions: vec![
            authz::PermissionDefinition {
                name: "deployment.read".into(),
                description: "see a deployment".into(),
                granted_by: vec![authz::PermissionGrant {
                    grantor: Some(Grantor::ParentPermission("project.read".into())),
                }],
            },
            authz::PermissionDefinition {
                name: "deployment.deploy".into(),
                description: "roll a deployment out".into(),
                granted_by: vec![
                    authz::PermissionGrant {
                        grantor: Some(Grantor::ProjectAccessLevel(
                            authz::ProjectAccessLevel::Contributor as i32,
                        )),
                    },
                    authz::PermissionGrant {
                        grantor: Some(Grantor::Role("roles/admin".into())),
                    },
                ],
            },
        ],
        ..Default::default()
    }
}

fn parent_link(
    operation: authz::relationship_update::Operation,
    object_type: &str,
    id: &str,
    parent_type: &str,
    parent: &str,
) -> authz::RelationshipUpdate {
    authz::RelationshipUpdate {
        operation: operation as i32,
        relationship: Some(authz::Relationship {
            resource: object(object_type, id),
            relation: "parent".into(),
            subject: Some(authz::SubjectReference {
                object: object(parent_type, parent),
                optional_relation: String::new(),
            }),
        }),
    }
}

/// Acme (Ada's, Bob a member, the Rocket project) and Evil (Eve's, with a
/// project of its own), with a platform service account's token for Acme.
pub(super) struct Tenants {
    w: World,
    root: User,
    ada: User,
    bob: User,
    eve: User,
    acme: org::Organization,
    acme_id: String,
    rocket: String,
    evil: org::Organization,
    evil_project: String,
    service: String,
}

impl Tenants {
    async fn start(storage: Storage) -> Tenants {
        let w = World::start(storage).await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let eve = w.user("eve@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let rocket = w.project(&ada, &acme_id, "Rocket").await;
        let evil = w.organization(&eve, "Evil", None).await;
        let evil_project = w.project(&eve, &id(&evil.name), "Evil Plan").await;
        w.add_member(&ada, &acme_id, &bob, &["roles/member"]).await;
        let service = service_token(&w, &root, &acme_id).await;
        Tenants {
            w,
            root,
            ada,
            bob,
            eve,
            acme,
            acme_id,
            rocket,
            evil,
            evil_project,
            service,
        }
    }

    /// Writes relationships as Acme's service.
    async fn write(
        &self,
        updates: Vec<authz::RelationshipUpdate>,
        preconditions: Vec<authz::Precondition>,
    ) -> Result<tonic::Response<authz::WriteRelationshipsResponse>, tonic::Status> {
        self.w
            .authz()
            .write_relationships(authed(
                authz::WriteRelationshipsRequest {
                    updates,
                    optional_preconditions: preconditions,
                },
                &self.service,
            ))
            .await
    }
}

#[tokio::test]
async fn services_register_types_and_attach_their_objects_in_their_organization() {
    for storage in storages() {
        let t = Tenants::start(storage).await;
        lookups_and_watches_stay_in_the_callers_organization(&t).await;
        users_and_bad_definitions_register_nothing(&t).await;
        definitions_outside_the_contract_register_nothing(&t).await;
        validating_registers_nothing_and_registering_describes(&t).await;
        the_permission_catalog_tells_registered_from_built_in(&t).await;
        a_type_is_kept_from_other_services_and_by_its_roles(&t).await;
        roles_and_types_come_in_pages(&t).await;
        the_owners_definition_stands(&t).await;
        let written = an_attached_object_is_watched(&t).await;
        permissions_flow_from_the_project(&t, &written).await;
        bad_writes_are_refused(&t).await;
        preconditions_and_batch_size_are_checked(&t).await;
        another_tenants_relationships_are_out_of_every_filter(&t).await;
        what_lives_in_a_project_keeps_it_from_being_purged(&t).await;
        relationships_are_read_in_pages(&t).await;
        a_parent_and_its_child_come_in_one_write(&t).await;
        t.w.sandbox.shutdown().await.unwrap();
    }
}

async fn lookups_and_watches_stay_in_the_callers_organization(t: &Tenants) {
    let Tenants {
        w,
        ada,
        bob,
        eve,
        acme,
        rocket,
        evil,
        service,
        ..
    } = t;
    // A service account's lookup is inside its organization, with or
    // without the (optional) filter; another organization is refused.
    for filter in [String::new(), acme.name.clone()] {
        let found = w
            .authz()
            .lookup_resources(authed(
                authz::LookupResourcesRequest {
                    resource_type: "project".into(),
                    permission: "project.read".into(),
                    subject: subject(&bob.id),
                    organization: filter,
                    ..Default::default()
                },
                service,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.resource_ids, vec![rocket.clone()]);
    }
    let elsewhere = w
        .authz()
        .lookup_resources(authed(
            authz::LookupResourcesRequest {
                resource_type: "project".into(),
                permission: "project.read".into(),
                subject: subject(&eve.id),
                organization: evil.name.clone(),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    // A cursor that is not one is refused in the field it came in.
    let garbage = w
        .authz()
        .watch(authed(
            authz::WatchRequest {
                optional_start_cursor: Some(authz::ZedToken {
                    token: "garbage".into(),
                }),
                organization: acme.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(garbage.code(), Code::InvalidArgument);
    assert!(
        garbage.message().contains("optional_start_cursor"),
        "{}",
        garbage.message()
    );
}

async fn users_and_bad_definitions_register_nothing(t: &Tenants) {
    let Tenants {
        w, ada, service, ..
    } = t;
    let mut schema = Schema::new(w.channel.clone());

    // Users do not register types; bad definitions write nothing.
    let by_user = schema
        .register_resource_type(authed(
            authz::RegisterResourceTypeRequest {
                resource_type: Some(deployment_type()),
                validate_only: false,
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_user.code(), Code::PermissionDenied);
    for broken in [
        authz::ResourceType {
            parent_type: "galaxy".into(),
            ..deployment_type()
        },
        authz::ResourceType {
            permissions: Vec::new(),
            ..deployment_type()
        },
    ] {
        let error = schema
            .register_resource_type(authed(
                authz::RegisterResourceTypeRequest {
                    resource_type: Some(broken),
                    validate_only: false,
                },
                service,
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
    }
    // A built-in name is taken; a built-in type is not deleted.
    let taken = schema
        .register_resource_type(authed(
            authz::RegisterResourceTypeRequest {
                resource_type: Some(authz::ResourceType {
                    name: "resourceTypes/project".into(),
                    ..deployment_type()
                }),
                validate_only: false,
            },
            service,
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert_eq!(
        taken.get_details_error_info().unwrap().reason,
        "TYPE_BUILT_IN"
    );
    let kept = schema
        .delete_resource_type(authed(
            authz::DeleteResourceTypeRequest {
                name: "resourceTypes/project".into(),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap_err();
    assert_eq!(kept.code(), Code::FailedPrecondition, "{kept:?}");
}

/// What the contract refuses and the engine alone would take: a name
/// outside its pattern, a permission with no description, an access level
/// where no project is above, a team role where no team is. Each answers
/// INVALID_ARGUMENT saying which, and no type is registered.
async fn definitions_outside_the_contract_register_nothing(t: &Tenants) {
    use authz::permission_grant::Grantor;
    let mut schema = Schema::new(t.w.channel.clone());
    let under = |parent: &str, grantor: Grantor| authz::ResourceType {
        name: "resourceTypes/runbook".into(),
        parent_type: parent.into(),
        permissions: vec![authz::PermissionDefinition {
            name: "runbook.run".into(),
            description: "run a runbook".into(),
            granted_by: vec![authz::PermissionGrant {
                grantor: Some(grantor),
            }],
        }],
        ..Default::default()
    };
    let level = Grantor::ProjectAccessLevel(authz::ProjectAccessLevel::Viewer as i32);
    let lead = Grantor::TeamRole(authz::TeamRole::Lead as i32);
    let mut undescribed = under("project", level.clone());
    undescribed.permissions[0].description = " ".into();
    let cases = [
        (under("organization", level), "is not under a project"),
        (under("project", lead), "is not under a team"),
        (undescribed, "needs a `description`"),
        (
            authz::ResourceType {
                name: "resourceTypes/runbook_".into(),
                permissions: vec![authz::PermissionDefinition {
                    name: "runbook_.run".into(),
                    ..under("project", Grantor::Role("roles/member".into())).permissions[0].clone()
                }],
                ..under("project", Grantor::Role("roles/member".into()))
            },
            "is not a valid type name",
        ),
    ];
    for (broken, says) in cases {
        let name = broken.name.clone();
        let request = authz::RegisterResourceTypeRequest {
            resource_type: Some(broken),
            validate_only: false,
        };
        let error = schema.register_resource_type(authed(request, &t.service));
        let error = error.await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{name}: {error:?}");
        assert!(error.message().contains(says), "{name}: {error:?}");
        let request = authz::GetResourceTypeRequest { name };
        let absent = schema.get_resource_type(authed(request, &t.service)).await;
        assert_eq!(absent.unwrap_err().code(), Code::NotFound);
    }
}

async fn validating_registers_nothing_and_registering_describes(t: &Tenants) {
    let Tenants {
        w, bob, service, ..
    } = t;
    let mut schema = Schema::new(w.channel.clone());
    // Validating shows the type as it would be, and registers nothing.
    let described = authz::ResourceType {
        display_name: "Deployment".into(),
        description: "a release of a project".into(),
        ..deployment_type()
    };
    let preview = schema
        .register_resource_type(authed(
            authz::RegisterResourceTypeRequest {
                resource_type: Some(described.clone()),
                validate_only: true,
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource_type
        .unwrap();
    let names: Vec<&str> = preview
        .permissions
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["deployment.read", "deployment.deploy"]);
    assert_eq!(
        (preview.display_name.as_str(), preview.parent_type.as_str()),
        ("Deployment", "project")
    );
    let absent = schema
        .get_resource_type(authed(
            authz::GetResourceTypeRequest {
                name: "resourceTypes/deployment".into(),
            },
            &bob.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(absent.code(), Code::NotFound);
    let registered = schema
        .register_resource_type(authed(
            authz::RegisterResourceTypeRequest {
                resource_type: Some(described),
                validate_only: false,
            },
            service,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource_type
        .unwrap();
    assert_eq!(registered.parent_type, "project");
    assert_eq!(registered.display_name, "Deployment");
    assert_eq!(registered.description, "a release of a project");
}

async fn the_permission_catalog_tells_registered_from_built_in(t: &Tenants) {
    let Tenants { w, bob, .. } = t;
    // The permission catalog, by name, tells registered from built-in.
    let catalog = Roles::new(w.channel.clone())
        .list_permissions(authed(pb::ListPermissionsRequest::default(), &bob.token))
        .await
        .unwrap()
        .into_inner()
        .permissions;
    let names: Vec<&str> = catalog.iter().map(|p| p.permission.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let entry = |name: &str| catalog.iter().find(|p| p.permission == name).unwrap();
    assert!(entry("deployment.deploy").registered);
    assert_eq!(entry("deployment.deploy").resource_type, "deployment");
    assert!(!entry("organization.read").registered);
    assert!(
        entry("organization.read")
            .built_in_roles
            .contains(&"roles/member".to_string())
    );
    // In pages, the same catalog.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = Roles::new(w.channel.clone())
            .list_permissions(authed(
                pb::ListPermissionsRequest {
                    page_size: 10,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.permissions.len() <= 10);
        paged.extend(page.permissions.into_iter().map(|p| p.permission));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, names);
}

async fn a_type_is_kept_from_other_services_and_by_its_roles(t: &Tenants) {
    let Tenants {
        w,
        root,
        ada,
        acme,
        acme_id,
        service,
        ..
    } = t;
    let mut schema = Schema::new(w.channel.clone());
    // Another service may neither redefine nor delete a type it does
    // not own (it would decide who may do what to the owner's objects).
    let rival = service_token(w, root, acme_id).await;
    let mut hijacked = deployment_type();
    hijacked.permissions[1].granted_by = vec![authz::PermissionGrant {
        grantor: Some(authz::permission_grant::Grantor::Role(
            "roles/member".into(),
        )),
    }];
    let taken = schema
        .register_resource_type(authed(
            authz::RegisterResourceTypeRequest {
                resource_type: Some(hijacked),
                validate_only: false,
            },
            &rival,
        ))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    assert_eq!(
        taken.get_details_error_info().unwrap().reason,
        "TYPE_OWNED_BY_ANOTHER"
    );
    let removed = schema
        .delete_resource_type(authed(
            authz::DeleteResourceTypeRequest {
                name: "resourceTypes/deployment".into(),
                ..Default::default()
            },
            &rival,
        ))
        .await
        .unwrap_err();
    assert_eq!(removed.code(), Code::PermissionDenied, "{removed:?}");
    // A custom role that names its permissions keeps a type in use.
    Roles::new(w.channel.clone())
        .create_role(authed(
            pb::CreateRoleRequest {
                parent: acme.name.clone(),
                role: Some(pb::Role {
                    display_name: "Release watcher".into(),
                    permissions: vec!["organization.read".into(), "deployment.read".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let in_use = schema
        .delete_resource_type(authed(
            authz::DeleteResourceTypeRequest {
                name: "resourceTypes/deployment".into(),
                ..Default::default()
            },
            service,
        ))
        .await
        .unwrap_err();
    let info = in_use.get_details_error_info().unwrap();
    assert_eq!(info.reason, "TYPE_IN_USE");
    assert_eq!(info.metadata["roles"], "1");
}

async fn roles_and_types_come_in_pages(t: &Tenants) {
    let Tenants {
        w, ada, bob, acme, ..
    } = t;
    let mut schema = Schema::new(w.channel.clone());
    // Roles and types come in pages: built-in first.
    let mut roles = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = Roles::new(w.channel.clone())
            .list_roles(authed(
                pb::ListRolesRequest {
                    parent: acme.name.clone(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.roles.len() <= 3);
        roles.extend(page.roles.into_iter().map(|r| r.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        roles,
        ["Owner", "Admin", "Member", "Finance", "Release watcher"]
    );
    let mut types = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = schema
            .list_resource_types(authed(
                authz::ListResourceTypesRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner();
        types.extend(page.resource_types.into_iter().map(|t| t.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(
        types,
        [
            "resourceTypes/organization",
            "resourceTypes/team",
            "resourceTypes/project",
            "resourceTypes/deployment"
        ]
    );
}

async fn the_owners_definition_stands(t: &Tenants) {
    let Tenants { w, bob, .. } = t;
    let mut schema = Schema::new(w.channel.clone());
    let kept = schema
        .get_resource_type(authed(
            authz::GetResourceTypeRequest {
                name: "resourceTypes/deployment".into(),
            },
            &bob.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource_type
        .unwrap();
    let deploy = kept
        .permissions
        .iter()
        .find(|p| p.name == "deployment.deploy")
        .unwrap();
    assert!(
        !deploy.granted_by.iter().any(|g| g.grantor
            == Some(authz::permission_grant::Grantor::Role(
                "roles/member".into()
            ))),
        "the owner's definition stands"
    );
    let listed = schema
        .list_resource_types(authed(
            authz::ListResourceTypesRequest::default(),
            &bob.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .resource_types;
    assert!(
        listed
            .iter()
            .any(|t| t.name == "resourceTypes/deployment" && !t.built_in)
    );
    assert!(
        listed
            .iter()
            .any(|t| t.name == "resourceTypes/project" && t.built_in)
    );
}
