//! Compare-and-swap over the `ThrottleStore` for the pure limiter rules in `domain::throttle`.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};

use crate::ports::{InfraError, ThrottleStore, Versioned};

/// Loads the state under `key` (default when absent or expired), applies `step`, and stores
/// the result if nobody wrote in between; retries lost races. `step` may refuse (`Err`), in
/// which case nothing is written. Returns the state written and its version.
pub async fn update<S, E>(
    store: &dyn ThrottleStore,
    key: &str,
    now: DateTime<Utc>,
    expires_at: impl Fn(&S) -> DateTime<Utc>,
    step: impl FnMut(S) -> Result<S, E>,
) -> Result<Result<Versioned<S>, E>, InfraError>
where
    S: Serialize + DeserializeOwned + Default,
{
    update_from(store, key, now, None, expires_at, step).await
}

/// As [`update`], starting from `known` (a state this caller just wrote) instead of reading
/// it: when nobody wrote since, that saves the read.
pub async fn update_from<S, E>(
    store: &dyn ThrottleStore,
    key: &str,
    now: DateTime<Utc>,
    mut known: Option<Versioned<S>>,
    expires_at: impl Fn(&S) -> DateTime<Utc>,
    mut step: impl FnMut(S) -> Result<S, E>,
) -> Result<Result<Versioned<S>, E>, InfraError>
where
    S: Serialize + DeserializeOwned + Default,
{
    let mut races = crate::app::retry::RetryPolicy::RACES.start("limiter update");
    loop {
        let (state, version) = match known.take() {
            Some(v) => (v.value, Some(v.version)),
            None => match store.load(key, now).await? {
                None => (S::default(), None),
                Some(v) => (decode(key, &v.value)?, Some(v.version)),
            },
        };
        let next = match step(state) {
            Ok(next) => next,
            Err(refused) => return Ok(Err(refused)),
        };
        if store.store(key, &serde_json::to_string(&next)?, version, expires_at(&next)).await? {
            // The store numbers versions 1, 2, 3, ...
            return Ok(Ok(Versioned { value: next, version: version.map_or(1, |v| v + 1) }));
        }
        // Lost a race: back off with jitter and read again; past the budget this is a
        // `LockTimeout` (409 `lock_timeout`), not a server error.
        races.lost().await?;
    }
}

/// Reads the state without writing.
pub async fn peek<S: DeserializeOwned + Default>(
    store: &dyn ThrottleStore,
    key: &str,
    now: DateTime<Utc>,
) -> Result<S, InfraError> {
    match store.load(key, now).await? {
        None => Ok(S::default()),
        Some(v) => decode(key, &v.value),
    }
}

/// An expired entry reads as empty and starts over; anything else must parse. A limiter that
/// silently reset on bad data would fail open.
fn decode<S: DeserializeOwned + Default>(key: &str, value: &str) -> Result<S, InfraError> {
    if value.is_empty() {
        return Ok(S::default());
    }
    serde_json::from_str(value).map_err(|e| anyhow::anyhow!("throttle state under {key} is unreadable: {e}"))
}
