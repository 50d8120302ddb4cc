//! Users brought in by a bulk import: created as sign-up creates them
//! (same row, same `UserSignedUp` event), many to a transaction, with the
//! importing administrator as the actor.

use std::collections::{HashMap, HashSet};

use tenantry_kit::error::Code;
use tenantry_kit::names::UserName;
use tenantry_proto::tenantry::bulk::v1 as bulk_pb;
use tenantry_proto::tenantry::identity::v1 as pb;

use super::*;
use crate::email::normalize_email;

/// The field of record `index` (as the importer counts).
fn field(index: i64, name: &str) -> String {
    format!("records[{index}].{name}")
}

impl Accounts {
    /// A user record, checked as sign-up checks what it is given, as the
    /// row sign-up would write (with the record's id, never a platform
    /// administrator).
    fn imported_user(&self, index: i64, record: bulk_pb::Record, now: i64) -> Result<UserRow> {
        let Some(bulk_pb::record::Kind::User(user)) = record.kind else {
            return Err(Error::invalid_field(
                format!("records[{index}]"),
                "is not a user record",
            ));
        };
        let id = UserName::parse(&field(index, "user.name"), &user.name)?.id;
        let email = normalize_email(&field(index, "user.email"), &user.email)?;
        let display_name =
            valid_display_name(&field(index, "user.display_name"), &user.display_name)?;
        let state = match user.state() {
            pb::UserState::Unspecified | pb::UserState::Active => "active",
            pb::UserState::Disabled => "disabled",
            pb::UserState::Deleted => {
                return Err(Error::invalid_field(
                    field(index, "user.state"),
                    "a deleted user is not imported",
                ));
            }
        };
        if !record.password_hash.is_empty() && !crate::password::verifiable(&record.password_hash) {
            return Err(Error::invalid_field(
                field(index, "password_hash"),
                "must be an argon2 hash in PHC form, at costs this deployment allows",
            ));
        }
        let mut row = self.new_user(email, display_name, record.password_hash, now);
        row.id = id;
        row.platform_admin = false;
        row.state = state.into();
        row.email_verified_at_us = user.email_verified.then_some(now);
        Ok(row)
    }
}

impl Accounts {
    /// Imports user records (`first` is the index of the first in the
    /// import stream) in one write, for the platform administrator
    /// `admin`. A user whose id exists is left as it is; an address that
    /// is another user's is ALREADY_EXISTS, and nothing is written.
    pub async fn import_users(
        &self,
        admin: &UserRow,
        client: &ClientInfo,
        first: i64,
        records: Vec<bulk_pb::Record>,
    ) -> Result<bulk_pb::ImportCounts> {
        let now = now_micros();
        let users = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| self.imported_user(first + i as i64, record, now))
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin().await?;
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let emails: Vec<&str> = users.iter().map(|u| u.email.as_str()).collect();
        let mut taken: HashMap<String, String> = HashMap::new();
        let mut existing_ids = HashSet::new();
        for (id, email) in self
            .store()
            .users_with_ids_or_emails(&mut tx, &ids, &emails)
            .await?
        {
            existing_ids.insert(id.clone());
            taken.insert(email, id);
        }
        let mut counts = bulk_pb::ImportCounts::default();
        let mut created = Vec::new();
        let mut emitted = Vec::new();
        for (i, user) in users.into_iter().enumerate() {
            if !existing_ids.insert(user.id.clone()) {
                counts.existing += 1;
                continue;
            }
            if let Some(holder) = taken.insert(user.email.clone(), user.id.clone())
                && holder != user.id
            {
                return Err(Error::new(
                    Code::AlreadyExists,
                    "EMAIL_TAKEN",
                    format!(
                        "{}: the address is another user's",
                        field(first + i as i64, "user.email")
                    ),
                )
                .with_domain("identity"));
            }
            let signed_up = events::UserSignedUp {
                user_id: user.id.clone(),
                email: user.email.clone(),
                display_name: user.display_name.clone(),
                invitation_id: String::new(),
                email_verified: user.email_verified_at_us.is_some(),
            };
            emitted.push(
                NewEvent::new("user", &user.id, user_actor(admin), &signed_up)
                    .with_request(client.request_context()),
            );
            if user.state == "disabled" {
                let disabled = events::UserDisabled {
                    user_id: user.id.clone(),
                    reason: "imported disabled".into(),
                };
                emitted.push(
                    NewEvent::new("user", &user.id, user_actor(admin), &disabled)
                        .with_request(client.request_context()),
                );
            }
            created.push(user);
            counts.created += 1;
        }
        if created.is_empty() {
            return Ok(counts);
        }
        self.store().insert_users(&mut tx, &created).await?;
        tx.emit_all(emitted).await?;
        self.commit(tx).await?;
        Ok(counts)
    }
}
