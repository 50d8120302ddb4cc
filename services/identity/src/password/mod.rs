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

use anyhow::{anyhow, bail};
use argon2::Params;
use serde::{Deserialize, Serialize};

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

mod hash;
mod policy;

pub use hash::{PasswordHasher, Verification, verifiable};
pub use policy::{check_policy, normalize_password};

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

/// Cheap parameters: tests exercise the code, not the cost.
#[cfg(test)]
fn cheap() -> PasswordOptions {
    PasswordOptions {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
        max_concurrent_hashes: 2,
        ..PasswordOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
