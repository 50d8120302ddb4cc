//! Permission checks as tests ask them: the references of a
//! `CheckPermission` request and the question "allowed?".

use tenantry_proto::tenantry::authz::v1 as authz;
use tonic::transport::Channel;

use crate::authed;
use crate::clients::Authz;

/// The object `object_type:id`.
pub fn object(object_type: &str, id: &str) -> Option<authz::ObjectReference> {
    Some(authz::ObjectReference {
        object_type: object_type.into(),
        object_id: id.into(),
    })
}

/// The subject `object_type:id`, with no relation.
pub fn subject(object_type: &str, id: &str) -> Option<authz::SubjectReference> {
    Some(authz::SubjectReference {
        object: object(object_type, id),
        optional_relation: String::new(),
    })
}

/// The user `id` as a subject.
pub fn user(id: &str) -> Option<authz::SubjectReference> {
    subject("user", id)
}

/// At least as fresh as `token` (which must be there).
pub fn fresh(token: &Option<authz::ZedToken>) -> Option<authz::Consistency> {
    Some(authz::Consistency {
        requirement: Some(authz::consistency::Requirement::AtLeastAsFresh(
            token.clone().unwrap(),
        )),
    })
}

/// Whether `subject` (type, id) may do `permission` on `object` (type,
/// id), asked of the server behind `channel` with `token`, with no
/// consistency requirement.
pub async fn allowed(
    channel: &Channel,
    token: &str,
    subject: (&str, &str),
    object: (&str, &str),
    permission: &str,
) -> bool {
    Authz::new(channel.clone())
        .check_permission(authed(
            authz::CheckPermissionRequest {
                resource: self::object(object.0, object.1),
                permission: permission.into(),
                subject: self::subject(subject.0, subject.1),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .permissionship()
        == authz::Permissionship::Allowed
}
