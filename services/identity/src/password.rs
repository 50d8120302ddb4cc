//! Passwords: the policy a new password must meet, and argon2id hashing.
//!
//! The policy follows NIST SP 800-63B: a minimum length (default 12), at
//! least 64 characters allowed, any Unicode allowed after NFKC
//! normalization, no composition rules, and a check against a bundled list
//! of common and breached passwords and against the user's own details.
//!
//! Hashing is argon2id with OWASP's parameters (m=19 MiB, t=2, p=1) stored
//! as PHC strings, so a changed configuration is detected per hash and the
//! hash is upgraded at the next successful login ([`Verification::needs_rehash`]).
//! Every hash and verification runs on tokio's blocking pool behind a
//! semaphore: one costs tens of milliseconds of CPU and 19 MiB of memory, and
//! running it on the async runtime would stall every other RPC on that
//! worker, while running unboundedly many would exhaust memory.
//!
//! Nothing here logs a password or puts one into an error.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use anyhow::{anyhow, bail};
use argon2::password_hash::Error as HashError;
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _,
    PasswordVerifier as _, Version,
};
use serde::{Deserialize, Serialize};
use tenantry_kit::Error;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

use crate::error::Error as Refusal;

/// The ErrorInfo domain of every error from this module.
const DOMAIN: &str = "identity";

/// NIST SP 800-63B's floor for a memorized secret; the configured minimum
/// may not go below it, and the bundled list drops shorter entries.
const LOWEST_MIN_LENGTH: usize = 8;

/// The issue (and NIST) ask that at least 64 characters be allowed.
const LOWEST_MAX_LENGTH: usize = 64;

/// Upper bound of `max_length`: argon2 pre-hashes any length, but a longer
/// limit only invites megabyte "passwords" that cost normalization time.
const HIGHEST_MAX_LENGTH: usize = 4096;

/// Upper bounds of the cost parameters, for the configuration and for
/// stored hashes alike: a tampered or corrupt PHC string must not make one
/// login allocate gigabytes or spin for minutes.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 64;

/// Argon2's default output length; a stored hash of another length is
/// rehashed so every hash looks the same.
const OUTPUT_LEN: usize = Params::DEFAULT_OUTPUT_LEN;

/// Common and breached passwords, NFKC-normalized and lowercased, at least
/// 8 code points each. Source and license: `data/README.md`.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .collect()
});

/// Password policy and hashing cost (the `[identity.password]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordOptions {
    /// Fewest Unicode code points a new password may have, after NFKC
    /// normalization. Default 12; at least 8. NIST SP 800-63B rev 4 asks 15
    /// for accounts whose only factor is the password.
    pub min_length: usize,
    /// Most Unicode code points a new password may have, after NFKC
    /// normalization. Default 256; between 64 and 4096.
    pub max_length: usize,
    /// The lowest strength a new password may have, as zxcvbn scores it
    /// (0: guessed within 10^3 tries … 3: needs more than 10^8 … 4: more
    /// than 10^10), with the user's email and name counted as known.
    /// Default 3; between 0 (off) and 4.
    pub min_strength: u8,
    /// Argon2id memory cost in KiB. Default 19456 (19 MiB, OWASP's
    /// recommendation with 2 iterations); at most 1048576 (1 GiB).
    pub memory_kib: u32,
    /// Argon2id time cost (passes over memory). Default 2; between 1 and 64.
    pub iterations: u32,
    /// Argon2id lanes. Default 1; between 1 and 64, and `memory_kib` must be
    /// at least 8 times it. The crate computes lanes on one thread, so more
    /// lanes add cost, not speed.
    pub parallelism: u32,
    /// Most hashes or verifications running at once; further ones wait.
    /// Each holds `memory_kib` of memory and one blocking thread. Default
    /// the number of CPUs (at least 1).
    pub max_concurrent_hashes: usize,
}

impl Default for PasswordOptions {
    fn default() -> Self {
        PasswordOptions {
            min_length: 12,
            max_length: 256,
            min_strength: 3,
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

impl PasswordOptions {
    /// Checks every option, naming the first bad key and what is allowed.
    pub fn validate(&self) -> anyhow::Result<()> {
        const KEY: &str = "identity.password";
        if self.min_length < LOWEST_MIN_LENGTH {
            bail!(
                "invalid configuration: `{KEY}.min_length` must be at least {LOWEST_MIN_LENGTH}, got {}",
                self.min_length
            );
        }
        if !(LOWEST_MAX_LENGTH..=HIGHEST_MAX_LENGTH).contains(&self.max_length) {
            bail!(
                "invalid configuration: `{KEY}.max_length` must be between {LOWEST_MAX_LENGTH} and {HIGHEST_MAX_LENGTH}, got {}",
                self.max_length
            );
        }
        if self.min_length > self.max_length {
            bail!(
                "invalid configuration: `{KEY}.min_length` must not exceed `{KEY}.max_length` ({}), got {}",
                self.max_length,
                self.min_length
            );
        }
        if self.min_strength > 4 {
            bail!(
                "invalid configuration: `{KEY}.min_strength` must be between 0 and 4, got {}",
                self.min_strength
            );
        }
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            bail!(
                "invalid configuration: `{KEY}.parallelism` must be between 1 and {MAX_PARALLELISM}, got {}",
                self.parallelism
            );
        }
        let min_memory = Params::MIN_M_COST.max(8 * self.parallelism);
        if !(min_memory..=MAX_MEMORY_KIB).contains(&self.memory_kib) {
            bail!(
                "invalid configuration: `{KEY}.memory_kib` must be between {min_memory} (8 per lane) and {MAX_MEMORY_KIB}, got {}",
                self.memory_kib
            );
        }
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            bail!(
                "invalid configuration: `{KEY}.iterations` must be between 1 and {MAX_ITERATIONS}, got {}",
                self.iterations
            );
        }
        if self.max_concurrent_hashes == 0 {
            bail!("invalid configuration: `{KEY}.max_concurrent_hashes` must be at least 1, got 0");
        }
        Ok(())
    }

    fn params(&self) -> anyhow::Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| anyhow!("invalid configuration: `identity.password`: {e}"))
    }
}

/// Checks a new password against the policy and returns it NFKC-normalized
/// ([`normalize_password`]); [`PasswordHasher`] normalizes too, so either
/// the input or the returned value may be hashed.
///
/// `context` holds the user's own details (email, display name, …); the
/// password may not equal any of them, ignoring case. For a value holding
/// an `@`, its local part is checked too.
///
/// Length counts Unicode code points after normalization (NIST SP
/// 800-63B), not bytes. There are no composition rules.
pub fn check_policy(
    password: &str,
    options: &PasswordOptions,
    context: &[&str],
) -> Result<String, Error> {
    // NFKC composition merges at most four code points (a Greek letter and
    // three marks) of at most four bytes each into one character, so an
    // input of more than 16 bytes per allowed character cannot normalize
    // to an allowed length: rejected before paying for its normalization.
    let too_long = || Refusal::PasswordTooLong {
        max_length: options.max_length,
    };
    if password.len() > options.max_length.saturating_mul(16) {
        return Err(too_long().into());
    }

    let normalized = normalize_password(password);
    let length = normalized.chars().count();
    if length < options.min_length {
        return Err(Refusal::PasswordTooShort {
            min_length: options.min_length,
        }
        .into());
    }
    if length > options.max_length {
        return Err(too_long().into());
    }

    // The list is lowercased, so "Password123!" and "PASSWORD123!" are as
    // guessable as "password123!": attackers try case variants first.
    let folded = normalized.to_lowercase();
    if COMMON_PASSWORDS.contains(folded.as_str()) {
        return Err(Refusal::PasswordTooCommon.into());
    }
    if context
        .iter()
        .flat_map(|value| context_forms(value))
        .any(|value| value == folded)
    {
        return Err(Refusal::PasswordIsPersonal.into());
    }
    if options.min_strength > 0 {
        // Strength is estimated on a prefix: the estimator's matching grows
        // faster than linearly, and a long prefix is strong or not already.
        let prefix: String = normalized.chars().take(STRENGTH_PREFIX).collect();
        let estimate = zxcvbn::zxcvbn(&prefix, context);
        let score = estimate.score() as u8;
        if score < options.min_strength {
            let hint = estimate
                .feedback()
                .and_then(|feedback| feedback.warning())
                .map(|warning| format!(" ({warning})"))
                .unwrap_or_default();
            return Err(Refusal::PasswordTooWeak {
                hint,
                strength: score,
                min_strength: options.min_strength,
            }
            .into());
        }
    }
    Ok(normalized)
}

/// How many characters of a password its strength is estimated on.
const STRENGTH_PREFIX: usize = 100;

/// The form in which a password is checked, hashed and verified: NFKC, so
/// the same password typed on another keyboard or input method (full-width
/// letters, composed or decomposed accents) is the same password. Hashing
/// and verification apply it themselves; it is idempotent.
pub fn normalize_password(password: &str) -> String {
    password.nfkc().collect()
}

/// A context value, and its local part when it is an email address, in the
/// same form as a folded password: NFKC, lowercase, trimmed.
fn context_forms(value: &str) -> Vec<String> {
    let value: String = value.trim().nfkc().collect::<String>().to_lowercase();
    let mut forms = Vec::with_capacity(2);
    if let Some((local, _)) = value.rsplit_once('@')
        && !local.is_empty()
    {
        forms.push(local.to_owned());
    }
    if !value.is_empty() {
        forms.push(value);
    }
    forms
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// Whether the password matches the hash.
    pub matches: bool,
    /// Whether the hash was made with another algorithm, version or cost
    /// than configured. Rehash the password (only when it `matches`) and
    /// store the new hash.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with argon2id off the async runtime.
/// Cheap to clone: clones share the parameters and the concurrency limit.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: Params,
    permits: Arc<Semaphore>,
    /// Longest password, in bytes, worth verifying: no policy-conforming
    /// password is longer, so longer ones fail without costing a hash.
    max_password_bytes: usize,
    /// The hash of a random, forgotten password with the configured cost:
    /// [`PasswordHasher::verify_dummy`] verifies against it.
    dummy: String,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("available_permits", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the configured cost. Validates `options`, and computes
    /// the dummy hash once, so construction itself costs one hash.
    pub fn new(options: &PasswordOptions) -> anyhow::Result<Self> {
        options.validate()?;
        let params = options.params()?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        // Nobody knows this password, so nothing verifies against the dummy
        // hash; it exists only to spend the same time as a real verification.
        let forgotten: [u8; 32] = rand::random();
        let dummy = argon2
            .hash_password(&forgotten)
            .map_err(|e| anyhow!("computing the dummy password hash failed: {e}"))?
            .to_string();
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                argon2,
                params,
                permits: Arc::new(Semaphore::new(options.max_concurrent_hashes)),
                max_password_bytes: options.max_length.saturating_mul(16),
                dummy,
            }),
        })
    }

    /// Hashes a password (one [`check_policy`] accepted) into an argon2id
    /// PHC string with the configured cost and a fresh random salt. The
    /// password is NFKC-normalized first, like in [`PasswordHasher::verify`].
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move |inner| {
            let password = normalize_password(&password);
            inner.argon2.hash_password(password.as_bytes())
        })
        .await?
        .map(|hash| hash.to_string())
        .map_err(|e| internal("hashing a password failed", e))
    }

    /// Checks a password, as typed (it is NFKC-normalized here), against a
    /// stored PHC string. A wrong password is `matches: false`, not an
    /// error, and so is one far longer than `max_length` allows, without
    /// costing a hash. An unparsable or unsupported stored hash is an
    /// INTERNAL error: the stored data is broken, not the request.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<Verification, Error> {
        let stored = PasswordHash::new(phc)
            .map_err(|e| internal("the stored password hash is not a PHC string", e))?;
        // Checked up front, so broken data is an error before it costs a
        // hash; argon2 would otherwise answer "no match" for a missing output.
        Algorithm::try_from(stored.algorithm.as_str())
            .map_err(|e| internal("the stored password hash is not argon2", e))?;
        if stored.salt.is_none() || stored.hash.is_none() {
            return Err(Error::internal(anyhow!(
                "the stored password hash lacks its salt or output"
            ))
            .with_domain(DOMAIN));
        }
        let stored_params = Params::try_from(&stored)
            .map_err(|e| internal("the stored password hash is unusable", e))?;
        if stored_params.m_cost() > MAX_MEMORY_KIB
            || stored_params.t_cost() > MAX_ITERATIONS
            || stored_params.p_cost() > MAX_PARALLELISM
        {
            return Err(Error::internal(anyhow!(
                "the stored password hash's cost exceeds the allowed maximum"
            ))
            .with_domain(DOMAIN));
        }
        let needs_rehash = self.differs(&stored, &stored_params);
        if password.len() > self.inner.max_password_bytes {
            return Ok(Verification {
                matches: false,
                needs_rehash,
            });
        }
        let password = password.to_owned();
        let outcome = self
            .run(move |inner| {
                let password = normalize_password(&password);
                inner.argon2.verify_password(password.as_bytes(), &stored)
            })
            .await?;
        match outcome {
            Ok(()) => Ok(Verification {
                matches: true,
                needs_rehash,
            }),
            Err(HashError::PasswordInvalid) => Ok(Verification {
                matches: false,
                needs_rehash,
            }),
            Err(e) => Err(internal("verifying a password failed", e)),
        }
    }

    /// Verifies `password` against a fixed dummy hash of the configured
    /// cost and discards the outcome. Call it when the account does not
    /// exist, so that an unknown email takes as long as a wrong password
    /// and a login's timing does not reveal which accounts exist.
    pub async fn verify_dummy(&self, password: &str) {
        // The same shortcut as `verify`, so it takes the same time too.
        if password.len() > self.inner.max_password_bytes {
            return;
        }
        let password = password.to_owned();
        // The outcome is meaningless: only the time spent matters.
        let _ = self
            .run(move |inner| {
                let password = normalize_password(&password);
                let _ = inner
                    .argon2
                    .verify_password(password.as_bytes(), inner.dummy.as_str());
            })
            .await;
    }

    /// Whether a stored hash was made differently than hashes made now.
    fn differs(&self, stored: &PasswordHash, params: &Params) -> bool {
        let configured = &self.inner.params;
        stored.algorithm != ARGON2ID_IDENT
            || stored.version != Some(u32::from(Version::V0x13))
            || params.m_cost() != configured.m_cost()
            || params.t_cost() != configured.t_cost()
            || params.p_cost() != configured.p_cost()
            || stored.hash.as_ref().map(|output| output.len()) != Some(OUTPUT_LEN)
    }

    /// Runs `job` on the blocking pool once a permit is free. The permit
    /// moves into the job, so it is released when the work ends, even if
    /// the caller (say, a cancelled RPC) stopped waiting for it: the limit
    /// bounds the work actually running, not the callers still waiting.
    async fn run<T, F>(&self, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| internal("the password hashing limiter is closed", e))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job(&inner)
        })
        .await
        .map_err(|e| internal("a password hashing task failed", e))
    }
}

/// An INTERNAL error whose cause is logged, never answered. Causes here
/// come from argon2, the PHC parser and tokio and never hold the password.
fn internal(context: &'static str, cause: impl fmt::Display) -> Error {
    Error::internal(anyhow!("{context}: {cause}")).with_domain(DOMAIN)
}

#[cfg(test)]
mod tests {
    use tenantry_kit::Code;

    use super::*;

    /// Cheap parameters: tests exercise the code, not the cost.
    fn cheap() -> PasswordOptions {
        PasswordOptions {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 2,
            ..PasswordOptions::default()
        }
    }

    fn violation(result: Result<String, Error>) -> &'static str {
        result.expect_err("the policy should reject").reason()
    }

    #[test]
    fn defaults_follow_owasp_and_nist() {
        let options = PasswordOptions::default();
        assert_eq!(options.min_length, 12);
        assert_eq!(options.max_length, 256);
        assert_eq!(options.memory_kib, 19456);
        assert_eq!(options.iterations, 2);
        assert_eq!(options.parallelism, 1);
        assert!(options.max_concurrent_hashes >= 1);
        options.validate().expect("defaults are valid");
    }

    #[test]
    fn validation_names_the_bad_key() {
        let cases = [
            (
                PasswordOptions {
                    min_length: 7,
                    ..cheap()
                },
                "min_length",
            ),
            (
                PasswordOptions {
                    max_length: 63,
                    ..cheap()
                },
                "max_length",
            ),
            (
                PasswordOptions {
                    min_length: 65,
                    max_length: 64,
                    ..cheap()
                },
                "min_length",
            ),
            (
                PasswordOptions {
                    memory_kib: 4,
                    ..cheap()
                },
                "memory_kib",
            ),
            (
                PasswordOptions {
                    parallelism: 0,
                    ..cheap()
                },
                "parallelism",
            ),
            (
                PasswordOptions {
                    iterations: 0,
                    ..cheap()
                },
                "iterations",
            ),
            (
                PasswordOptions {
                    max_concurrent_hashes: 0,
                    ..cheap()
                },
                "max_concurrent_hashes",
            ),
        ];
        for (options, key) in cases {
            let error = options.validate().expect_err(key).to_string();
            assert!(
                error.contains(&format!("`identity.password.{key}`")),
                "{error}"
            );
        }
    }

    #[test]
    fn options_reject_unknown_keys() {
        let parsed: Result<PasswordOptions, _> = serde_json::from_str(r#"{"min_lenght": 12}"#);
        assert!(parsed.is_err());
        let parsed: PasswordOptions =
            serde_json::from_str(r#"{"min_length": 15}"#).expect("partial options parse");
        assert_eq!(parsed.min_length, 15);
        assert_eq!(parsed.memory_kib, 19456);
    }

    #[test]
    fn length_boundaries() {
        let options = PasswordOptions::default();
        let short = check_policy("kq7!vZ2#mR9", &options, &[]).expect_err("11 is too short");
        assert_eq!(short.reason(), "PASSWORD_TOO_SHORT");
        assert_eq!(short.code(), Code::InvalidArgument);
        let status = short.into_status();
        assert!(!status.message().contains("kq7"));

        assert!(check_policy("kq7!vZ2#mR9x", &options, &[]).is_ok());
        let long = "kq7!vZ2#".repeat(8);
        assert_eq!(long.chars().count(), 64);
        assert!(check_policy(&long, &options, &[]).is_ok());
        let longest = "kq7!vZ2#".repeat(32);
        assert!(check_policy(&longest, &options, &[]).is_ok());
        let too_long = format!("{longest}x");
        assert_eq!(
            violation(check_policy(&too_long, &options, &[])),
            "PASSWORD_TOO_LONG"
        );
        // Far beyond the limit is rejected before normalization.
        let huge = "x".repeat(1 << 20);
        assert_eq!(
            violation(check_policy(&huge, &options, &[])),
            "PASSWORD_TOO_LONG"
        );
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let options = PasswordOptions::default();
        // 12 three-byte characters: 36 bytes, 12 code points.
        let kanji = "合言葉は秘密の山と川と海";
        assert_eq!(kanji.chars().count(), 12);
        assert_eq!(check_policy(kanji, &options, &[]).expect("allowed"), kanji);
        assert_eq!(
            violation(check_policy("合言葉は秘密の山と川と", &options, &[])),
            "PASSWORD_TOO_SHORT"
        );
    }

    #[test]
    fn unicode_is_normalized() {
        let options = PasswordOptions {
            min_length: 8,
            ..PasswordOptions::default()
        };
        // Full-width letters are NFKC-equal to ASCII ones.
        assert_eq!(
            violation(check_policy("ｐａｓｓｗｏｒｄ", &options, &[])),
            "PASSWORD_TOO_COMMON"
        );
        // A decomposed "é" is returned composed, so either form hashes alike.
        let decomposed = "cafe\u{301} au lait, s'il vous pla\u{131}t";
        let normalized = check_policy(decomposed, &options, &[]).expect("allowed");
        assert!(normalized.starts_with("caf\u{e9} "));
        assert_eq!(normalized.chars().count(), decomposed.chars().count() - 1);
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        let options = PasswordOptions {
            min_length: 8,
            ..PasswordOptions::default()
        };
        for password in ["password", "PassWord123", "qwertyuiop", "iloveyou"] {
            assert_eq!(
                violation(check_policy(password, &options, &[])),
                "PASSWORD_TOO_COMMON",
                "{password}"
            );
        }
        // With the default minimum, a 12-character entry of the list.
        assert_eq!(
            violation(check_policy(
                "Qwertyuiop123",
                &PasswordOptions::default(),
                &[]
            )),
            "PASSWORD_TOO_COMMON"
        );
        assert!(COMMON_PASSWORDS.len() > 10_000);
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= LOWEST_MIN_LENGTH)
        );
    }

    #[test]
    fn easily_guessed_passwords_are_rejected() {
        let options = PasswordOptions::default();
        for password in [
            "aaaaaaaaaaaa",
            "123456789012",
            "iloveyou1234",
            "letmein12345",
            "P@ssw0rd1234",
            "qwertyqwerty",
        ] {
            let reason = violation(check_policy(password, &options, &[]));
            assert!(
                reason == "PASSWORD_TOO_WEAK" || reason == "PASSWORD_TOO_COMMON",
                "{password}: {reason}"
            );
        }
        // Built from the user's own details: weak, even if not equal.
        assert_eq!(
            violation(check_policy(
                "hamilton2024!",
                &options,
                &["margaret.hamilton@example.com", "Margaret Hamilton"]
            )),
            "PASSWORD_TOO_WEAK"
        );
        for strong in [
            "correct horse battery staple",
            "brand new passphrase",
            "yet another passphrase!",
            "another long passphrase entirely",
            "v8#Lq2!zR0w@Tm",
        ] {
            check_policy(strong, &options, &[]).unwrap_or_else(|e| panic!("{strong}: {e:?}"));
        }
        // Off when configured so.
        let off = PasswordOptions {
            min_strength: 0,
            ..PasswordOptions::default()
        };
        assert!(check_policy("aaaaaaaaaaaa", &off, &[]).is_ok());
    }

    #[test]
    fn user_details_are_rejected() {
        let options = PasswordOptions::default();
        let context = ["Margaret.Hamilton@example.com", "Margaret Hamilton"];
        for password in [
            "margaret.hamilton@example.com",
            "MARGARET.HAMILTON",
            "margaret hamilton",
        ] {
            let error = check_policy(password, &options, &context).expect_err(password);
            assert_eq!(error.reason(), "PASSWORD_TOO_COMMON", "{password}");
        }
        assert!(check_policy("margaret hamilton apollo 11", &options, &context).is_ok());
        // Empty context values never match.
        assert!(check_policy("an unremarkable phrase", &options, &["", "  "]).is_ok());
    }

    #[tokio::test]
    async fn hash_and_verify_roundtrip() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let phc = hasher
            .hash("correct horse battery staple")
            .await
            .expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct"));

        let right = hasher
            .verify("correct horse battery staple", &phc)
            .await
            .expect("verify");
        assert_eq!(
            right,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify("correct horse battery stapler", &phc)
            .await
            .expect("verify");
        assert_eq!(
            wrong,
            Verification {
                matches: false,
                needs_rehash: false
            }
        );

        // Verification normalizes like the policy does: full-width matches.
        let phc = hasher
            .hash("password verified at work")
            .await
            .expect("hash");
        let typed = hasher
            .verify("ｐａｓｓｗｏｒｄ verified at work", &phc)
            .await
            .expect("verify");
        assert!(typed.matches);
        // Far beyond any allowed length fails without a hash.
        let huge = hasher
            .verify(&"x".repeat(1 << 20), &phc)
            .await
            .expect("verify");
        assert!(!huge.matches);

        // Salts are random: the same password hashes differently.
        let first = hasher
            .hash("correct horse battery staple")
            .await
            .expect("hash");
        let again = hasher
            .hash("correct horse battery staple")
            .await
            .expect("hash");
        assert_ne!(first, again);
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(&cheap()).expect("hasher");
        let phc = old
            .hash("correct horse battery staple")
            .await
            .expect("hash");
        let new = PasswordHasher::new(&PasswordOptions {
            iterations: 2,
            ..cheap()
        })
        .expect("hasher");
        let outcome = new
            .verify("correct horse battery staple", &phc)
            .await
            .expect("verify");
        assert_eq!(
            outcome,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );

        // Another argon2 variant is verified, and upgraded to argon2id.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            cheap().params().expect("params"),
        )
        .hash_password(b"correct horse battery staple")
        .expect("hash")
        .to_string();
        let outcome = old
            .verify("correct horse battery staple", &argon2i)
            .await
            .expect("verify");
        assert_eq!(
            outcome,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn malformed_hashes_are_errors() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        for phc in [
            "",
            "not a phc string",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1024,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let error = hasher
                .verify("correct horse battery staple", phc)
                .await
                .expect_err(phc);
            assert_eq!(error.code(), Code::Internal, "{phc}");
            assert!(!format!("{error:?}").contains("correct horse"));
        }
    }

    #[tokio::test]
    async fn dummy_verification_runs() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        assert!(
            hasher
                .inner
                .dummy
                .starts_with("$argon2id$v=19$m=1024,t=1,p=1$")
        );
        hasher.verify_dummy("correct horse battery staple").await;
        // The permit is back once the dummy verification ended.
        assert_eq!(hasher.inner.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let hasher = PasswordHasher::new(&PasswordOptions {
            max_concurrent_hashes: 1,
            ..cheap()
        })
        .expect("hasher");
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("password number {i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("hash");
        }
        assert_eq!(hasher.inner.permits.available_permits(), 1);
    }
}
