//! The in-process translation cache (moka): bounded by bytes, each entry with its own TTL.
//! It is the L1 of every translation service, and the `TranslationCache` of a process that
//! has no Redis. Concurrent loads of one key are coalesced (`get_or_try_insert_with`).

use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ports::{InfraError, TranslationCache};

#[derive(Clone)]
struct Entry {
    text: Arc<str>,
    ttl: Duration,
}

/// Each entry lives for the TTL it was stored with.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Bookkeeping per entry on top of its key and text (moka's own node, the `Arc`), so that
/// the byte bound is close to the memory really used.
const ENTRY_OVERHEAD: usize = 96;

#[derive(Clone)]
pub struct MemoryCache {
    inner: moka::future::Cache<String, Entry>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("entries", &self.inner.entry_count()).finish()
    }
}

impl MemoryCache {
    /// A cache holding at most about `max_bytes` of keys and texts; the least useful
    /// entries are evicted first (TinyLFU).
    pub fn new(max_bytes: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Entry| u32::try_from(k.len() + v.text.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .build();
        MemoryCache { inner }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<str>> {
        self.inner.get(key).await.map(|e| e.text)
    }

    pub async fn insert(&self, key: String, text: Arc<str>, ttl: Duration) {
        self.inner.insert(key, Entry { text, ttl }).await;
    }

    /// The cached text for `key`, or the one `load` produces, stored for `ttl`. Callers that
    /// miss the same key at the same time wait for one `load` instead of each running their
    /// own. An error is returned to every waiter and stored nowhere. The flag is true for
    /// the one caller whose `load` ran and stored the value.
    pub async fn get_or_try_insert_with<F>(
        &self,
        key: String,
        ttl: Duration,
        load: F,
    ) -> Result<(Arc<str>, bool), Arc<InfraError>>
    where
        F: Future<Output = Result<String, InfraError>>,
    {
        let entry = self
            .inner
            .entry(key)
            .or_try_insert_with(async move { load.await.map(|t| Entry { text: Arc::from(t), ttl }) })
            .await?;
        let fresh = entry.is_fresh();
        Ok((entry.into_value().text, fresh))
    }

    /// The bytes held, as the bound counts them, after moka's pending evictions are applied.
    pub async fn weighted_bytes(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.weighted_size()
    }

    /// Drops every entry (benchmarks use it to measure the tier below).
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }
}

#[async_trait]
impl TranslationCache for MemoryCache {
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>, InfraError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await.map(|t| t.to_string()));
        }
        Ok(out)
    }

    async fn set_many(&self, entries: &[(String, String)], ttl: Duration) -> Result<(), InfraError> {
        for (k, v) in entries {
            self.insert(k.clone(), Arc::from(v.as_str()), ttl).await;
        }
        Ok(())
    }
}
