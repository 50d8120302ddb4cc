//! SetLimit and ClearLimit: the limits set on organizations.

use super::*;

impl EntitlementApi {
    pub(super) async fn set_limit(
        &self,
        caller: Caller,
        request: pb::SetLimitRequest,
    ) -> Result<pb::SetLimitResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        if request.value < 0 {
            return Err(Error::invalid_field("value", "must not be negative"));
        }
        core.authorize(&caller, &[&id], Need::Manage, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let now = now_micros();
        let mut tx = core.begin().await?;
        let old = store::limit(&mut tx, &id, metric.as_str_name()).await?;
        let row = LimitRow {
            organization_id: id.clone(),
            metric: metric.as_str_name().to_string(),
            value: request.value,
            set_by: caller.resource_name(),
            updated_at_us: now,
        };
        store::set_limit(&mut tx, &row).await?;
        core.emit_at(
            &mut tx,
            &caller,
            &node,
            &events::LimitSet {
                organization_id: id.clone(),
                metric: row.metric.clone(),
                old_value: old.map(|l| l.value),
                new_value: row.value,
            },
        )
        .await?;
        core.commit(tx).await?;
        let effective = core.entitlements(&node, &[metric], now).await?;
        if effective[0]
            .limit()
            .is_some_and(|limit| effective[0].used > limit)
        {
            let mut tx = core.begin().await?;
            core.report_exceeded(&mut tx, &caller, &node, &effective)
                .await?;
            core.commit(tx).await?;
        }
        Ok(pb::SetLimitResponse {
            limit: Some(pb::OrganizationLimit {
                organization: OrganizationName::new(&id).to_string(),
                metric: metric as i32,
                value: row.value,
                set_by: row.set_by,
                update_time: Some(timestamp(now)),
            }),
            effective_limit: Some(effective[0].to_pb()),
        })
    }

    pub(super) async fn clear_limit(
        &self,
        caller: Caller,
        request: pb::ClearLimitRequest,
    ) -> Result<pb::ClearLimitResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        core.authorize(&caller, &[&id], Need::Manage, "organization")
            .await?;
        let node = core.node(&caller, &id).await?;
        let mut tx = core.begin().await?;
        if let Some(old) = store::limit(&mut tx, &id, metric.as_str_name()).await? {
            store::clear_limit(&mut tx, &id, metric.as_str_name()).await?;
            core.emit_at(
                &mut tx,
                &caller,
                &node,
                &events::LimitCleared {
                    organization_id: id.clone(),
                    metric: old.metric,
                    old_value: old.value,
                },
            )
            .await?;
            core.commit(tx).await?;
        }
        let effective = core.entitlements(&node, &[metric], now_micros()).await?;
        Ok(pb::ClearLimitResponse {
            effective_limit: Some(effective[0].to_pb()),
        })
    }
}
