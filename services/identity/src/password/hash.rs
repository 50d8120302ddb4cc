//! argon2id hashing and verification on tokio's blocking pool, behind a
//! semaphore, with a dummy verification for unknown accounts.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::Error as HashError;
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    Version,
};
use tenantry_kit::Error;
use tokio::sync::Semaphore;

use super::*;

/// The ErrorInfo domain of every error from this module.
const DOMAIN: &str = "identity";

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
        // An account without a password (imported, to set one by a reset)
        // matches none, in the time a wrong password takes.
        if phc.is_empty() {
            self.verify_dummy(password).await;
            return Ok(Verification {
                matches: false,
                needs_rehash: false,
            });
        }
        let (stored, stored_params) = parse_stored(phc)?;
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

/// A stored PHC string and its argon2 parameters, checked for what
/// verifying needs: argon2, a salt and an output, costs within the allowed
/// maximum. INTERNAL otherwise: stored data is broken, not a request.
fn parse_stored(phc: &str) -> Result<(PasswordHash, Params), Error> {
    let stored = PasswordHash::new(phc)
        .map_err(|e| internal("the stored password hash is not a PHC string", e))?;
    // Checked up front, so broken data is an error before it costs a hash;
    // argon2 would otherwise answer "no match" for a missing output.
    Algorithm::try_from(stored.algorithm.as_str())
        .map_err(|e| internal("the stored password hash is not argon2", e))?;
    if stored.salt.is_none() || stored.hash.is_none() {
        return Err(
            Error::internal(anyhow!("the stored password hash lacks its salt or output"))
                .with_domain(DOMAIN),
        );
    }
    let params = Params::try_from(&stored)
        .map_err(|e| internal("the stored password hash is unusable", e))?;
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_ITERATIONS
        || params.p_cost() > MAX_PARALLELISM
    {
        return Err(Error::internal(anyhow!(
            "the stored password hash's cost exceeds the allowed maximum"
        ))
        .with_domain(DOMAIN));
    }
    Ok((stored, params))
}

/// Whether `phc` is a password hash this deployment can verify, for a
/// hash brought in by an import: argon2 in PHC form, with a salt and an
/// output, at costs within the allowed maximum.
pub fn verifiable(phc: &str) -> bool {
    parse_stored(phc).is_ok()
}

#[cfg(test)]
mod tests {
    use tenantry_kit::Code;

    use super::*;

    /// `password` hashed, which must not fail.
    async fn hashed(hasher: &PasswordHasher, password: &str) -> String {
        hasher.hash(password).await.expect("hash")
    }

    /// `password` verified against `phc`, which must not fail.
    async fn verified(hasher: &PasswordHasher, password: &str, phc: &str) -> Verification {
        hasher.verify(password, phc).await.expect("verify")
    }

    /// The verification the tests expect.
    fn outcome(matches: bool, needs_rehash: bool) -> Verification {
        Verification {
            matches,
            needs_rehash,
        }
    }

    #[tokio::test]
    async fn hash_and_verify_roundtrip() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let phc = hashed(&hasher, "correct horse battery staple").await;
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct"));

        let right = verified(&hasher, "correct horse battery staple", &phc).await;
        assert_eq!(right, outcome(true, false));
        let wrong = verified(&hasher, "correct horse battery stapler", &phc).await;
        assert_eq!(wrong, outcome(false, false));

        // Verification normalizes like the policy does: full-width matches.
        let phc = hashed(&hasher, "password verified at work").await;
        let typed = verified(&hasher, "ｐａｓｓｗｏｒｄ verified at work", &phc).await;
        assert!(typed.matches);
        // Far beyond any allowed length fails without a hash.
        let huge = verified(&hasher, &"x".repeat(1 << 20), &phc).await;
        assert!(!huge.matches);

        // Salts are random: the same password hashes differently.
        let first = hashed(&hasher, "correct horse battery staple").await;
        let again = hashed(&hasher, "correct horse battery staple").await;
        assert_ne!(first, again);
    }

    #[tokio::test]
    async fn changed_parameters_ask_for_a_rehash() {
        let old = PasswordHasher::new(&cheap()).expect("hasher");
        let phc = hashed(&old, "correct horse battery staple").await;
        let new = PasswordHasher::new(&PasswordOptions {
            iterations: 2,
            ..cheap()
        })
        .expect("hasher");
        let rehash = verified(&new, "correct horse battery staple", &phc).await;
        assert_eq!(rehash, outcome(true, true));

        // Another argon2 variant is verified, and upgraded to argon2id.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            cheap().params().expect("params"),
        )
        .hash_password(b"correct horse battery staple")
        .expect("hash")
        .to_string();
        let rehash = verified(&old, "correct horse battery staple", &argon2i).await;
        assert_eq!(rehash, outcome(true, true));
    }

    #[tokio::test]
    async fn malformed_hashes_are_errors() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        for phc in [
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
    async fn an_account_without_a_password_matches_none_and_imports_take_only_usable_hashes() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let none = hasher
            .verify("correct horse battery staple", "")
            .await
            .expect("no password is no match, not an error");
        assert_eq!(none, outcome(false, false));
        let good = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(verifiable(&good));
        for phc in [
            "",
            "$2b$12$notargon2",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verifiable(phc), "{phc}");
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
