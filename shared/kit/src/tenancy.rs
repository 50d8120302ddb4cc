//! The tenant scope of a request: what Postgres row-level security lets its
//! queries see, the second wall behind each query's own tenant filter.
//!
//! A request starts with an empty scope ([`TenancyLayer`]). Before a service
//! reads anything of an organization the request names, it [`enter`]s that
//! organization's tenant, in the unit its tables are kept by: the tree's
//! root (organization, rbac), the organization's own audit chain, the
//! workspace that holds it (billing), or the organization (identity's API
//! keys). Work that serves every tenant (relays, consumers, sweepers, the
//! lookups that find which tenant a name or credential belongs to) runs in
//! [`system`]. Every pooled Postgres connection takes the scope of the task
//! that acquires it (the `tenantry.scope` setting, see [`crate::db`]), and
//! each tenant table's policy shows only rows of the tenants in scope. So a
//! query that forgets its tenant filter sees the named tenant's rows at
//! most, and outside any scope it sees nothing: the wall fails closed.
//!
//! The scope comes from the request's names, so it narrows what a query can
//! reach; it grants nothing (every handler still authorizes the caller on
//! what it reads). The setting is an ordinary session variable: it stops a
//! missing filter, not SQL written by an attacker (no query takes SQL from a
//! request). SQLite has no row-level security: there the queries' own
//! filters are the only wall.
//!
//! A policy on a table whose rows name their tenant reads
//!
//! ```sql
//! USING (current_setting('tenantry.scope', true) = '*'
//!        OR root_id = ANY (string_to_array(current_setting('tenantry.scope', true), ',')))
//! ```
//!
//! and a table whose rows belong to an organization by reference names the
//! tenants in its subquery too (`organization_id IN (SELECT id FROM
//! org_organizations WHERE root_id = ANY (…))`), so the subquery reads the
//! scope's rows through an index rather than scanning every organization
//! (the referenced table's own policy, an OR with the system scope, could
//! use none). Tables are `FORCE`d, so their owner is held by the policies
//! too; only a superuser or a role with `BYPASSRLS` passes, and production
//! refuses to run as one.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;

/// The Postgres setting that carries a connection's scope.
pub const SETTING: &str = "tenantry.scope";

/// The setting's value in the system scope: every tenant.
const EVERY_TENANT: &str = "*";

tokio::task_local! {
    static SCOPE: Arc<Mutex<Scope>>;
}

/// What a task's queries may see: every tenant, or the tenants entered
/// (none at first).
#[derive(Debug, Default)]
struct Scope {
    system: bool,
    tenants: BTreeSet<String>,
}

/// Runs `future` as one request: its scope starts empty.
pub async fn request<F: Future>(future: F) -> F::Output {
    SCOPE.scope(Arc::default(), future).await
}

/// Runs `future` with every tenant in scope: for work that serves all of
/// them, and for the lookups that find which tenant a name belongs to.
pub async fn system<F: Future>(future: F) -> F::Output {
    let scope = Scope {
        system: true,
        tenants: BTreeSet::new(),
    };
    SCOPE.scope(Arc::new(Mutex::new(scope)), future).await
}

/// Adds a tenant to the current request's scope, for the connections it
/// acquires from now on: an id that each table's policy compares with the
/// column saying whose a row is (a tree's root, an audit chain, a billing
/// workspace, an organization). Nothing changes in the system scope, and
/// outside any scope nothing can be entered (queries there see no
/// tenant's rows).
pub fn enter(tenant: &str) {
    let _ = SCOPE.try_with(|scope| {
        let mut scope = lock(scope);
        if !scope.system {
            scope.tenants.insert(tenant.to_string());
        }
    });
}

/// `future` in the current task's scope, for work a request hands to a
/// task of its own (a streamed answer): a spawned task starts outside any
/// scope otherwise, and so would see nothing.
pub fn carried<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let scope = SCOPE.try_with(Arc::clone).ok();
    async move {
        match scope {
            Some(scope) => SCOPE.scope(scope, future).await,
            None => future.await,
        }
    }
}

/// The value of [`SETTING`] for a connection the current task acquires:
/// `*` in the system scope, the tenants in scope separated by commas, or
/// empty (no tenant).
pub fn setting() -> String {
    SCOPE
        .try_with(|scope| {
            let scope = lock(scope);
            match scope.system {
                true => EVERY_TENANT.to_string(),
                false => scope.tenants.iter().cloned().collect::<Vec<_>>().join(","),
            }
        })
        .unwrap_or_default()
}

fn lock(scope: &Mutex<Scope>) -> std::sync::MutexGuard<'_, Scope> {
    scope
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tower layer on every gRPC server: each call runs in a [`request`]
/// scope of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenancyLayer;

impl<S> tower::Layer<S> for TenancyLayer {
    type Service = Tenancy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tenancy { inner }
    }
}

/// The service made by [`TenancyLayer`].
#[derive(Debug, Clone)]
pub struct Tenancy<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Tenancy<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(self::request(self.inner.call(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_sees_the_tenants_it_entered_and_nothing_outside_a_scope() {
        assert_eq!(setting(), "");
        enter("ignored");
        assert_eq!(setting(), "");
        request(async {
            assert_eq!(setting(), "");
            enter("b");
            enter("a");
            enter("b");
            assert_eq!(setting(), "a,b");
            system(async { assert_eq!(setting(), "*") }).await;
            assert_eq!(setting(), "a,b");
            let handed_over = tokio::spawn(carried(async { setting() }));
            assert_eq!(handed_over.await.unwrap(), "a,b");
            assert_eq!(tokio::spawn(async { setting() }).await.unwrap(), "");
        })
        .await;
        system(async {
            enter("a");
            assert_eq!(setting(), "*");
        })
        .await;
    }
}
