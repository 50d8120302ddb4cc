//! Team members.

use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::error::{Result, db_error};

use super::*;

/// A team member row.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamMemberRow {
    pub team_id: String,
    pub organization_id: String,
    pub user_id: String,
    pub lead: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

pub(super) const TEAM_MEMBER_COLUMNS: &str =
    "team_id, organization_id, user_id, lead, created_at_us, updated_at_us, version";

pub(super) fn team_member_from_row(
    row: &AnyRow,
) -> std::result::Result<TeamMemberRow, sqlx::Error> {
    Ok(TeamMemberRow {
        team_id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        lead: row.try_get::<i64, _>(3)? != 0,
        created_at_us: row.try_get(4)?,
        updated_at_us: row.try_get(5)?,
        version: row.try_get(6)?,
    })
}

impl Store {
    pub async fn team_member(&self, team_id: &str, user_id: &str) -> Result<Option<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1 AND user_id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .bind(user_id)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_error)
    }

    pub async fn team_members(
        &self,
        team_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1 AND user_id > $2
             ORDER BY user_id LIMIT {limit}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .bind(after_user)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_all(self.db.pool())
            .await
            .map_err(db_error)
    }

    /// The teams of an organization a user is in.
    pub async fn user_teams(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT team_id FROM rbac_team_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .try_map(|row: AnyRow| row.try_get(0))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)
    }

    pub async fn upsert_team_member(&self, tx: &mut Tx, m: &TeamMemberRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO rbac_team_members (team_id, organization_id, user_id, lead, created_at_us,
                updated_at_us, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (team_id, user_id) DO UPDATE SET lead = $4, updated_at_us = $6, version = $7",
        )
        .bind(&m.team_id)
        .bind(&m.organization_id)
        .bind(&m.user_id)
        .bind(i64::from(m.lead))
        .bind(m.created_at_us)
        .bind(m.updated_at_us)
        .bind(m.version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn delete_team_member(
        &self,
        tx: &mut Tx,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let done = sqlx::query("DELETE FROM rbac_team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Members of one team, to remove them with it.
    pub async fn team_members_in(&self, tx: &mut Tx, team_id: &str) -> Result<Vec<TeamMemberRow>> {
        let sql = format!("SELECT {TEAM_MEMBER_COLUMNS} FROM rbac_team_members WHERE team_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team_id)
            .try_map(|row: AnyRow| team_member_from_row(&row))
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)
    }
}
