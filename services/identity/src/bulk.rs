//! `BulkService`: a platform administrator's import and export of the
//! deployment's people and tenants.
//!
//! Identity serves it because identity knows who the platform
//! administrators are. It imports users itself and hands every other
//! record to the service that owns it (organization: organizations, teams,
//! projects; rbac: memberships, team members, project grants) over their
//! internal records services, in the order the records arrive: a message's
//! records go in runs of one owner, each run one write of its owner.
//! Whoever stops being an administrator stops importing at the next
//! message.

use futures::StreamExt as _;
use tenantry_kit::auth::Principal;
use tenantry_kit::error::{Code, Error};
use tenantry_kit::names::UserName;
use tenantry_proto::tenantry::bulk::v1 as pb;
use tonic::{Request, Response, Status, Streaming};

use crate::accounts::Accounts;
use crate::api::client_info;
use crate::convert::user_to_proto;
use crate::directory::{RecordOwner, RecordPages};

use pb::record::Kind;

/// The most records one message of an import may carry.
pub const MAX_RECORDS: usize = 1000;
/// Users per message of an export.
const EXPORT_PAGE: i64 = 500;

/// The `BulkService` handler.
#[derive(Debug, Clone)]
pub struct BulkApi {
    pub accounts: Accounts,
}

/// Who holds a kind of record: identity itself, or another service.
fn owner(index: i64, record: &pb::Record) -> Result<Option<RecordOwner>, Error> {
    match &record.kind {
        Some(Kind::User(_)) => Ok(None),
        Some(Kind::Organization(_) | Kind::Team(_) | Kind::Project(_)) => {
            Ok(Some(RecordOwner::Organization))
        }
        Some(Kind::Membership(_) | Kind::TeamMember(_) | Kind::ProjectGrant(_)) => {
            Ok(Some(RecordOwner::Rbac))
        }
        None => Err(Error::invalid_field(
            format!("records[{index}]"),
            "holds no record",
        )),
    }
}

/// A refusal of another service, as the importer sees it. A deployment
/// that does not run the owner cannot take its records.
fn from_owner(owner: RecordOwner, status: Status) -> Status {
    if status.code() == tonic::Code::Unimplemented {
        let name = match owner {
            RecordOwner::Organization => "organization",
            RecordOwner::Rbac => "rbac",
        };
        return Error::new(
            Code::FailedPrecondition,
            "SERVICE_NOT_RUNNING",
            format!("this deployment does not run the {name} service, which holds these records"),
        )
        .with_domain("identity")
        .into();
    }
    status
}

/// Records of one owner (`None`: identity) in a row, with the index of the
/// first in the stream.
type Run = (Option<RecordOwner>, i64, Vec<pb::Record>);

/// The records of one message, cut into runs of one owner.
fn runs(first: i64, records: Vec<pb::Record>) -> Result<Vec<Run>, Error> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, record) in records.into_iter().enumerate() {
        let index = first + i as i64;
        let owner = owner(index, &record)?;
        match runs.last_mut() {
            Some((last, _, run)) if *last == owner => run.push(record),
            _ => runs.push((owner, index, vec![record])),
        }
    }
    Ok(runs)
}

#[tonic::async_trait]
impl pb::bulk_service_server::BulkService for BulkApi {
    async fn import(
        &self,
        request: Request<Streaming<pb::ImportRequest>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let client = client_info(&request);
        self.accounts.require_platform_admin(&principal).await?;
        let mut stream = request.into_inner();
        let mut answer = pb::ImportResponse::default();
        let mut next: i64 = 0;
        while let Some(message) = stream.message().await? {
            let admin = self.accounts.require_platform_admin(&principal).await?;
            if message.records.len() > MAX_RECORDS {
                return Err(Error::invalid_field(
                    "records",
                    format!("must hold at most {MAX_RECORDS} records per message"),
                )
                .into());
            }
            let first = next;
            next += message.records.len() as i64;
            for (owner, start, records) in runs(first, message.records)? {
                let counts = match owner {
                    None => {
                        self.accounts
                            .import_users(&admin, &client, start, records)
                            .await?
                    }
                    Some(owner) => self
                        .accounts
                        .inner
                        .directory
                        .import_records(
                            owner,
                            pb::RecordBatch {
                                actor: UserName::new(&admin.id).to_string(),
                                records,
                                first_index: start,
                            },
                        )
                        .await
                        .map_err(|status| from_owner(owner, status))?,
                };
                answer.created += counts.created;
                answer.existing += counts.existing;
            }
        }
        Ok(Response::new(answer))
    }

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::ExportResponse>>, Status> {
        let principal = Principal::from_request(&request)?;
        self.accounts.require_platform_admin(principal).await?;
        let directory = self.accounts.inner.directory.clone();
        let organization = directory
            .export_records(RecordOwner::Organization)
            .await
            .map_err(|status| from_owner(RecordOwner::Organization, status))?;
        let rbac = directory
            .export_records(RecordOwner::Rbac)
            .await
            .map_err(|status| from_owner(RecordOwner::Rbac, status))?;
        let users = self.user_pages();
        let pages = users
            .chain(organization)
            .chain(rbac)
            .map(|page| page.map(|records| pb::ExportResponse { records }));
        Ok(Response::new(pages.boxed()))
    }
}

impl BulkApi {
    /// Every user but the deleted ones, a page at a time.
    fn user_pages(&self) -> RecordPages {
        let accounts = self.accounts.clone();
        futures::stream::try_unfold(Some(String::new()), move |after| {
            let accounts = accounts.clone();
            async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let rows = accounts
                    .store()
                    .users(&after, EXPORT_PAGE, "", false)
                    .await
                    .map_err(Status::from)?;
                let next = (rows.len() as i64 == EXPORT_PAGE)
                    .then(|| rows.last().map(|u| u.id.clone()))
                    .flatten();
                if rows.is_empty() {
                    return Ok(None);
                }
                let records = rows
                    .iter()
                    .map(|user| pb::Record {
                        kind: Some(Kind::User(user_to_proto(user))),
                        password_hash: String::new(),
                    })
                    .collect();
                Ok(Some((records, next)))
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind) -> pb::Record {
        pb::Record {
            kind: Some(kind),
            password_hash: String::new(),
        }
    }

    #[test]
    fn a_message_goes_in_runs_of_one_owner_counted_from_its_place_in_the_stream() {
        let records = vec![
            record(Kind::User(Default::default())),
            record(Kind::User(Default::default())),
            record(Kind::Organization(Default::default())),
            record(Kind::Team(Default::default())),
            record(Kind::Membership(Default::default())),
            record(Kind::User(Default::default())),
        ];
        let seen: Vec<_> = runs(10, records)
            .unwrap()
            .into_iter()
            .map(|(owner, start, records)| (owner, start, records.len()))
            .collect();
        assert_eq!(
            seen,
            [
                (None, 10, 2),
                (Some(RecordOwner::Organization), 12, 2),
                (Some(RecordOwner::Rbac), 14, 1),
                (None, 15, 1),
            ]
        );
        let empty = runs(3, vec![pb::Record::default()]).unwrap_err();
        assert!(format!("{empty:?}").contains("records[3]"));
    }
}
