//! Built-in and custom roles as clients see them.

use tenantry_proto::tenantry::rbac::v1 as pb;

use crate::memberships::etag;
use crate::store::RoleRow;
use crate::{Core, timestamp};

/// A custom role as clients see it, held by `holders` members.
pub(crate) fn custom_to_proto(role: &RoleRow, holders: i32) -> pb::Role {
    pb::Role {
        name: role.name(),
        display_name: role.display_name.clone(),
        description: role.description.clone(),
        permissions: role.permissions.clone(),
        built_in: false,
        member_count: holders,
        create_time: Some(timestamp(role.created_at_us)),
        update_time: Some(timestamp(role.updated_at_us)),
        etag: etag(role.version),
    }
}

impl Core {
    /// The built-in role `name` as clients see it, if there is one.
    pub(crate) fn built_in_to_proto(&self, name: &str) -> Option<pb::Role> {
        let index = self.index.read();
        let perms = index.schema().built_in_role(name)?;
        let title = name.trim_start_matches("roles/");
        Some(pb::Role {
            name: name.to_string(),
            display_name: format!("{}{}", title[..1].to_uppercase(), &title[1..]),
            description: String::new(),
            permissions: index
                .schema()
                .names(perms)
                .into_iter()
                .map(str::to_string)
                .collect(),
            built_in: true,
            ..Default::default()
        })
    }
}
