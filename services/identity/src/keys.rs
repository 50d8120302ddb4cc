//! The signing keys of access tokens: kept in the database so every replica
//! signs with the same key, rotated on a schedule without downtime.
//!
//! Rotation: a new key is created when the newest one is older than the
//! rotation period. Verifiers learn it from the JWKS the moment they meet its
//! `kid` (they refresh on an unknown key id), and older keys stay published
//! until every token they signed has expired.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tenantry_kit::auth::{JwkKey, SigningKey};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};

use crate::store::Store;

/// The current signing key and the published set.
#[derive(Debug)]
struct Keys {
    signing: SigningKey,
    published: Vec<JwkKey>,
}

/// Loads, rotates and hands out signing keys.
#[derive(Debug, Clone)]
pub struct KeyRing {
    store: Store,
    keys: Arc<RwLock<Arc<Keys>>>,
    rotation: Duration,
    token_ttl: Duration,
}

impl KeyRing {
    /// Loads the keys, creating the first one (or a rotated one) if needed.
    pub async fn load(store: Store, rotation: Duration, token_ttl: Duration) -> Result<KeyRing> {
        let keys = Self::read(&store, rotation, token_ttl).await?;
        Ok(KeyRing {
            store,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            rotation,
            token_ttl,
        })
    }

    async fn read(store: &Store, rotation: Duration, token_ttl: Duration) -> Result<Keys> {
        let now = now_micros();
        let mut rows = store.signing_keys().await?;
        let newest_is_fresh = rows
            .first()
            .is_some_and(|(_, _, created, _)| now - created < rotation.as_micros() as i64);
        if !newest_is_fresh {
            let key = SigningKey::generate();
            store
                .insert_signing_key(key.kid(), &hex::encode(key.seed()), now)
                .await?;
            tracing::info!(kid = key.kid(), "created a new token signing key");
            rows = store.signing_keys().await?;
        }
        // Keep publishing a key while tokens it signed may still be valid:
        // until a token lifetime (twice, for clock skew) after the next
        // key replaced it.
        let grace = (token_ttl * 2).as_micros() as i64;
        let mut published = Vec::new();
        let mut signing = None;
        let mut superseded_at = None;
        for (kid, seed_hex, created, _retired) in &rows {
            let seed: [u8; 32] = hex::decode(seed_hex)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| Error::internal(anyhow::anyhow!("signing key {kid} is corrupt")))?;
            let key = SigningKey::from_seed(kid.clone(), seed);
            match superseded_at {
                None => {
                    published.push(key.public_jwk());
                    signing = Some(key);
                }
                Some(replaced) if now - replaced < grace => published.push(key.public_jwk()),
                Some(_) => {}
            }
            superseded_at = Some(*created);
        }
        let signing = signing.ok_or_else(|| Error::internal(anyhow::anyhow!("no signing key")))?;
        Ok(Keys { signing, published })
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> SigningKey {
        self.keys.read().expect("key lock").signing.clone()
    }

    /// Every key a verifier should accept.
    pub fn published(&self) -> Vec<JwkKey> {
        self.keys.read().expect("key lock").published.clone()
    }

    /// Re-reads the keys (other replicas may have rotated) and rotates when
    /// the newest key is too old.
    pub async fn refresh(&self) -> Result<()> {
        let keys = Self::read(&self.store, self.rotation, self.token_ttl).await?;
        *self.keys.write().expect("key lock") = Arc::new(keys);
        Ok(())
    }
}
