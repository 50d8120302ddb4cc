//! The REST routes, read from the contracts: every method of a `tenantry.*`
//! service with a `google.api.http` rule (and its additional bindings)
//! becomes a route. Adding an annotated RPC needs no gateway code.

use std::collections::HashSet;

use http::Method;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, MethodDescriptor, Value};

use crate::template::{PathError, Template};

/// The endpoint class of a method, which picks its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Reads: GET routes and read-only RPCs.
    Read,
    /// Changes.
    Write,
    /// Sign-in, sign-up, token refresh and recovery: also limited per client
    /// address, since the caller is often anonymous.
    Auth,
    /// Streams and whole-log work (export, chain verification).
    Expensive,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 4] = [Class::Read, Class::Write, Class::Auth, Class::Expensive];

    /// The name plans use in `rate_limits_per_minute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Auth => "auth",
            Class::Expensive => "expensive",
        }
    }
}

/// What part of the request the HTTP body fills.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body; every field not in the path comes from the query.
    None,
    /// `body: "*"`: the whole request message, except path fields.
    Whole,
    /// `body: "field"`: one field; the rest come from the path and query.
    Field(FieldDescriptor),
}

/// One REST route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub http_method: Method,
    /// The path template.
    pub template: Template,
    /// The RPC it calls.
    pub method: MethodDescriptor,
    /// The gRPC path, `/package.Service/Method`.
    pub grpc_path: String,
    /// What the body fills.
    pub body: BodyRule,
    /// The response field sent as the body instead of the whole response.
    pub response_body: Option<FieldDescriptor>,
    /// The endpoint class.
    pub class: Class,
    /// Whether the method can be called without credentials.
    pub public: bool,
}

/// Every method a gateway knows, for classifying gRPC calls too.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// The RPC, for protocols that name it by path (gRPC, Connect).
    pub descriptor: MethodDescriptor,
    /// The endpoint class.
    pub class: Class,
    /// Whether it can be called without credentials.
    pub public: bool,
    /// Whether the contract marks it free of side effects
    /// (`idempotency_level = NO_SIDE_EFFECTS`): Connect may call it with GET.
    pub no_side_effects: bool,
}

/// What looking a request up found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route, with its path bindings.
    Found(&'a Route, Vec<(&'a [String], String)>),
    /// A template matched but a path value is unsafe.
    BadPath(PathError),
    /// The path exists for other methods only.
    MethodNotAllowed(Vec<Method>),
    /// No route.
    NotFound,
}

/// Whether a method's options say `idempotency_level = NO_SIDE_EFFECTS`.
fn has_no_side_effects(method: &MethodDescriptor) -> bool {
    use prost_types::method_options::IdempotencyLevel;
    method
        .options()
        .get_field_by_name("idempotency_level")
        .and_then(|level| level.as_enum_number())
        == Some(IdempotencyLevel::NoSideEffects as i32)
}

/// The route table.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
    methods: std::collections::HashMap<String, MethodInfo>,
}

impl Routes {
    /// Reads the rules of every `tenantry.*` service in `pool`. `public`
    /// holds the gRPC paths callable without credentials;
    /// `expensive` the ones to class as expensive besides streams.
    pub fn from_pool(
        pool: &DescriptorPool,
        public: &HashSet<String>,
        expensive: &HashSet<String>,
    ) -> anyhow::Result<Routes> {
        let http = pool
            .get_extension_by_name("google.api.http")
            .ok_or_else(|| anyhow::anyhow!("the descriptor set lacks google.api.http"))?;
        let mut routes = Vec::new();
        let mut methods = std::collections::HashMap::new();
        for service in pool.services() {
            if !service.full_name().starts_with("tenantry.") {
                continue;
            }
            for method in service.methods() {
                let grpc_path = format!("/{}/{}", service.full_name(), method.name());
                let options = method.options();
                let mut rules = Vec::new();
                if options.has_extension(&http)
                    && let Value::Message(rule) = options.get_extension(&http).as_ref()
                {
                    rules.push(rule.clone());
                    if let Some(Value::List(more)) =
                        rule.get_field_by_name("additional_bindings").as_deref()
                    {
                        rules.extend(more.iter().filter_map(|v| v.as_message().cloned()));
                    }
                }
                let is_public = public.contains(&grpc_path);
                let first_get = rules
                    .first()
                    .and_then(pattern)
                    .map(|(m, _)| m == Method::GET);
                let class = classify(&method, &grpc_path, is_public, first_get, expensive);
                methods.insert(
                    grpc_path.clone(),
                    MethodInfo {
                        descriptor: method.clone(),
                        class,
                        public: is_public,
                        no_side_effects: has_no_side_effects(&method),
                    },
                );
                for rule in rules {
                    let Some((http_method, path)) = pattern(&rule) else {
                        continue;
                    };
                    let template =
                        Template::parse(&path).map_err(|e| anyhow::anyhow!("{grpc_path}: {e}"))?;
                    let input = method.input();
                    for var in template.variables() {
                        field_at(&input, &var.field_path).ok_or_else(|| {
                            anyhow::anyhow!(
                                "{grpc_path}: `{}` is not a field of {}",
                                var.field_path.join("."),
                                input.full_name()
                            )
                        })?;
                    }
                    let body = match string_field(&rule, "body").as_str() {
                        "" => BodyRule::None,
                        "*" => BodyRule::Whole,
                        name => {
                            BodyRule::Field(input.get_field_by_name(name).ok_or_else(|| {
                                anyhow::anyhow!("{grpc_path}: body field `{name}` is unknown")
                            })?)
                        }
                    };
                    let response_body = match string_field(&rule, "response_body").as_str() {
                        "" => None,
                        name => Some(method.output().get_field_by_name(name).ok_or_else(|| {
                            anyhow::anyhow!("{grpc_path}: response_body `{name}` is unknown")
                        })?),
                    };
                    routes.push(Route {
                        http_method,
                        template,
                        method: method.clone(),
                        grpc_path: grpc_path.clone(),
                        body,
                        response_body,
                        class,
                        public: is_public,
                    });
                }
            }
        }
        // Most specific first, so `/v1/users/me` beats `/v1/{name=users/*}`.
        routes.sort_by_key(|route| std::cmp::Reverse(route.template.specificity()));
        Ok(Routes { routes, methods })
    }

    /// Every route.
    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The class and visibility of a gRPC method by path; `None` for
    /// methods outside the contracts.
    pub fn method(&self, grpc_path: &str) -> Option<&MethodInfo> {
        self.methods.get(grpc_path)
    }

    /// Finds the route for a request.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            if route.http_method != *method {
                if !allowed.contains(&route.http_method)
                    && matches!(route.template.matches(path), Ok(Some(_)) | Err(_))
                {
                    allowed.push(route.http_method.clone());
                }
                continue;
            }
            match route.template.matches(path) {
                Ok(Some(bindings)) => return Lookup::Found(route, bindings),
                Ok(None) => {}
                Err(error) => return Lookup::BadPath(error),
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::MethodNotAllowed(allowed)
        }
    }
}

/// The HTTP method and path of a rule (`get`, `post`, …, or `custom`).
fn pattern(rule: &DynamicMessage) -> Option<(Method, String)> {
    for (name, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        let path = string_field(rule, name);
        if !path.is_empty() {
            return Some((method, path));
        }
    }
    if let Some(Value::Message(custom)) = rule.get_field_by_name("custom").as_deref() {
        let kind = string_field(custom, "kind");
        let path = string_field(custom, "path");
        if let Ok(method) = Method::from_bytes(kind.as_bytes())
            && !path.is_empty()
        {
            return Some((method, path));
        }
    }
    None
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The field at a dotted path of `message`.
pub fn field_at(
    message: &prost_reflect::MessageDescriptor,
    path: &[String],
) -> Option<FieldDescriptor> {
    let (last, parents) = path.split_last()?;
    let mut current = message.clone();
    for name in parents {
        current = current
            .get_field_by_name(name)?
            .kind()
            .as_message()?
            .clone();
    }
    current.get_field_by_name(last)
}

/// Streams and listed methods are expensive; identity's public non-GET
/// methods are `auth`; GETs and read-named RPCs (`CheckPermission` is a
/// POST) are `read`; the rest write.
fn classify(
    method: &MethodDescriptor,
    grpc_path: &str,
    public: bool,
    http_get: Option<bool>,
    expensive: &HashSet<String>,
) -> Class {
    if method.is_server_streaming() || method.is_client_streaming() || expensive.contains(grpc_path)
    {
        return Class::Expensive;
    }
    // Anonymous calls that present a secret (a password, a mailed token,
    // an invitation token) are limited per client address: guessing costs.
    let presents_secret = (grpc_path.starts_with("/tenantry.identity.") && http_get != Some(true))
        || grpc_path == "/tenantry.rbac.v1.InvitationService/LookupInvitation";
    if public && presents_secret {
        return Class::Auth;
    }
    let read_named = [
        "Get", "List", "Check", "Lookup", "Batch", "Expand", "Preview",
    ]
    .iter()
    .any(|prefix| method.name().starts_with(prefix));
    if http_get == Some(true) || read_named {
        Class::Read
    } else {
        Class::Write
    }
}

/// The descriptor pool of the contracts.
pub fn pool() -> anyhow::Result<DescriptorPool> {
    let pool = DescriptorPool::decode(tenantry_proto::FILE_DESCRIPTOR_SET)?;
    // Errors are rendered with their details: those types must be here.
    for name in [
        "google.rpc.Status",
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
    ] {
        if pool.get_message_by_name(name).is_none() {
            anyhow::bail!("the descriptor set lacks {name}");
        }
    }
    Ok(pool)
}
