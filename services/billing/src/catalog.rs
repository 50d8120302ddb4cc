//! The plan catalog: the built-in plans (FREE, STARTER, PROFESSIONAL,
//! ENTERPRISE), which a deployment may replace from a TOML file
//! (`billing.catalog_file`), and the one shape plans have everywhere else
//! in the service ([`PlanBody`]): stored as JSON for custom plans, read
//! from the file for built-in ones, turned into the API's `Plan`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tenantry_kit::error::{Error, Result};
use tenantry_proto::tenantry::billing::v1 as pb;

use crate::metric::Metric;

/// The ids of the built-in plans, in tier order.
pub const BUILT_IN: [(&str, pb::PlanTier); 4] = [
    ("free", pb::PlanTier::Free),
    ("starter", pb::PlanTier::Starter),
    ("professional", pb::PlanTier::Professional),
    ("enterprise", pb::PlanTier::Enterprise),
];

/// The plan organizations fall back to: with no subscription, or after a
/// cancellation.
pub const FREE: &str = "free";

/// The endpoint classes a plan's rate limits may name (the gateway's).
pub const RATE_CLASSES: [&str; 4] = ["read", "write", "auth", "expensive"];

/// What a plan (or a subscription's overrides) allows. `None` means no
/// limit (or, for overrides, no override).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub projects: Option<i64>,
    pub members: Option<i64>,
    pub teams: Option<i64>,
    pub sub_organizations: Option<i64>,
    pub api_keys: Option<i64>,
    pub deployments_per_month: Option<i64>,
    pub audit_retention_days: Option<i64>,
    pub rate_limits_per_minute: BTreeMap<String, i64>,
}

impl Limits {
    /// The limit of `metric`.
    pub fn get(&self, metric: Metric) -> Option<i64> {
        match metric {
            Metric::Projects => self.projects,
            Metric::Members => self.members,
            Metric::Teams => self.teams,
            Metric::SubOrganizations => self.sub_organizations,
            Metric::ApiKeys => self.api_keys,
            Metric::Deployments => self.deployments_per_month,
            Metric::Unspecified => None,
        }
    }

    /// The field that holds the limit of `metric`.
    pub fn slot(&mut self, metric: Metric) -> Option<&mut Option<i64>> {
        match metric {
            Metric::Projects => Some(&mut self.projects),
            Metric::Members => Some(&mut self.members),
            Metric::Teams => Some(&mut self.teams),
            Metric::SubOrganizations => Some(&mut self.sub_organizations),
            Metric::ApiKeys => Some(&mut self.api_keys),
            Metric::Deployments => Some(&mut self.deployments_per_month),
            Metric::Unspecified => None,
        }
    }

    /// These limits with every value `overrides` sets replacing ours.
    pub fn overridden_by(&self, overrides: &Limits) -> Limits {
        let mut limits = self.clone();
        for metric in crate::metric::ALL {
            if let Some(value) = overrides.get(metric)
                && let Some(slot) = limits.slot(metric)
            {
                *slot = Some(value);
            }
        }
        if overrides.audit_retention_days.is_some() {
            limits.audit_retention_days = overrides.audit_retention_days;
        }
        for (class, value) in &overrides.rate_limits_per_minute {
            limits.rate_limits_per_minute.insert(class.clone(), *value);
        }
        limits
    }

    /// The sum of two pools' limits: unlimited when either is.
    pub fn plus(&self, other: &Limits) -> Limits {
        let add = |a: Option<i64>, b: Option<i64>| Some(a?.saturating_add(b?));
        Limits {
            projects: add(self.projects, other.projects),
            members: add(self.members, other.members),
            teams: add(self.teams, other.teams),
            sub_organizations: add(self.sub_organizations, other.sub_organizations),
            api_keys: add(self.api_keys, other.api_keys),
            deployments_per_month: add(self.deployments_per_month, other.deployments_per_month),
            audit_retention_days: self.audit_retention_days.max(other.audit_retention_days),
            rate_limits_per_minute: {
                let mut rates = self.rate_limits_per_minute.clone();
                for (class, value) in &other.rate_limits_per_minute {
                    let entry = rates.entry(class.clone()).or_insert(0);
                    *entry = entry.saturating_add(*value);
                }
                rates
            },
        }
    }

    /// Checks every value: counts zero or more, rates positive and of a
    /// known class. `field` prefixes the violations.
    pub fn validate(&self, field: &str) -> Result<()> {
        for metric in crate::metric::ALL {
            if self.get(metric).is_some_and(|v| v < 0) {
                return Err(Error::invalid_field(
                    format!("{field}.{}", limit_field(metric)),
                    "must not be negative",
                ));
            }
        }
        if self
            .audit_retention_days
            .is_some_and(|v| !(1..=36_500).contains(&v))
        {
            return Err(Error::invalid_field(
                format!("{field}.audit_retention_days"),
                "must be from 1 to 36500",
            ));
        }
        for (class, value) in &self.rate_limits_per_minute {
            if !RATE_CLASSES.contains(&class.as_str()) || *value <= 0 {
                return Err(Error::invalid_field(
                    format!("{field}.rate_limits_per_minute"),
                    format!(
                        "keys must be one of {} and values positive",
                        RATE_CLASSES.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The limits as events carry them.
    pub fn to_events(&self) -> Vec<tenantry_proto::tenantry::events::v1::LimitValue> {
        use tenantry_proto::tenantry::events::v1::LimitValue;
        let mut values: Vec<LimitValue> = crate::metric::ALL
            .iter()
            .map(|m| LimitValue {
                metric: m.as_str_name().to_string(),
                value: self.get(*m),
            })
            .collect();
        values.push(LimitValue {
            metric: "audit_retention_days".into(),
            value: self.audit_retention_days,
        });
        for (class, value) in &self.rate_limits_per_minute {
            values.push(LimitValue {
                metric: format!("rate_limits_per_minute.{class}"),
                value: Some(*value),
            });
        }
        values
    }
}

/// The field of `PlanLimits` that limits `metric`.
pub fn limit_field(metric: Metric) -> &'static str {
    match metric {
        Metric::Projects => "projects",
        Metric::Members => "members",
        Metric::Teams => "teams",
        Metric::SubOrganizations => "sub_organizations",
        Metric::ApiKeys => "api_keys",
        Metric::Deployments => "deployments_per_month",
        Metric::Unspecified => "unspecified",
    }
}

/// The price of a metered metric above an included quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeteredPrice {
    /// The metric's enum name, such as `METRIC_DEPLOYMENTS`.
    pub metric: String,
    #[serde(default)]
    pub included_quantity: i64,
    pub unit_price_minor_units: i64,
}

/// How often a plan is charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    #[default]
    Monthly,
    Yearly,
}

/// A plan, as the catalog file and the database hold it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanBody {
    pub display_name: String,
    pub description: String,
    pub limits: Limits,
    pub features: BTreeMap<String, bool>,
    pub currency_code: String,
    pub billing_interval: Interval,
    pub base_price_minor_units: i64,
    pub included_seats: i64,
    pub seat_price_minor_units: i64,
    pub metered_prices: Vec<MeteredPrice>,
    pub trial_days: i64,
}

impl PlanBody {
    /// Checks the plan's values, naming fields under `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        let name_len = self.display_name.chars().count();
        if self.display_name.trim().is_empty() || name_len > 100 {
            return Err(Error::invalid_field(
                format!("{field}.display_name"),
                "must be 1 to 100 characters",
            ));
        }
        if self.description.chars().count() > 1000 {
            return Err(Error::invalid_field(
                format!("{field}.description"),
                "must be at most 1000 characters",
            ));
        }
        self.limits.validate(&format!("{field}.limits"))?;
        if self.features.len() > 64
            || self.features.keys().any(|k| {
                k.is_empty()
                    || k.len() > 64
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        {
            return Err(Error::invalid_field(
                format!("{field}.features"),
                "at most 64 keys of 1 to 64 lowercase letters, digits and `_`",
            ));
        }
        if !is_currency(&self.currency_code) {
            return Err(Error::invalid_field(
                format!("{field}.currency_code"),
                "must be an ISO 4217 code such as `USD`",
            ));
        }
        for (name, value) in [
            ("base_price_minor_units", self.base_price_minor_units),
            ("included_seats", self.included_seats),
            ("seat_price_minor_units", self.seat_price_minor_units),
        ] {
            if value < 0 {
                return Err(Error::invalid_field(
                    format!("{field}.{name}"),
                    "must not be negative",
                ));
            }
        }
        if !(0..=365).contains(&self.trial_days) {
            return Err(Error::invalid_field(
                format!("{field}.trial_period"),
                "must be whole days from 0 to 365",
            ));
        }
        for (i, price) in self.metered_prices.iter().enumerate() {
            let metered =
                crate::metric::from_name(&price.metric).is_some_and(crate::metric::is_metered);
            if !metered || price.included_quantity < 0 || price.unit_price_minor_units < 0 {
                return Err(Error::invalid_field(
                    format!("{field}.metered_prices[{i}]"),
                    "must name a metered metric with non-negative quantities and prices",
                ));
            }
        }
        Ok(())
    }

    /// The included quantity and unit price of a metered metric, if priced.
    pub fn metered_price(&self, metric: Metric) -> Option<&MeteredPrice> {
        self.metered_prices
            .iter()
            .find(|p| p.metric == metric.as_str_name())
    }

    /// Whether subscribing costs nothing (no account needed).
    pub fn is_free(&self) -> bool {
        self.base_price_minor_units == 0
            && self.seat_price_minor_units == 0
            && self
                .metered_prices
                .iter()
                .all(|p| p.unit_price_minor_units == 0)
    }
}

fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())
}

/// The resource name of the plan `id` (`plans/{plan}`). Plan ids are not
/// all UUIDs (the built-in plans are `free`, `starter`, …), so plans have
/// no name type of their own in kit.
pub fn plan_name(id: &str) -> String {
    format!("plans/{id}")
}

/// The plan id of the plan name in request field `field`, or
/// INVALID_ARGUMENT.
pub(crate) fn plan_id<'a>(field: &str, name: &'a str) -> Result<&'a str> {
    name.strip_prefix("plans/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| Error::invalid_field(field, "must look like `plans/{plan}`"))
}

/// A plan of the catalog with its identity and state.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub tier: pb::PlanTier,
    pub body: PlanBody,
    pub offered_to: Option<String>,
    pub archived: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The catalog file: built-in plans by id, each replacing the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    plans: BTreeMap<String, PlanBody>,
}

/// The built-in plans: the defaults below, each replaced by the catalog
/// file's entry of the same id when a file is given.
pub fn built_in(file: Option<&Path>) -> anyhow::Result<Vec<Plan>> {
    let mut bodies = defaults();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read `billing.catalog_file` {}: {e}", path.display())
        })?;
        let catalog: CatalogFile = figment::Figment::from(
            <figment::providers::Toml as figment::providers::Format>::string(&text),
        )
        .extract()
        .map_err(|e| anyhow::anyhow!("invalid `billing.catalog_file` {}: {e}", path.display()))?;
        for (id, body) in catalog.plans {
            let slot = bodies.iter_mut().find(|(known, _)| *known == id).ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid `billing.catalog_file`: `{id}` is not a built-in plan (free, starter, professional, enterprise); create custom plans with CreatePlan"
                )
            })?;
            body.validate(&format!("plans.{id}"))
                .map_err(|e| anyhow::anyhow!("invalid `billing.catalog_file`: {}", e.message()))?;
            slot.1 = body;
        }
    }
    Ok(BUILT_IN
        .iter()
        .zip(bodies)
        .map(|((id, tier), (_, body))| Plan {
            id: id.to_string(),
            tier: *tier,
            body,
            offered_to: None,
            archived: false,
            created_at_us: 0,
            updated_at_us: 0,
            version: 1,
        })
        .collect())
}

fn rates(read: i64, write: i64, auth: i64, expensive: i64) -> BTreeMap<String, i64> {
    [
        ("read", read),
        ("write", write),
        ("auth", auth),
        ("expensive", expensive),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn features(on: &[&str]) -> BTreeMap<String, bool> {
    ["sso", "custom_roles", "audit_export", "scim"]
        .into_iter()
        .map(|k| (k.to_string(), on.contains(&k)))
        .collect()
}

fn deployments(included: i64, unit: i64) -> Vec<MeteredPrice> {
    vec![MeteredPrice {
        metric: Metric::Deployments.as_str_name().to_string(),
        included_quantity: included,
        unit_price_minor_units: unit,
    }]
}

/// The default catalog: prices in USD cents per month.
fn defaults() -> Vec<(&'static str, PlanBody)> {
    vec![
        (
            "free",
            PlanBody {
                display_name: "Free".into(),
                description: "For trying Tenantry out and small side projects.".into(),
                limits: Limits {
                    projects: Some(3),
                    members: Some(5),
                    teams: Some(3),
                    sub_organizations: Some(2),
                    api_keys: Some(3),
                    deployments_per_month: Some(100),
                    audit_retention_days: Some(7),
                    rate_limits_per_minute: rates(600, 120, 30, 10),
                },
                features: features(&[]),
                currency_code: "USD".into(),
                included_seats: 5,
                metered_prices: deployments(100, 0),
                ..PlanBody::default()
            },
        ),
        (
            "starter",
            PlanBody {
                display_name: "Starter".into(),
                description: "For small teams shipping their first product.".into(),
                limits: Limits {
                    projects: Some(10),
                    members: Some(25),
                    teams: Some(10),
                    sub_organizations: Some(5),
                    api_keys: Some(20),
                    deployments_per_month: Some(1_000),
                    audit_retention_days: Some(30),
                    rate_limits_per_minute: rates(3_000, 600, 120, 60),
                },
                features: features(&["custom_roles"]),
                currency_code: "USD".into(),
                base_price_minor_units: 2_900,
                included_seats: 5,
                seat_price_minor_units: 800,
                metered_prices: deployments(500, 2),
                trial_days: 14,
                ..PlanBody::default()
            },
        ),
        (
            "professional",
            PlanBody {
                display_name: "Professional".into(),
                description: "For growing companies with several teams.".into(),
                limits: Limits {
                    projects: Some(100),
                    members: Some(250),
                    teams: Some(100),
                    sub_organizations: Some(50),
                    api_keys: Some(100),
                    deployments_per_month: Some(10_000),
                    audit_retention_days: Some(365),
                    rate_limits_per_minute: rates(12_000, 3_000, 600, 300),
                },
                features: features(&["custom_roles", "sso", "audit_export"]),
                currency_code: "USD".into(),
                base_price_minor_units: 9_900,
                included_seats: 10,
                seat_price_minor_units: 1_200,
                metered_prices: deployments(5_000, 1),
                trial_days: 14,
                ..PlanBody::default()
            },
        ),
        (
            "enterprise",
            PlanBody {
                display_name: "Enterprise".into(),
                description: "Negotiated limits, SSO, SCIM and long audit retention.".into(),
                limits: Limits {
                    audit_retention_days: Some(2_555),
                    ..Limits::default()
                },
                features: features(&["custom_roles", "sso", "audit_export", "scim"]),
                currency_code: "USD".into(),
                base_price_minor_units: 150_000,
                included_seats: 50,
                seat_price_minor_units: 1_500,
                ..PlanBody::default()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_in_tier_order() {
        let plans = built_in(None).unwrap();
        assert_eq!(plans.len(), 4);
        for plan in &plans {
            plan.body.validate("plan").unwrap();
        }
        assert!(plans[0].body.is_free());
        assert!(!plans[1].body.is_free());
    }

    #[test]
    fn a_catalog_file_replaces_a_built_in_plan_and_refuses_unknown_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        std::fs::write(
            &path,
            "[plans.free]\ndisplay_name = \"Hobby\"\ncurrency_code = \"EUR\"\n[plans.free.limits]\nprojects = 1\n",
        )
        .unwrap();
        let plans = built_in(Some(&path)).unwrap();
        assert_eq!(plans[0].body.display_name, "Hobby");
        assert_eq!(plans[0].body.limits.projects, Some(1));
        assert_eq!(plans[0].body.limits.members, None);

        std::fs::write(
            &path,
            "[plans.gold]\ndisplay_name = \"Gold\"\ncurrency_code = \"EUR\"\n",
        )
        .unwrap();
        let error = built_in(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("`gold` is not a built-in plan"), "{error}");
    }

    #[test]
    fn overrides_replace_and_pools_add_up() {
        let plan = Limits {
            projects: Some(3),
            members: Some(5),
            ..Limits::default()
        };
        let overrides = Limits {
            projects: Some(50),
            ..Limits::default()
        };
        let merged = plan.overridden_by(&overrides);
        assert_eq!((merged.projects, merged.members), (Some(50), Some(5)));
        let pool = merged.plus(&Limits {
            projects: Some(1),
            members: None,
            ..Limits::default()
        });
        assert_eq!((pool.projects, pool.members), (Some(51), None));
    }
}
