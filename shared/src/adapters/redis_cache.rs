//! The shared translation cache on Redis (ElastiCache Redis/Valkey on AWS): one MGET per
//! read, one pipeline of `SET key value EX ttl` per write.
//!
//! Redis is an optimisation here, never a dependency: every call is bounded by a short
//! timeout (50 ms at most). Connecting runs in a task of its own with a longer bound
//! (`CONNECT_TIMEOUT`: a TLS handshake to ElastiCache may take longer than one call may
//! wait), so a call that gives up does not abort the connect, and callers arriving meanwhile
//! wait for it, each within its own timeout, instead of making their own. A connection that
//! fails is dropped; the next connect starts on a later call, at most once per
//! `RECONNECT_PAUSE`, so that a Redis that is down costs a request an immediate error rather
//! than a connect attempt. When Redis comes back, the next attempt reconnects.

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};

use crate::ports::{InfraError, TranslationCache};

/// The longest any call may take; the contract's bound for the L2 tier.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(50);
/// How long a connect (TCP, TLS, handshake) may take in its own task.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a failed connect the next one may be tried.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

enum Link {
    Up(MultiplexedConnection),
    Connecting,
    /// No connection; the next attempt may start at `retry_at`.
    Down {
        retry_at: Instant,
        why: String,
    },
}

struct Inner {
    client: redis::Client,
    timeout: Duration,
    link: Mutex<Link>,
    /// Woken when a connect attempt has settled (`link` is `Up` or `Down` again).
    settled: Notify,
}

pub struct RedisCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisCache {
    // The URL may carry a password: show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("addr", &self.inner.client.get_connection_info().addr().to_string())
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on `url` (`redis://host:port[/db]`, or `rediss://` for TLS, which ElastiCache
    /// Serverless requires; the system's CA certificates are trusted). Nothing connects
    /// until the first call, so a process starts whether or not Redis answers. `timeout`
    /// is capped at [`MAX_TIMEOUT`].
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("bad Redis URL: {e}"))?;
        let inner = Inner {
            client,
            timeout: timeout.min(MAX_TIMEOUT),
            link: Mutex::new(Link::Down { retry_at: Instant::now(), why: "not connected yet".into() }),
            settled: Notify::new(),
        };
        Ok(RedisCache { inner: Arc::new(inner) })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, InfraError> {
        let settled = self.inner.settled.notified();
        tokio::pin!(settled);
        {
            let mut link = self.inner.link.lock().await;
            match &*link {
                Link::Up(conn) => return Ok(conn.clone()),
                Link::Connecting => {}
                Link::Down { retry_at, why } if Instant::now() < *retry_at => {
                    anyhow::bail!(
                        "Redis is unreachable ({why}); next connect attempt in {:?}",
                        *retry_at - Instant::now()
                    )
                }
                Link::Down { .. } => {
                    *link = Link::Connecting;
                    tokio::spawn(connect(self.inner.clone()));
                }
            }
            // Registered before the lock is released, so a connect that settles at once
            // still wakes this caller.
            settled.as_mut().enable();
        }
        tokio::time::timeout(self.inner.timeout, settled)
            .await
            .map_err(|_| anyhow::anyhow!("Redis connect still under way after {:?}", self.inner.timeout))?;
        match &*self.inner.link.lock().await {
            Link::Up(conn) => Ok(conn.clone()),
            Link::Down { why, .. } => Err(anyhow::anyhow!("Redis connect failed: {why}")),
            Link::Connecting => Err(anyhow::anyhow!("Redis connect still under way")),
        }
    }

    /// Runs one round trip within the timeout. On any failure the connection is dropped, so
    /// that a later call makes a fresh one (a server restart leaves the old one dead).
    async fn run<T>(
        &self,
        what: &str,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, InfraError> {
        let mut conn = self.connection().await?;
        let result = match tokio::time::timeout(self.inner.timeout, send(&mut conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => Err(anyhow::anyhow!("Redis {what} failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("Redis {what} timed out after {:?}", self.inner.timeout)),
        };
        if let Err(e) = &result {
            *self.inner.link.lock().await = Link::Down { retry_at: Instant::now(), why: e.to_string() };
        }
        result
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), InfraError> {
        self.run("PING", async |c| redis::cmd("PING").query_async::<String>(c).await).await.map(|_| ())
    }
}

/// One connect attempt, in its own task; records the outcome and wakes the waiters.
async fn connect(inner: Arc<Inner>) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(inner.timeout));
    let attempt =
        tokio::time::timeout(CONNECT_TIMEOUT, inner.client.get_multiplexed_async_connection_with_config(&config));
    let next = match attempt.await {
        Ok(Ok(conn)) => Link::Up(conn),
        Ok(Err(e)) => Link::Down { retry_at: Instant::now() + RECONNECT_PAUSE, why: e.to_string() },
        Err(_) => Link::Down {
            retry_at: Instant::now() + RECONNECT_PAUSE,
            why: format!("connect timed out after {CONNECT_TIMEOUT:?}"),
        },
    };
    *inner.link.lock().await = next;
    inner.settled.notify_waiters();
}

#[async_trait]
impl TranslationCache for RedisCache {
    async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>, InfraError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            self.run("MGET", async |c| redis::cmd("MGET").arg(keys).query_async(c).await).await?;
        anyhow::ensure!(
            values.len() == keys.len(),
            "Redis MGET answered {} values for {} keys",
            values.len(),
            keys.len()
        );
        Ok(values)
    }

    async fn set_many(&self, entries: &[(String, String)], ttl: Duration) -> Result<(), InfraError> {
        if entries.is_empty() {
            return Ok(());
        }
        let secs = ttl.as_secs().max(1);
        let mut pipe = redis::pipe();
        for (k, v) in entries {
            pipe.cmd("SET").arg(k).arg(v).arg("EX").arg(secs).ignore();
        }
        self.run("SET pipeline", async |c| pipe.query_async::<()>(c).await).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_parse_without_connecting_and_bad_ones_are_refused() {
        for url in ["redis://127.0.0.1:6379", "rediss://cache.example.internal:6379/0", "redis://:secret@host:1/2"] {
            let cache = RedisCache::new(url, Duration::from_secs(5)).unwrap();
            assert_eq!(cache.inner.timeout, MAX_TIMEOUT, "the timeout is capped");
            assert!(!format!("{cache:?}").contains("secret"));
        }
        assert!(RedisCache::new("http://nope", MAX_TIMEOUT).is_err());
        // Nothing there: an error, promptly, never a hang.
        let dead = RedisCache::new("redis://127.0.0.1:1", MAX_TIMEOUT).unwrap();
        assert!(dead.mget(&["k".to_string()]).await.is_err());
        // And again at once: the pause after a failed connect answers without trying.
        let e = dead.mget(&["k".to_string()]).await.unwrap_err();
        assert!(e.to_string().contains("unreachable"), "{e}");
    }
}
