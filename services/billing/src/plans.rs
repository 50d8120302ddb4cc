//! The PlanService: the catalog as callers see it. Built-in plans come from
//! the catalog (file or defaults) and cannot be changed over the API;
//! custom plans are created and updated by platform administrators, and a
//! plan offered to one organization is invisible to everyone else.

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::OrganizationName;
use tenantry_kit::request::{check_etag, update_mask};
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::catalog::{Limits, Plan, PlanBody, plan_id};
use crate::error::Error as Refusal;
use crate::{Core, not_found, respond, serve};

const UPDATABLE: &[&str] = &[
    "display_name",
    "description",
    "limits",
    "limits.projects",
    "limits.members",
    "limits.teams",
    "limits.sub_organizations",
    "limits.api_keys",
    "limits.deployments_per_month",
    "limits.audit_retention_days",
    "limits.rate_limits_per_minute",
    "features",
    "billing_interval",
    "base_price_minor_units",
    "included_seats",
    "seat_price_minor_units",
    "metered_prices",
    "trial_period",
    "archived",
];

impl Core {
    /// Whether the caller may see `plan`: every built-in and open plan;
    /// an offered plan only by its organization's billing readers.
    async fn may_see(&self, caller: &Caller, plan: &Plan) -> Result<bool> {
        let Some(organization) = &plan.offered_to else {
            return Ok(true);
        };
        if self.is_platform_admin(caller).await? {
            return Ok(true);
        }
        Ok(self
            .authorize(caller, &[organization], Need::Read, "plan")
            .await
            .is_ok())
    }
}

/// The `PlanService` handler.
#[derive(Debug, Clone)]
pub struct PlanApi(pub Core);

impl PlanApi {
    async fn get(&self, caller: Caller, request: pb::GetPlanRequest) -> Result<pb::Plan> {
        let core = &self.0;
        let plan = core
            .plan(plan_id("name", &request.name)?)
            .await?
            .ok_or_else(|| not_found("plan"))?;
        if !core.may_see(&caller, &plan).await? {
            return Err(not_found("plan"));
        }
        Ok(plan.to_pb())
    }

    async fn list(
        &self,
        caller: Caller,
        request: pb::ListPlansRequest,
    ) -> Result<pb::ListPlansResponse> {
        let core = &self.0;
        let size = tenantry_kit::page_token::page_size(request.page_size, 50, 100)? as usize;
        let query = format!(
            "ListPlans|{}|{}|{}",
            request.tier,
            request.show_archived,
            caller.id()
        );
        let offset: usize = core
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or(0);
        let tier = pb::PlanTier::try_from(request.tier)
            .map_err(|_| Error::invalid_field("tier", "is not a plan tier"))?;
        let mut visible = Vec::new();
        let custom = crate::store::custom_plans(core.store.pool()).await?;
        for plan in core.catalog.iter().cloned().chain(custom) {
            let wanted = (tier == pb::PlanTier::Unspecified || plan.tier == tier)
                && (request.show_archived || !plan.archived);
            if wanted && core.may_see(&caller, &plan).await? {
                visible.push(plan);
            }
        }
        let next_page_token = if offset + size < visible.len() {
            core.page_tokens.encode(query.as_bytes(), &(offset + size))
        } else {
            String::new()
        };
        Ok(pb::ListPlansResponse {
            plans: visible
                .iter()
                .skip(offset)
                .take(size)
                .map(Plan::to_pb)
                .collect(),
            next_page_token,
        })
    }

    async fn create(&self, caller: Caller, request: pb::CreatePlanRequest) -> Result<pb::Plan> {
        let core = &self.0;
        let given = request
            .plan
            .ok_or_else(|| Error::invalid_field("plan", "is required"))?;
        let body = PlanBody::from_pb(&given)?;
        body.validate("plan")?;
        tenantry_kit::request::request_id(&request.request_id)?;
        let offered_to = match given.offered_to.as_str() {
            "" => None,
            name => Some(OrganizationName::parse("plan.offered_to", name)?.id),
        };
        core.require_platform_admin(&caller).await?;
        let now = now_micros();
        let mut tx = core.begin().await?;
        if let Some(id) = crate::store::REQUESTS
            .replayed(
                &mut **tx,
                &caller.resource_name(),
                "CreatePlan",
                &request.request_id,
            )
            .await?
        {
            drop(tx);
            return Ok(core
                .plan(&id)
                .await?
                .ok_or_else(|| not_found("plan"))?
                .to_pb());
        }
        let plan = Plan {
            id: tenantry_kit::id::new_id().to_string(),
            tier: pb::PlanTier::Custom,
            body,
            offered_to,
            archived: given.archived,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        crate::store::save_plan(&mut tx, &plan).await?;
        crate::store::REQUESTS
            .remember(
                &mut tx,
                &caller.resource_name(),
                "CreatePlan",
                &request.request_id,
                &plan.id,
            )
            .await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("plan", &plan.id),
            None,
            &events::PlanCreated {
                plan_id: plan.id.clone(),
                display_name: plan.body.display_name.clone(),
                offered_to_organization_id: plan.offered_to.clone().unwrap_or_default(),
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(plan.to_pb())
    }

    async fn update(&self, caller: Caller, request: pb::UpdatePlanRequest) -> Result<pb::Plan> {
        let core = &self.0;
        let given = request
            .plan
            .ok_or_else(|| Error::invalid_field("plan", "is required"))?;
        let id = plan_id("plan.name", &given.name)?;
        let paths = update_mask(request.update_mask.as_ref(), UPDATABLE)?;
        let wanted = PlanBody::from_pb(&given)?;
        core.require_platform_admin(&caller).await?;
        let before = core.plan(id).await?.ok_or_else(|| not_found("plan"))?;
        if before.tier != pb::PlanTier::Custom {
            return Err(Refusal::BuiltInPlan.into());
        }
        if !given.etag.is_empty() {
            check_etag(&given.etag, before.version)?;
        }
        let mut after = before.clone();
        let body = &mut after.body;
        for path in &paths {
            match *path {
                "display_name" => body.display_name = wanted.display_name.clone(),
                "description" => body.description = wanted.description.clone(),
                "limits" => body.limits = wanted.limits.clone(),
                "limits.rate_limits_per_minute" => {
                    body.limits.rate_limits_per_minute =
                        wanted.limits.rate_limits_per_minute.clone()
                }
                "limits.audit_retention_days" => {
                    body.limits.audit_retention_days = wanted.limits.audit_retention_days
                }
                "features" => body.features = wanted.features.clone(),
                "billing_interval" => body.billing_interval = wanted.billing_interval,
                "base_price_minor_units" => {
                    body.base_price_minor_units = wanted.base_price_minor_units
                }
                "included_seats" => body.included_seats = wanted.included_seats,
                "seat_price_minor_units" => {
                    body.seat_price_minor_units = wanted.seat_price_minor_units
                }
                "metered_prices" => body.metered_prices = wanted.metered_prices.clone(),
                "trial_period" => body.trial_days = wanted.trial_days,
                "archived" => after.archived = given.archived,
                field => {
                    let field = field.trim_start_matches("limits.");
                    if let Some(metric) = crate::metric::ALL
                        .into_iter()
                        .find(|m| crate::catalog::limit_field(*m) == field)
                        && let Some(slot) = body.limits.slot(metric)
                    {
                        *slot = wanted.limits.get(metric);
                    }
                }
            }
        }
        after.body.validate("plan")?;
        after.version += 1;
        after.updated_at_us = now_micros();
        let mut tx = core.begin().await?;
        crate::store::save_plan(&mut tx, &after).await?;
        core.emit(
            &mut tx,
            caller.actor(),
            Some(&caller.request),
            ("plan", &after.id),
            None,
            &events::PlanUpdated {
                plan_id: after.id.clone(),
                limits: Limits::to_events(&after.body.limits),
                changed_fields: paths.iter().map(|p| p.to_string()).collect(),
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(after.to_pb())
    }
}

#[tonic::async_trait]
impl pb::plan_service_server::PlanService for PlanApi {
    async fn get_plan(
        &self,
        request: Request<pb::GetPlanRequest>,
    ) -> std::result::Result<Response<pb::GetPlanResponse>, Status> {
        let plan = Some(serve(request, |caller, request| self.get(caller, request)).await?);
        Ok(Response::new(pb::GetPlanResponse { plan }))
    }

    async fn list_plans(
        &self,
        request: Request<pb::ListPlansRequest>,
    ) -> std::result::Result<Response<pb::ListPlansResponse>, Status> {
        respond(request, |caller, r| self.list(caller, r)).await
    }

    async fn create_plan(
        &self,
        request: Request<pb::CreatePlanRequest>,
    ) -> std::result::Result<Response<pb::CreatePlanResponse>, Status> {
        let plan = Some(serve(request, |caller, request| self.create(caller, request)).await?);
        Ok(Response::new(pb::CreatePlanResponse { plan }))
    }

    async fn update_plan(
        &self,
        request: Request<pb::UpdatePlanRequest>,
    ) -> std::result::Result<Response<pb::UpdatePlanResponse>, Status> {
        let plan = Some(serve(request, |caller, request| self.update(caller, request)).await?);
        Ok(Response::new(pb::UpdatePlanResponse { plan }))
    }
}
