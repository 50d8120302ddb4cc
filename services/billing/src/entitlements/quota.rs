//! CheckQuota and ReleaseQuota: a quota check, and the reservation that
//! holds what it allowed until the object it was for is counted.

use super::*;

impl Core {
    /// Checks the quota of `metric` at `node` for `delta` more and, when it
    /// allows, reserves that much under `id` (the object about to be
    /// created) until its event is counted, it is released, or
    /// [`RESERVATION_TTL`] passes. Reservations of one tree (or pool) and
    /// metric are taken one at a time, so two creates racing for the last
    /// unit cannot both get it. Asking again for a live reservation, or for
    /// an object already counted, allows without reserving twice.
    pub(crate) async fn reserve(
        &self,
        node: &NodeRow,
        metric: Metric,
        delta: i64,
        id: &str,
    ) -> Result<pb::CheckQuotaResponse> {
        let name = metric.as_str_name();
        let now = now_micros();
        let mode = self.workspace_mode(&node.workspace_id).await?;
        let scope = Self::plan_scope(node, &mode);
        let bound = self.plan_bound(node, &mode, now).await?;
        let mut tx = self.store.begin().await?;
        store::lock_quota(&mut tx, &scope, name).await?;
        // Read on the transaction's own connection: on SQLite it holds the
        // write lock, and waiting for another connection of the pool while
        // other reservers hold them all would never end.
        let upward = node.upward();
        let mut scopes = upward.clone();
        scopes.push(&scope);
        let readings = store::readings(&mut *tx, &scopes, &upward, name, 0).await?;
        let entitlement = &Self::entitlement(node, &bound, metric, &readings);
        if store::reservation_exists(&mut tx, name, id).await?
            || store::item(&mut tx, name, id).await?.is_some()
        {
            // Held (or counted) already: the answer of the first call.
            return Ok(entitlement.check(0));
        }
        let answer = entitlement.check(delta);
        if answer.allowed && delta > 0 {
            store::reserve(
                &mut tx,
                id,
                name,
                &node.id,
                delta,
                &scopes,
                now + RESERVATION_TTL.as_micros() as i64,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(answer)
    }
}

impl EntitlementApi {
    pub(super) async fn check_quota(
        &self,
        caller: Caller,
        request: pb::CheckQuotaRequest,
    ) -> Result<pb::CheckQuotaResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        if request.delta < 0 {
            return Err(Error::invalid_field("delta", "must not be negative"));
        }
        let reservation = request.reservation_id.trim();
        if !reservation.is_empty() {
            validate_reservation(metric, reservation)?;
        }
        core.authorize_reader(&caller, &id).await?;
        let node = core.node(&caller, &id).await?;
        if reservation.is_empty() {
            let entitlement = core.entitlements(&node, &[metric], now_micros()).await?;
            let answer = entitlement[0].check(request.delta);
            metrics_count(metric, answer.allowed);
            return Ok(answer);
        }
        let answer = core
            .reserve(&node, metric, request.delta, reservation)
            .await?;
        metrics_count(metric, answer.allowed);
        Ok(answer)
    }

    pub(super) async fn release_quota(
        &self,
        caller: Caller,
        request: pb::ReleaseQuotaRequest,
    ) -> Result<pb::ReleaseQuotaResponse> {
        let core = &self.0;
        let id = OrganizationName::parse("organization", &request.organization)?.id;
        let metric = metric::parse("metric", request.metric)?;
        validate_reservation(metric, &request.reservation_id)?;
        core.authorize_reader(&caller, &id).await?;
        let mut tx = core.store.begin().await?;
        // Only a reservation made in this organization: another tenant's ids
        // are not for this caller to touch.
        let released =
            store::release(&mut tx, metric.as_str_name(), &request.reservation_id, &id).await?;
        tx.commit().await?;
        Ok(pb::ReleaseQuotaResponse { released })
    }
}

/// How long a reservation holds when its create neither completes (its
/// event settles it) nor fails (its service releases it): a process that
/// died between the two. Generous, so that a bus outage shorter than this
/// never lets a limit be exceeded; a lapsed reservation only ever frees
/// room too late, never too early, unless the outage is longer.
pub const RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// A reservation names the object about to be created; only allocation
/// metrics (counted from events) are reserved.
fn validate_reservation(metric: Metric, id: &str) -> Result<()> {
    if metric::is_metered(metric) {
        return Err(Error::invalid_field(
            "reservation_id",
            "metered metrics are not reserved: their usage is recorded with RecordUsage",
        ));
    }
    let valid = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:/.".contains(&b));
    if !valid {
        return Err(Error::invalid_field(
            "reservation_id",
            "must be 1 to 200 letters, digits or `-_:/.`",
        ));
    }
    Ok(())
}

fn metrics_count(metric: Metric, allowed: bool) {
    metrics::counter!(
        "tenantry_billing_quota_checks_total",
        "metric" => metric.as_str_name(),
        "allowed" => if allowed { "true" } else { "false" }
    )
    .increment(1);
}
