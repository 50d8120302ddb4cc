//! Proto ↔ domain conversions of the rbac service, in one place (see
//! STYLE.md): how its rows and domain values (memberships, team members,
//! project grants, roles, resource types, invitations) become the messages
//! clients and events see, and how the values requests name (access levels,
//! grantors, type registrations, subjects and objects) are read. The
//! handlers call these; a file per kind.

mod authz;
mod grants;
mod invitations;
mod members;
mod roles;
mod types;

pub(crate) use authz::{object, permissionship, subject};
pub(crate) use grants::{event_subject, level_from, level_to};
pub(crate) use members::{event_role, role_event, role_of};
pub(crate) use roles::custom_to_proto;
pub(crate) use types::{definition_from, type_view};
