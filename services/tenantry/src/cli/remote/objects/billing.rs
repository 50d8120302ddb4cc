//! `tenantry plans`, `subscription`, `usage` and `limits`: the plan
//! catalog, a root organization's subscription, what an organization uses
//! per metric, and the limits that apply to it (with where each comes
//! from).

use clap::{Subcommand, ValueEnum};
use futures::TryStreamExt as _;
use serde_json::Value;
use tenantry_client::pb::billing::v1 as billing;
use tenantry_client::{Client, Error};

use super::{OrgArg, named, print_list, print_one};
use crate::cli::remote::exit;
use crate::cli::remote::output::{self, Format};

/// A plan tier to list.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Tier {
    /// The built-in free plan.
    Free,
    /// The built-in starter plan.
    Starter,
    /// The built-in professional plan.
    Professional,
    /// The built-in enterprise plan.
    Enterprise,
    /// Custom plans.
    Custom,
}

impl From<Tier> for billing::PlanTier {
    fn from(tier: Tier) -> Self {
        match tier {
            Tier::Free => billing::PlanTier::Free,
            Tier::Starter => billing::PlanTier::Starter,
            Tier::Professional => billing::PlanTier::Professional,
            Tier::Enterprise => billing::PlanTier::Enterprise,
            Tier::Custom => billing::PlanTier::Custom,
        }
    }
}

/// What `tenantry plans` does.
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// The plans you may subscribe to, built-in plans first.
    List {
        /// Only plans of this tier.
        #[arg(long, value_enum)]
        tier: Option<Tier>,
        /// Include archived plans.
        #[arg(long)]
        show_archived: bool,
    },
    /// One plan (`free`, `plans/free`, a custom plan's id).
    Get { plan: String },
}

const PLAN_COLUMNS: &[&str] = &[
    "name",
    "displayName",
    "tier",
    "basePriceMinorUnits",
    "currencyCode",
    "billingInterval",
    "limits.projects",
    "limits.members",
];

/// Runs a plans command.
pub async fn plans(format: Format, client: &Client, command: PlansCommand) -> anyhow::Result<()> {
    match command {
        PlansCommand::List {
            tier,
            show_archived,
        } => {
            let items: Vec<_> = client
                .list_plans(billing::ListPlansRequest {
                    tier: tier.map(billing::PlanTier::from).unwrap_or_default() as i32,
                    show_archived,
                    ..Default::default()
                })
                .try_collect()
                .await?;
            print_list(format, &items, PLAN_COLUMNS);
        }
        PlansCommand::Get { plan } => {
            let response = client
                .plans()
                .get_plan(billing::GetPlanRequest {
                    name: named("plans/", &plan),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(format, &response.plan.unwrap_or_default(), PLAN_COLUMNS);
        }
    }
    Ok(())
}

/// What `tenantry subscription` does.
#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// A root organization's subscription.
    Get(OrgArg),
    /// Move the subscription to another plan (limits change at once).
    ChangePlan {
        #[command(flatten)]
        organization: OrgArg,
        /// The new plan (`starter`, `plans/starter`, a custom plan's id).
        plan: String,
        /// The account to pay with from now on
        /// (`workspaces/{workspace}/billingAccounts/{id}`); required to
        /// leave a free plan when the subscription has none.
        #[arg(long)]
        billing_account: Option<String>,
        /// The new number of seats beyond the plan's included seats.
        #[arg(long)]
        extra_seats: Option<i64>,
    },
}

const SUBSCRIPTION_COLUMNS: &[&str] = &[
    "name",
    "plan",
    "state",
    "billingAccount",
    "overLimitMetrics",
    "currentPeriodEndTime",
];

/// Runs a subscription command.
pub async fn subscription(
    format: Format,
    client: &Client,
    command: SubscriptionCommand,
) -> anyhow::Result<()> {
    let mut subscriptions = client.subscriptions();
    let subscription = match command {
        SubscriptionCommand::Get(organization) => {
            subscriptions
                .get_subscription(billing::GetSubscriptionRequest {
                    name: subscription_name(&organization),
                })
                .await
                .map_err(Error::from)?
                .into_inner()
                .subscription
        }
        SubscriptionCommand::ChangePlan {
            organization,
            plan,
            billing_account,
            extra_seats,
        } => {
            subscriptions
                .change_plan(billing::ChangePlanRequest {
                    name: subscription_name(&organization),
                    plan: named("plans/", &plan),
                    extra_seats,
                    billing_account: billing_account.unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner()
                .subscription
        }
    };
    let subscription = subscription.unwrap_or_default();
    print_one(format, &subscription, SUBSCRIPTION_COLUMNS);
    if !subscription.over_limit_metrics.is_empty() {
        eprintln!("warning: usage is above the new plan's limits; creation of those is refused");
    }
    Ok(())
}

fn subscription_name(organization: &OrgArg) -> String {
    format!("{}/subscription", organization.name())
}

/// `projects`, `METRIC_PROJECTS` → the metric.
fn metric(text: &str) -> anyhow::Result<billing::Metric> {
    let upper = text.to_ascii_uppercase().replace('-', "_");
    let full = if upper.starts_with("METRIC_") {
        upper
    } else {
        format!("METRIC_{upper}")
    };
    match billing::Metric::from_str_name(&full) {
        Some(metric) if metric != billing::Metric::Unspecified => Ok(metric),
        _ => Err(exit::invalid(format!(
            "unknown metric {text:?}: one of projects, members, teams, sub-organizations, api-keys, deployments"
        ))),
    }
}

/// The metric column as people read it: `METRIC_API_KEYS` → `api-keys`.
fn metric_cell(row: &mut Value) {
    if let Some(Value::String(name)) = row.get("metric") {
        let short = name
            .trim_start_matches("METRIC_")
            .to_ascii_lowercase()
            .replace('_', "-");
        row["metric"] = short.into();
    }
}

/// Arguments of `tenantry usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[command(flatten)]
    organization: OrgArg,
    /// Only this metric (`projects`, `members`, `deployments`, …).
    #[arg(long)]
    metric: Option<String>,
}

/// Prints an organization's usage of each metric in the current billing
/// period, its own and its subtree's, with the limit.
pub async fn usage(format: Format, client: &Client, args: UsageArgs) -> anyhow::Result<()> {
    let metric = args.metric.as_deref().map(metric).transpose()?;
    let response = client
        .usage()
        .get_usage(billing::GetUsageRequest {
            organization: args.organization.name(),
            metric: metric.unwrap_or_default() as i32,
            ..Default::default()
        })
        .await
        .map_err(Error::from)?
        .into_inner();
    let columns = &["metric", "ownQuantity", "subtreeQuantity", "limit"];
    if format != Format::Table {
        print_one(format, &response, columns);
        return Ok(());
    }
    let rows = response
        .usages
        .iter()
        .map(|usage| {
            let mut row = output::json(usage);
            metric_cell(&mut row);
            for count in ["ownQuantity", "subtreeQuantity"] {
                if row.get(count).is_none() {
                    row[count] = "0".into();
                }
            }
            if row.get("limit").is_none() {
                row["limit"] = "unlimited".into();
            }
            row
        })
        .collect();
    output::print(format, &Value::Array(rows), columns);
    Ok(())
}

/// Arguments of `tenantry limits`.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    #[command(flatten)]
    organization: OrgArg,
    /// Only these metrics (repeatable); every metric when absent.
    #[arg(long = "metric")]
    metrics: Vec<String>,
}

/// Prints the effective limit of each metric at an organization: its
/// value, where it comes from, what is used and what remains.
pub async fn limits(format: Format, client: &Client, args: LimitsArgs) -> anyhow::Result<()> {
    let metrics = args
        .metrics
        .iter()
        .map(|m| metric(m).map(|m| m as i32))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let response = client
        .entitlements()
        .get_effective_limits(billing::GetEffectiveLimitsRequest {
            organization: args.organization.name(),
            metrics,
        })
        .await
        .map_err(Error::from)?
        .into_inner();
    let columns = &[
        "metric",
        "value",
        "used",
        "remaining",
        "source",
        "sourceOrganization",
    ];
    if format != Format::Table {
        print_one(format, &response, columns);
        return Ok(());
    }
    let rows = response
        .effective_limits
        .iter()
        .map(|limit| {
            let mut row = output::json(limit);
            metric_cell(&mut row);
            if row.get("used").is_none() {
                row["used"] = "0".into();
            }
            match limit.value {
                None => row["value"] = "unlimited".into(),
                Some(_) if limit.remaining == Some(0) => row["remaining"] = "0".into(),
                Some(_) => {}
            }
            if let Some(Value::String(source)) = row.get("source") {
                row["source"] = source
                    .trim_start_matches("LIMIT_SOURCE_")
                    .to_ascii_lowercase()
                    .into();
            }
            row
        })
        .collect();
    output::print(format, &Value::Array(rows), columns);
    Ok(())
}
