//! The pages' HTML (maud escapes every value it prints).

use maud::{DOCTYPE, Markup, html};

use tenantry_kit::permission::Permission;

use crate::calls::Failure;

/// The stylesheet, served under a name that changes with its content so
/// browsers may keep it forever.
pub const STYLE: &str = include_str!("console.css");

/// The stylesheet's path, with its content's hash.
pub fn style_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(STYLE.as_bytes());
        format!("/console/static/console-{}.css", &hex::encode(hash)[..16])
    })
}

/// The organization switcher and the signed-in user's actions.
pub struct Nav {
    pub email: String,
    /// The user's resource name (`users/…`), for the pages about them.
    #[allow(dead_code)]
    pub user: String,
    pub active: String,
    /// (organization name, display name) of every membership.
    pub organizations: Vec<(String, String)>,
    pub csrf: String,
    /// What the user may do in the active organization.
    pub allowed: Vec<Permission>,
}

impl Nav {
    fn may(&self, permission: Permission) -> bool {
        self.allowed.contains(&permission)
    }
}

/// The sections of the navigation bar: path, label, and the permission on
/// the organization that shows it (none: always shown).
const SECTIONS: &[(&str, &str, Option<Permission>)] = &[
    ("/console/", "Overview", None),
    (
        "/console/organization",
        "Organization",
        Some(Permission::ORGANIZATION_READ),
    ),
    (
        "/console/projects",
        "Projects",
        Some(Permission::PROJECT_READ),
    ),
    (
        "/console/members",
        "Members",
        Some(Permission::ORGANIZATION_MEMBERS_READ),
    ),
    (
        "/console/roles",
        "Roles",
        Some(Permission::ORGANIZATION_MEMBERS_READ),
    ),
    (
        "/console/invitations",
        "Invitations",
        Some(Permission::ORGANIZATION_MEMBERS_INVITE),
    ),
    (
        "/console/api-keys",
        "API keys",
        Some(Permission::ORGANIZATION_API_KEYS_CREATE),
    ),
    (
        "/console/billing",
        "Billing",
        Some(Permission::BILLING_READ),
    ),
    ("/console/audit", "Audit log", Some(Permission::AUDIT_READ)),
    ("/console/account", "Account", None),
];

/// A whole page.
pub fn page(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tenantry console" }
                link rel="stylesheet" href=(style_path());
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.bar {
                    a.brand href="/console/" { "Tenantry" }
                    @if let Some(nav) = nav { (nav_bar(nav)) }
                }
                main #content tabindex="-1" { h1 { (title) } (body) }
            }
        }
    }
}

fn nav_bar(nav: &Nav) -> Markup {
    html! {
        nav aria-label="Main" {
            @for (path, label, needs) in SECTIONS {
                @if needs.is_none_or(|p| nav.may(p)) { a href=(path) { (label) } }
            }
        }
        form.switch method="post" action="/console/switch" {
            input type="hidden" name="csrf" value=(nav.csrf);
            label for="organization" { "Organization" }
            select id="organization" name="organization" {
                @for (name, display) in &nav.organizations {
                    option value=(name) selected[*name == nav.active] { (display) }
                }
            }
            button type="submit" { "Switch" }
        }
        form.signout method="post" action="/console/sign-out" {
            input type="hidden" name="csrf" value=(nav.csrf);
            span.who { (nav.email) }
            button type="submit" { "Sign out" }
        }
    }
}

/// A failure next to the form it came from.
pub fn failure(failure: Option<&Failure>) -> Markup {
    html! {
        @if let Some(failure) = failure {
            div.error role="alert" {
                p { (failure.message) }
                @if !failure.fields.is_empty() {
                    ul { @for (field, why) in &failure.fields { li { code { (field) } ": " (why) } } }
                }
                @if let Some(id) = &failure.request_id { p.small { "Request id: " code { (id) } } }
            }
        }
    }
}

/// A hidden CSRF field.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A hidden request id: a form submitted twice creates one thing (the
/// services answer a repeated request id with the first result).
pub fn request_id() -> Markup {
    html! { input type="hidden" name="request_id" value=(uuid::Uuid::now_v7().to_string()); }
}

/// A "Next page" link to `path` with `page_token`, when there is a next page.
pub fn next_page(path: &str, page_token: &str) -> Markup {
    html! {
        @if !page_token.is_empty() {
            p { a href={ (path) "?" (serde_urlencoded::to_string([("page_token", page_token)]).unwrap_or_default()) } { "Next page" } }
        }
    }
}

/// A time as the pages show it, in UTC; "—" when unset.
pub fn when(time: Option<&prost_types::Timestamp>) -> Markup {
    let at = time.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
    html! {
        @match at {
            Some(at) => time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) },
            None => "—",
        }
    }
}

/// A "Next page" link to `path` keeping the `query` pairs of the list.
pub fn next_with(path: &str, query: &[(&str, &str)], page_token: &str) -> Markup {
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    pairs.push(("page_token", page_token));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    html! {
        @if !page_token.is_empty() { p { a href={ (path) "?" (query) } { "Next page" } } }
    }
}
