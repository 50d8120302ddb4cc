//! Which services a process runs.

use tenantry_kit::peer::Peer;

use std::fmt;
use std::str::FromStr;

/// A Tenantry service. `tenantry serve --services rbac,audit` runs a subset;
/// the default is all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// Users, credentials, sessions, tokens, API keys, service accounts.
    Identity,
    /// Workspaces, organization trees, teams, projects.
    Organization,
    /// Memberships, roles, invitations and the authorization engine.
    Rbac,
    /// Plans, subscriptions, limits, usage, quotas.
    Billing,
    /// The audit log.
    Audit,
    /// The HTTP edge: REST/JSON, gRPC-Web, metrics.
    Gateway,
}

impl ServiceKind {
    /// Every service, in start order.
    pub const ALL: [ServiceKind; 6] = [
        ServiceKind::Identity,
        ServiceKind::Organization,
        ServiceKind::Rbac,
        ServiceKind::Billing,
        ServiceKind::Audit,
        ServiceKind::Gateway,
    ];

    /// The services this one calls (a process is ready once those in other
    /// processes answer).
    pub fn peers(self) -> &'static [ServiceKind] {
        use ServiceKind::*;
        match self {
            Identity => &[Organization, Rbac, Billing],
            Organization => &[Rbac, Billing],
            Rbac => &[Identity, Organization, Billing],
            Billing => &[Organization, Rbac],
            Audit => &[Rbac],
            Gateway => &[Identity, Organization, Rbac, Billing, Audit],
        }
    }

    /// The service as another's peer (the gateway is nobody's).
    pub fn as_peer(self) -> Option<Peer> {
        match self {
            ServiceKind::Identity => Some(Peer::Identity),
            ServiceKind::Organization => Some(Peer::Organization),
            ServiceKind::Rbac => Some(Peer::Rbac),
            ServiceKind::Billing => Some(Peer::Billing),
            ServiceKind::Audit => Some(Peer::Audit),
            ServiceKind::Gateway => None,
        }
    }

    /// The service's name on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Identity => "identity",
            ServiceKind::Organization => "organization",
            ServiceKind::Rbac => "rbac",
            ServiceKind::Billing => "billing",
            ServiceKind::Audit => "audit",
            ServiceKind::Gateway => "gateway",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServiceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ServiceKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown service `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Parses a comma-separated list such as `rbac,audit`, without duplicates.
pub fn parse_list(list: &str) -> Result<Vec<ServiceKind>, String> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind: ServiceKind = name.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err("the service list is empty".into());
    }
    kinds.sort();
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ServiceKind::ALL {
            assert_eq!(kind.to_string().parse::<ServiceKind>(), Ok(kind));
        }
    }

    #[test]
    fn lists_parse_and_name_unknown_services() {
        assert_eq!(
            parse_list("audit, rbac,rbac"),
            Ok(vec![ServiceKind::Rbac, ServiceKind::Audit])
        );
        let error = parse_list("rbac,ledger").unwrap_err();
        assert!(
            error.contains("ledger") && error.contains("identity"),
            "{error}"
        );
        assert!(parse_list("").is_err());
    }
}
