//! Argon2id password hashing. The PHC string carries the algorithm and its parameters, so
//! it doubles as the scheme tag: a hash made with older parameters is re-hashed on the next
//! successful login, and raising the cost needs no migration.

use argon2::{Algorithm, Argon2, Params, PasswordHash as Phc, PasswordHasher, PasswordVerifier, Version};

use std::sync::{Arc, OnceLock};

use crate::domain::{Password, PasswordHash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl HashCost {
    /// The contract's parameters: m=19456 KiB, t=2, p=1.
    pub const PRODUCTION: HashCost = HashCost { m_kib: 19456, t: 2, p: 1 };
    /// Cheap parameters for tests that are not about hashing cost.
    pub const TEST: HashCost = HashCost { m_kib: 64, t: 1, p: 1 };
}

/// The hash of a random 64-character password that was thrown away after hashing: nothing can
/// match it, and checking against it costs exactly what checking a real production hash costs.
pub const PRODUCTION_DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$NZS5x9H8iFBliHvd49AQ2A$p45nELRf4y41mv1fw4LRUTO/SHdCEMNxDv+pupdL6kc";

#[derive(Clone)]
pub struct PasswordHasherService {
    cost: HashCost,
    /// A hash of a random password, checked against when the account does not exist so that
    /// an unknown email costs the same work as a wrong password. At production cost it is a
    /// constant ([`PRODUCTION_DUMMY`]), so a cold start neither pays for making one nor makes
    /// its first unknown-email login slower than a wrong password; other costs make one on
    /// first need.
    dummy: Arc<OnceLock<PasswordHash>>,
    /// Each hash holds ~19 MiB; at most one per core runs at a time, so a flood of logins
    /// queues instead of exhausting memory.
    permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PasswordHasherService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasherService").field("cost", &self.cost).finish()
    }
}

fn argon(cost: HashCost) -> anyhow::Result<Argon2<'static>> {
    let params =
        Params::new(cost.m_kib, cost.t, cost.p, None).map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

pub fn hash_with(cost: HashCost, password: &str) -> anyhow::Result<PasswordHash> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let phc = argon(cost)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(PasswordHash(phc.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match { needs_rehash: bool },
}

impl PasswordHasherService {
    pub fn new(cost: HashCost) -> anyhow::Result<Self> {
        // Fail at start-up, not at the first login, if the parameters are unusable.
        argon(cost)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy = OnceLock::new();
        if cost == HashCost::PRODUCTION {
            let _ = dummy.set(PasswordHash(PRODUCTION_DUMMY.to_string()));
        }
        Ok(PasswordHasherService {
            cost,
            dummy: Arc::new(dummy),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        })
    }

    fn dummy(&self) -> anyhow::Result<PasswordHash> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let fresh = hash_with(self.cost, &hex::encode(random))?;
        Ok(self.dummy.get_or_init(|| fresh).clone())
    }

    /// Hashes on the blocking pool: argon2id at production cost takes tens of milliseconds.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let _permit = self.permits.acquire().await?;
        let cost = self.cost;
        let pw = password.expose().to_string();
        tokio::task::spawn_blocking(move || hash_with(cost, &pw)).await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account.
    pub async fn verify(&self, password: &Password, stored: Option<&PasswordHash>) -> anyhow::Result<Verdict> {
        let _permit = self.permits.acquire().await?;
        let is_real = stored.is_some();
        let stored = stored.cloned();
        let this = self.clone();
        let pw = password.expose().to_string();
        let cost = self.cost;
        tokio::task::spawn_blocking(move || {
            let hash = match stored {
                Some(h) => h.0,
                None => this.dummy()?.0,
            };
            let parsed = match Phc::new(&hash) {
                Ok(p) => p,
                Err(_) => return Ok(Verdict::Mismatch),
            };
            let ok = Argon2::default().verify_password(pw.as_bytes(), &parsed).is_ok();
            if !ok || !is_real {
                return Ok(Verdict::Mismatch);
            }
            let current =
                Params::try_from(&parsed).ok().map(|p| HashCost { m_kib: p.m_cost(), t: p.t_cost(), p: p.p_cost() });
            let needs_rehash = parsed.algorithm.as_str() != "argon2id" || current != Some(cost);
            Ok(Verdict::Match { needs_rehash })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_flags_old_parameters() {
        let pw = Password::parse("correct horse").unwrap();
        let old = hash_with(HashCost { m_kib: 32, t: 1, p: 1 }, pw.expose()).unwrap();
        let svc = PasswordHasherService::new(HashCost::TEST).unwrap();
        assert_eq!(svc.verify(&pw, Some(&old)).await.unwrap(), Verdict::Match { needs_rehash: true });
        let fresh = svc.hash(&pw).await.unwrap();
        assert!(fresh.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(svc.verify(&pw, Some(&fresh)).await.unwrap(), Verdict::Match { needs_rehash: false });
        let wrong = Password::parse("wrong horse").unwrap();
        assert_eq!(svc.verify(&wrong, Some(&fresh)).await.unwrap(), Verdict::Mismatch);
        // No account: the dummy never matches, even for its own (unknown) password.
        assert_eq!(svc.verify(&pw, None).await.unwrap(), Verdict::Mismatch);
    }

    #[test]
    fn the_production_dummy_has_the_production_parameters() {
        let phc = Phc::new(PRODUCTION_DUMMY).unwrap();
        let p = Params::try_from(&phc).unwrap();
        assert_eq!(phc.algorithm.as_str(), "argon2id");
        assert_eq!(HashCost { m_kib: p.m_cost(), t: p.t_cost(), p: p.p_cost() }, HashCost::PRODUCTION);
    }

    #[tokio::test]
    async fn production_parameters_are_the_contracts() {
        let svc = PasswordHasherService::new(HashCost::PRODUCTION).unwrap();
        let pw = Password::parse("correct horse").unwrap();
        let h = svc.hash(&pw).await.unwrap();
        assert!(h.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.0);
        assert_eq!(svc.verify(&pw, Some(&h)).await.unwrap(), Verdict::Match { needs_rehash: false });
    }
}
