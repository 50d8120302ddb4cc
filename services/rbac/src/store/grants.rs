//! Project grants.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A project grant row.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRow {
    pub id: String,
    pub organization_id: String,
    pub project_id: String,
    pub subject: GrantSubject,
    pub level: AccessLevel,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

pub(super) const GRANT_COLUMNS: &str = "id, organization_id, project_id, subject_type, subject_id, level, \
    created_at_us, updated_at_us, version";

pub fn level_name(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Viewer => "viewer",
        AccessLevel::Contributor => "contributor",
        AccessLevel::Admin => "admin",
    }
}

pub(super) fn grant_from_row(row: &AnyRow) -> std::result::Result<GrantRow, sqlx::Error> {
    let subject_type: String = row.try_get(3)?;
    let subject_id: String = row.try_get(4)?;
    let subject = match subject_type.as_str() {
        "user" => GrantSubject::User(subject_id),
        "team" => GrantSubject::Team(subject_id),
        _ => GrantSubject::Role(subject_id),
    };
    let level = match row.try_get::<String, _>(5)?.as_str() {
        "viewer" => AccessLevel::Viewer,
        "contributor" => AccessLevel::Contributor,
        _ => AccessLevel::Admin,
    };
    Ok(GrantRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        project_id: row.try_get(2)?,
        subject,
        level,
        created_at_us: row.try_get(6)?,
        updated_at_us: row.try_get(7)?,
        version: row.try_get(8)?,
    })
}

pub(super) fn subject_parts(subject: &GrantSubject) -> (&'static str, &str) {
    match subject {
        GrantSubject::User(id) => ("user", id),
        GrantSubject::Team(id) => ("team", id),
        GrantSubject::Role(name) => ("role", name),
    }
}

impl Store {
    pub async fn grant(&self, project_id: &str, id: &str) -> Result<Option<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1 AND id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn grants(
        &self,
        project_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1 AND id > $2
             ORDER BY id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .bind(after_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// Grants naming a subject (a user, team or role), in any project.
    pub async fn grants_to(&self, tx: &mut Tx, subject: &GrantSubject) -> Result<Vec<GrantRow>> {
        let (kind, id) = subject_parts(subject);
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE subject_type = $1 AND subject_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .bind(id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
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
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE organization_id = $1 ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }

    /// Grants of one project, to remove them with it.
    pub async fn project_grants_in(&self, tx: &mut Tx, project_id: &str) -> Result<Vec<GrantRow>> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM rbac_project_grants WHERE project_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project_id)
            .try_map(|row: AnyRow| grant_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }
}
