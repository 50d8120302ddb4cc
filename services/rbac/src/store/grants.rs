//! Project grants.

use tenantry_kit::error::Result;
use tenantry_kit::row::decode_error;

use super::*;

/// A project grant row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GrantRow {
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    #[sqlx(flatten, try_from = "SubjectColumns")]
    pub subject: GrantSubject,
    #[sqlx(try_from = "String")]
    pub level: AccessLevel,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The columns of a grant row.
macro_rules! grant_columns {
    () => {
        "id, organization_id, project_id, subject_type, subject_id, level, created_at_us, \
         updated_at_us, version"
    };
}
pub(super) use grant_columns;

/// How an access level is stored.
pub fn level_name(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Viewer => "viewer",
        AccessLevel::Contributor => "contributor",
        AccessLevel::Admin => "admin",
    }
}

impl TryFrom<String> for AccessLevel {
    type Error = sqlx::Error;

    fn try_from(level: String) -> std::result::Result<AccessLevel, sqlx::Error> {
        match level.as_str() {
            "viewer" => Ok(AccessLevel::Viewer),
            "contributor" => Ok(AccessLevel::Contributor),
            "admin" => Ok(AccessLevel::Admin),
            other => Err(decode_error(format!("unknown access level `{other}`"))),
        }
    }
}

/// The two columns naming a grant's subject.
#[derive(sqlx::FromRow)]
pub(super) struct SubjectColumns {
    subject_type: String,
    subject_id: String,
}

impl TryFrom<SubjectColumns> for GrantSubject {
    type Error = sqlx::Error;

    fn try_from(columns: SubjectColumns) -> std::result::Result<GrantSubject, sqlx::Error> {
        let SubjectColumns {
            subject_type,
            subject_id,
        } = columns;
        match subject_type.as_str() {
            "user" => Ok(GrantSubject::User(subject_id)),
            "team" => Ok(GrantSubject::Team(subject_id)),
            "role" => Ok(GrantSubject::Role(subject_id)),
            other => Err(decode_error(format!(
                "unknown grant subject type `{other}`"
            ))),
        }
    }
}

pub(super) fn subject_parts(subject: &GrantSubject) -> (&'static str, &str) {
    match subject {
        GrantSubject::User(id) => ("user", id),
        GrantSubject::Team(id) => ("team", id),
        GrantSubject::Role(name) => ("role", name),
    }
}

/// A project's grants in id order, after a grant.
const GRANTS_ON_PROJECT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM rbac_project_grants WHERE project_id = $1 AND id > $2
     ORDER BY id LIMIT $3"
);

impl Store {
    pub async fn grant(&self, project_id: &str, id: &str) -> Result<Option<GrantRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn grants(
        &self,
        project_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<GrantRow>> {
        self.keyset_page(GRANTS_ON_PROJECT, (project_id, after_id), limit)
            .await
    }

    /// Grants naming a subject (a user, team or role), in any project.
    pub async fn grants_to(&self, tx: &mut Tx, subject: &GrantSubject) -> Result<Vec<GrantRow>> {
        let (kind, id) = subject_parts(subject);
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants WHERE subject_type = $1 AND subject_id = $2"
        ))
        .bind(kind)
        .bind(id)
        .fetch_all(&mut **tx)
        .await?)
    }

    pub async fn insert_grant(&self, tx: &mut Tx, g: &GrantRow) -> Result<()> {
        let (kind, id) = subject_parts(&g.subject);
        sqlx::query(
            "INSERT INTO rbac_project_grants (id, organization_id, project_id, subject_type,
                subject_id, level, created_at_us, updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&g.id)
        .bind(&g.organization_id)
        .bind(&g.project_id)
        .bind(kind)
        .bind(id)
        .bind(level_name(g.level))
        .bind(g.created_at_us)
        .bind(g.updated_at_us)
        .bind(g.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn update_grant_level(&self, tx: &mut Tx, g: &GrantRow) -> Result<()> {
        sqlx::query("UPDATE rbac_project_grants SET level = $2, updated_at_us = $3, version = $4 WHERE id = $1")
            .bind(&g.id)
            .bind(level_name(g.level))
            .bind(g.updated_at_us)
            .bind(g.version)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn delete_grant(&self, tx: &mut Tx, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM rbac_project_grants WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every grant in an organization.
    pub async fn grants_in_organization(
        &self,
        tx: &mut Tx,
        organization_id: &str,
    ) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants WHERE organization_id = $1 ORDER BY id"
        ))
        .bind(organization_id)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Grants of one project, to remove them with it.
    pub async fn project_grants_in(&self, tx: &mut Tx, project_id: &str) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM rbac_project_grants WHERE project_id = $1"
        ))
        .bind(project_id)
        .fetch_all(&mut **tx)
        .await?)
    }
}
