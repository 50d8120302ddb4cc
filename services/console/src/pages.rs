//! The pages' HTML (maud escapes every value it prints).

use maud::{DOCTYPE, Markup, html};

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
    pub active: String,
    /// (organization name, display name) of every membership.
    pub organizations: Vec<(String, String)>,
    pub csrf: String,
}

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
                header.bar {
                    a.brand href="/console/" { "Tenantry" }
                    @if let Some(nav) = nav { (nav_bar(nav)) }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn nav_bar(nav: &Nav) -> Markup {
    html! {
        nav aria-label="Main" {
            a href="/console/" { "Overview" }
            a href="/console/projects" { "Projects" }
            a href="/console/members" { "Members" }
            a href="/console/invitations" { "Invitations" }
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
