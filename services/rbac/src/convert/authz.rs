//! The subjects and objects `AuthorizationService` requests name, and the
//! answers it gives.

use tenantry_kit::error::{Error, Result};
use tenantry_proto::tenantry::authz::v1 as pb;

/// A check's answer as the API spells it.
pub(crate) fn permissionship(allowed: bool) -> pb::Permissionship {
    if allowed {
        pb::Permissionship::Allowed
    } else {
        pb::Permissionship::Denied
    }
}

/// The subject a caller may ask about, as (type, id).
pub(crate) fn subject(reference: Option<&pb::SubjectReference>) -> Result<(&str, &str)> {
    let object = reference
        .and_then(|s| s.object.as_ref())
        .ok_or_else(|| Error::invalid_field("subject", "is required"))?;
    if object.object_id.is_empty() {
        return Err(Error::invalid_field(
            "subject.object.object_id",
            "is required",
        ));
    }
    match object.object_type.as_str() {
        "user" | "api_key" | "service_account" => Ok((&object.object_type, &object.object_id)),
        _ => Err(Error::invalid_field(
            "subject.object.object_type",
            "must be `user`, `api_key` or `service_account`",
        )),
    }
}

/// The object `field` names, as (type, id): both required.
pub(crate) fn object<'a>(
    reference: Option<&'a pb::ObjectReference>,
    field: &str,
) -> Result<(&'a str, &'a str)> {
    let object = reference.ok_or_else(|| Error::invalid_field(field, "is required"))?;
    if object.object_type.is_empty() || object.object_id.is_empty() {
        return Err(Error::invalid_field(field, "needs a type and an id"));
    }
    Ok((&object.object_type, &object.object_id))
}
