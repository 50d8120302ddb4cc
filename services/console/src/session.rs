//! The console's session: the user's tokens and a CSRF secret, sealed with
//! XChaCha20-Poly1305 under the console key into one cookie.
//!
//! Nothing is kept on the server, so every gateway replica that shares the
//! key serves every user; a cookie altered or sealed under another key
//! opens to nothing (a fresh, signed-out state). Revoking the session at
//! identity (sign out, sign out everywhere) makes the sealed refresh token
//! worthless, and the short-lived access token expires on its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// What the cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The secret every form of this session carries (hex).
    pub csrf: String,
    /// The signed-in user's tokens; none before sign-in.
    pub tokens: Option<Tokens>,
    /// The second-factor challenge of a sign-in in progress.
    pub mfa_token: Option<String>,
}

/// A signed-in user's tokens, as identity issued them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    /// When the access token expires (Unix seconds).
    pub access_expires: i64,
    /// The organization the tokens act in (`organizations/…`).
    pub organization: String,
}

impl State {
    /// A signed-out state with a new CSRF secret.
    pub fn fresh() -> State {
        State {
            csrf: hex::encode(rand::random::<[u8; 32]>()),
            tokens: None,
            mfa_token: None,
        }
    }

    /// Whether `token` (from a form) is this session's CSRF secret.
    pub fn csrf_matches(&self, token: &str) -> bool {
        !token.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Seals and opens session cookies, and names them.
pub struct Sessions {
    cipher: XChaCha20Poly1305,
    secure: Option<bool>,
}

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "tenantry-console";
/// The cookie's name over TLS: browsers take it only with `Secure`.
pub const SECURE_COOKIE: &str = "__Secure-tenantry-console";

impl Sessions {
    /// `secure`: whether the console is reached over TLS; `None` when the
    /// request's `X-Forwarded-Proto` says.
    pub fn new(key: &[u8; 32], secure: Option<bool>) -> Sessions {
        Sessions {
            cipher: XChaCha20Poly1305::new(key.into()),
            secure,
        }
    }

    /// The session the request's cookie holds, if it opens.
    pub fn read(&self, headers: &HeaderMap) -> Option<State> {
        let name = self.name(headers);
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(key, _)| *key == name)
            .find_map(|(_, value)| self.open(value))
    }

    /// The `Set-Cookie` value that stores `state`.
    pub fn write(&self, headers: &HeaderMap, state: &State) -> String {
        let secure = self.is_secure(headers);
        format!(
            "{}={}; Path=/console; HttpOnly; SameSite=Lax{}",
            self.name(headers),
            self.seal(state),
            if secure { "; Secure" } else { "" }
        )
    }

    fn name(&self, headers: &HeaderMap) -> &'static str {
        match self.is_secure(headers) {
            true => SECURE_COOKIE,
            false => COOKIE,
        }
    }

    fn is_secure(&self, headers: &HeaderMap) -> bool {
        self.secure.unwrap_or_else(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        })
    }

    fn seal(&self, state: &State) -> String {
        let nonce: [u8; 24] = rand::random();
        let plain = serde_json::to_vec(state).expect("a session serializes");
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
            .expect("sealing cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn open(&self, value: &str) -> Option<State> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Whether a POST comes from a page of this host: its `Origin` (or, when a
/// browser sends none, its `Referer`) names the `Host` it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let source = headers
        .get(http::header::ORIGIN)
        .or_else(|| headers.get(http::header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(source) = source else {
        return false;
    };
    let Some((scheme, rest)) = source.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
}

/// Where to go after signing in: `next` when it is a path of the console,
/// the overview otherwise (never another site: no scheme, no `//host`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/console" || path.starts_with("/console/"))
                && !path.contains("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/console/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_state_opens_only_under_its_key() {
        let sessions = Sessions::new(&[7; 32], Some(false));
        let state = State::fresh();
        let cookie = sessions.write(&HeaderMap::new(), &state);
        let value = cookie.split_once('=').unwrap().1.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("{COOKIE}={value}").parse().unwrap(),
        );
        assert_eq!(sessions.read(&headers).unwrap().csrf, state.csrf);
        let other = Sessions::new(&[8; 32], Some(false));
        assert!(other.read(&headers).is_none());
    }

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(safe_next(Some("/console/projects")), "/console/projects");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/console//evil",
            "/other",
            "/console/\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
    }

    #[test]
    fn origin_must_name_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert(http::header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:8080".parse().unwrap(),
        );
        assert!(same_origin(&headers));
    }
}
