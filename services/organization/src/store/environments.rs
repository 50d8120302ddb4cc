//! Environments of a project.

use tenantry_kit::error::Result;

use super::*;

/// An environment row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EnvironmentRow {
    pub id: String,
    pub project_id: String,
    pub slug: String,
    pub display_name: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The columns of an environment row.
macro_rules! environment_columns {
    () => {
        "id, project_id, slug, display_name, created_at_us, updated_at_us, version"
    };
}

impl Store {
    pub async fn insert_environment(&self, tx: &mut Tx, env: &EnvironmentRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO org_environments (id, project_id, slug, display_name, created_at_us,
                updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&env.id)
        .bind(&env.project_id)
        .bind(&env.slug)
        .bind(&env.display_name)
        .bind(env.created_at_us)
        .bind(env.updated_at_us)
        .bind(env.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn environment(&self, project_id: &str, id: &str) -> Result<Option<EnvironmentRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            environment_columns!(),
            " FROM org_environments WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Environments of a project after `after_id`, oldest first.
    pub async fn environments(
        &self,
        project_id: &str,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<EnvironmentRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            environment_columns!(),
            " FROM org_environments WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(project_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?)
    }

    /// Writes an environment's names; `false` when it changed since
    /// `expected_version`.
    pub async fn update_environment(
        &self,
        tx: &mut Tx,
        env: &EnvironmentRow,
        expected_version: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE org_environments SET slug = $3, display_name = $4, updated_at_us = $5,
                version = $6
             WHERE id = $1 AND version = $2",
        )
        .bind(&env.id)
        .bind(expected_version)
        .bind(&env.slug)
        .bind(&env.display_name)
        .bind(env.updated_at_us)
        .bind(env.version)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an environment; `false` when it changed since
    /// `expected_version` (or is gone).
    pub async fn delete_environment(
        &self,
        tx: &mut Tx,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM org_environments WHERE id = $1 AND ($2 < 0 OR version = $2)")
                .bind(id)
                .bind(expected_version.unwrap_or(-1))
                .execute(&mut **tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
