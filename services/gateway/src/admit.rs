//! What every API request goes through before it is forwarded, whether
//! REST or gRPC: authentication, then the rate limit of its class; and the
//! headers it carries to the backend.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::Gateway;
use crate::credentials::EdgeCaller;
use crate::edge::AccessInfo;
use crate::error::Error as Refusal;
use crate::errors::ApiError;
use crate::limits::Decision;
use crate::refusals::Refused;
use crate::routes::Class;

/// An admitted request: who calls, and its rate-limit standing.
#[derive(Debug)]
pub struct Admitted {
    /// The caller.
    pub caller: EdgeCaller,
    /// The rate-limit decision, when a limit applies.
    pub decision: Option<Decision>,
}

/// Authenticates and rate-limits a request.
pub async fn admit(
    gateway: &Gateway,
    headers: &HeaderMap,
    class: Class,
    public: bool,
    client: IpAddr,
    info: &mut AccessInfo,
) -> Result<Admitted, ApiError> {
    info.class = Some(class.as_str());
    let caller = gateway.inner.auth.authenticate(headers, public).await?;
    if let Some(claims) = &caller.claims {
        info.principal = Some(claims.sub.clone());
        info.organization = claims.org.clone();
    }
    let decision = gateway
        .inner
        .limiter
        .check(
            class,
            caller.claims.as_ref(),
            caller.authorization.as_ref(),
            client,
        )
        .await;
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        metrics::counter!(
            "tenantry_gateway_rate_limited_total",
            "class" => class.as_str(),
            "scope" => decision.scope
        )
        .increment(1);
        if let (Some(refusals), Some(claims)) = (
            gateway.inner.refusals.as_ref(),
            caller
                .claims
                .as_ref()
                .filter(|_| decision.scope == "organization"),
        ) {
            let header = |name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
            };
            refusals.record(
                Refused {
                    claims,
                    class: class.as_str(),
                    limit: decision.limit,
                    client_address: &client.to_string(),
                    user_agent: header("user-agent"),
                },
                tenantry_kit::db::now_micros(),
            );
        }
        let mut error = ApiError::from(Refusal::RateLimited {
            class: class.as_str(),
            scope: decision.scope,
            limit_per_minute: decision.limit,
            retry_after_secs: decision.retry_after_secs,
        });
        error.headers = rate_headers(&decision, class);
        return Err(error);
    }
    Ok(Admitted { caller, decision })
}

/// `Retry-After` and the RateLimit headers (IETF draft: limit, remaining,
/// reset, policy).
pub fn rate_headers(decision: &Decision, class: Class) -> Vec<(HeaderName, HeaderValue)> {
    let number =
        |n: u64| HeaderValue::from_str(&n.to_string()).unwrap_or(HeaderValue::from_static("0"));
    let mut headers = vec![
        (
            HeaderName::from_static("ratelimit-limit"),
            number(decision.limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            number(decision.remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            number(decision.reset_secs),
        ),
    ];
    if let Ok(policy) = HeaderValue::from_str(&format!(
        "{};w=60;class={};scope={}",
        decision.limit,
        class.as_str(),
        decision.scope
    )) {
        headers.push((HeaderName::from_static("ratelimit-policy"), policy));
    }
    if !decision.allowed {
        headers.push((http::header::RETRY_AFTER, number(decision.retry_after_secs)));
    }
    headers
}

/// The headers a forwarded call carries: the (exchanged) credential, the
/// request id, the client's consistency token, the client's address and
/// agent, and the trace context. Nothing else of the client's crosses: no
/// header set by the client can pose as something the edge vouches for
/// (an internal credential above all).
pub fn forward_headers(incoming: &HeaderMap, caller: &EdgeCaller, client: IpAddr) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(authorization) = &caller.authorization {
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
    }
    for name in [
        "x-request-id",
        "user-agent",
        "accept-language",
        tenantry_kit::consistency::HEADER,
    ] {
        if let Some(value) = incoming.get(name) {
            headers.insert(name, value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
        headers.insert("x-forwarded-for", value);
    }
    tenantry_kit::telemetry::inject_headers(&mut headers);
    headers
}
