//! Reports from the edge: requests the gateway refused over an
//! organization's rate limit before any service saw them. The gateway
//! counts them per caller, class and window and reports each closed window
//! here; each becomes one `gateway.requests.rate_limited` event in the
//! organization's log, through this service's outbox like every other
//! event, so the log stays one hash chain fed by one path.

use tenantry_kit::access::Caller;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::outbox::{NewEvent, claim_event};
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::{Core, NAME, store};

/// The most bursts one report carries.
pub const MAX_BURSTS: usize = 500;
/// The longest burst id.
const MAX_ID: usize = 128;
/// The inbox name under which reported burst ids are claimed: a burst
/// reported twice (a retried call) is recorded once.
const INBOX: &str = "audit-edge-reports";
/// The endpoint classes the gateway limits.
const CLASSES: [&str; 4] = ["read", "write", "auth", "expensive"];

/// The EdgeReportService.
#[derive(Debug, Clone)]
pub struct EdgeReportApi(pub Core);

#[tonic::async_trait]
impl pb::edge_report_service_server::EdgeReportService for EdgeReportApi {
    async fn report_rate_limited(
        &self,
        request: Request<pb::ReportRateLimitedRequest>,
    ) -> std::result::Result<Response<pb::ReportRateLimitedResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        if !caller.principal.is_edge() {
            return Err(Error::permission_denied("edge.report")
                .with_domain(NAME)
                .into());
        }
        let bursts = request.into_inner().bursts;
        validate(&bursts)?;
        let mut recorded = 0;
        for burst in bursts {
            if self.0.record_burst(burst).await? {
                recorded += 1;
            }
        }
        Ok(Response::new(pb::ReportRateLimitedResponse { recorded }))
    }
}

/// Checks every burst before any is recorded, naming the field.
fn validate(bursts: &[pb::RateLimitedBurst]) -> Result<()> {
    if bursts.is_empty() || bursts.len() > MAX_BURSTS {
        return Err(Error::invalid_field(
            "bursts",
            format!("must hold 1 to {MAX_BURSTS} bursts"),
        ));
    }
    for (i, burst) in bursts.iter().enumerate() {
        let field = |name: &str| format!("bursts[{i}].{name}");
        if burst.id.is_empty() || burst.id.len() > MAX_ID {
            return Err(Error::invalid_field(
                field("id"),
                format!("must be 1 to {MAX_ID} characters"),
            ));
        }
        tenantry_kit::id::parse_id(&field("organization_id"), &burst.organization_id)?;
        let actor = burst.actor.as_ref();
        if actor.is_none_or(|a| a.id.is_empty() || a.kind == 0) {
            return Err(Error::invalid_field(
                field("actor"),
                "must name the caller (kind and id)",
            ));
        }
        if !CLASSES.contains(&burst.class.as_str()) {
            return Err(Error::invalid_field(
                field("class"),
                "must be read, write, auth or expensive",
            ));
        }
        if burst.count == 0 {
            return Err(Error::invalid_field(field("count"), "must be at least 1"));
        }
        match (&burst.window_start_time, &burst.window_end_time) {
            (Some(start), Some(end))
                if (start.seconds, start.nanos) <= (end.seconds, end.nanos) => {}
            _ => {
                return Err(Error::invalid_field(
                    field("window_end_time"),
                    "both window times are required, the end not before the start",
                ));
            }
        }
    }
    Ok(())
}

impl Core {
    /// Records one burst in its organization's log; false when it was
    /// recorded before or the organization is unknown to the log.
    async fn record_burst(&self, burst: pb::RateLimitedBurst) -> Result<bool> {
        // The edge names the organization; its chain is all this reads.
        tenancy::enter(&burst.organization_id);
        let mut tx = self.db.begin().await?;
        if !claim_event(&mut tx, INBOX, &burst.id).await? {
            return Ok(false);
        }
        // The organization's tree, from its own events: the log knows every
        // organization from its creation on, long before a caller can be
        // rate-limited in it.
        let Some(root) = store::root_of(&mut tx, &burst.organization_id).await? else {
            metrics::counter!("tenantry_audit_edge_reports_skipped_total").increment(1);
            tracing::warn!(
                organization = %burst.organization_id,
                "a rate-limited burst for an organization the log does not know was skipped"
            );
            return Ok(false);
        };
        let organization = burst.organization_id;
        let mut event = NewEvent::new(
            "rate_limit",
            organization.clone(),
            burst.actor.unwrap_or_default(),
            &events::RequestsRateLimited {
                class: burst.class,
                count: burst.count,
                limit_per_minute: burst.limit_per_minute,
                window_start_time: burst.window_start_time,
                window_end_time: burst.window_end_time,
            },
        )
        .in_organization(organization.clone(), root)
        .with_request(events::RequestContext {
            client_address: burst.client_address,
            user_agent: burst.user_agent,
            ..Default::default()
        });
        event.targets = vec![events::Target {
            r#type: "organization".into(),
            id: organization,
            name: String::new(),
        }];
        let written = self.outbox.append(&mut tx, event).await?;
        tx.commit().await?;
        self.outbox.committed(&[written]).await;
        Ok(true)
    }
}
