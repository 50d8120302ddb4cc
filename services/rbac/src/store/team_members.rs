//! Team members.

use tenantry_kit::error::Result;
use tenantry_kit::row::Bit;

use super::*;

/// A team member row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TeamMemberRow {
    pub team_id: String,
    pub organization_id: String,
    pub user_id: String,
    #[sqlx(try_from = "Bit")]
    pub lead: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The columns of a team member row.
macro_rules! team_member_columns {
    () => {
        "team_id, organization_id, user_id, lead, created_at_us, updated_at_us, version"
    };
}
pub(super) use team_member_columns;

/// A team's members in user order, after a user.
const MEMBERS_OF_TEAM: &str = concat!(
    "SELECT ",
    team_member_columns!(),
    " FROM rbac_team_members WHERE team_id = $1 AND user_id > $2
     ORDER BY user_id LIMIT $3"
);

impl Store {
    pub async fn team_member(&self, team_id: &str, user_id: &str) -> Result<Option<TeamMemberRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            team_member_columns!(),
            " FROM rbac_team_members WHERE team_id = $1 AND user_id = $2"
        ))
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    pub async fn team_members(
        &self,
        team_id: &str,
        after_user: &str,
        limit: i64,
    ) -> Result<Vec<TeamMemberRow>> {
        self.keyset_page(MEMBERS_OF_TEAM, (team_id, after_user), limit)
            .await
    }

    /// The teams of an organization a user is in.
    pub async fn user_teams(
        &self,
        tx: &mut Tx,
        organization_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT team_id FROM rbac_team_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?)
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
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            team_member_columns!(),
            " FROM rbac_team_members WHERE team_id = $1"
        ))
        .bind(team_id)
        .fetch_all(&mut **tx)
        .await?)
    }
}
