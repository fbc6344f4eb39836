//! The shared translation cache on Redis (ElastiCache Redis/Valkey on AWS): one MGET per
//! read, one pipeline of `SET key value EX ttl` per write.
//!
//! Redis is an optimisation here, never a dependency: every call is bounded by a short
//! timeout (50 ms at most), and a connection that failed is dropped and made again on a
//! later call, at most once per `RECONNECT_PAUSE`, so that a Redis that is down costs each
//! request an immediate error rather than a connect attempt. Callers that arrive while a
//! connect is under way wait for it (it is bounded by the same timeout) rather than each
//! making their own. When Redis comes back, the next attempt reconnects.

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::ports::{InfraError, TranslationCache};

/// The longest any call may take; the contract's bound for the L2 tier.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(50);
/// How long after a failed connect the next one may be tried.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

enum Link {
    Up(MultiplexedConnection),
    /// No connection; the next attempt may start at this instant.
    Down {
        retry_at: Instant,
    },
}

pub struct RedisCache {
    client: redis::Client,
    timeout: Duration,
    link: Mutex<Link>,
}

impl std::fmt::Debug for RedisCache {
    // The URL may carry a password: show only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("addr", &self.client.get_connection_info().addr().to_string())
            .field("timeout", &self.timeout)
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
        Ok(RedisCache {
            client,
            timeout: timeout.min(MAX_TIMEOUT),
            link: Mutex::new(Link::Down { retry_at: Instant::now() }),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, InfraError> {
        // Held across the connect: the callers behind it wait for its outcome.
        let mut link = self.link.lock().await;
        match &*link {
            Link::Up(conn) => return Ok(conn.clone()),
            Link::Down { retry_at } if Instant::now() < *retry_at => {
                anyhow::bail!("Redis is unreachable; next connect attempt in {:?}", *retry_at - Instant::now())
            }
            Link::Down { .. } => {}
        }
        *link = Link::Down { retry_at: Instant::now() + RECONNECT_PAUSE };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let conn =
            tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection_with_config(&config))
                .await
                .map_err(|_| anyhow::anyhow!("Redis connect timed out after {:?}", self.timeout))?
                .map_err(|e| anyhow::anyhow!("Redis connect failed: {e}"))?;
        *link = Link::Up(conn.clone());
        Ok(conn)
    }

    /// Runs one round trip within the timeout. On any failure the connection is dropped, so
    /// that a later call makes a fresh one (a server restart leaves the old one dead).
    async fn run<T>(
        &self,
        what: &str,
        send: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, InfraError> {
        let mut conn = self.connection().await?;
        let result = match tokio::time::timeout(self.timeout, send(&mut conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => Err(anyhow::anyhow!("Redis {what} failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("Redis {what} timed out after {:?}", self.timeout)),
        };
        *self.link.lock().await = Link::Down { retry_at: Instant::now() };
        result
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), InfraError> {
        self.run("PING", async |c| redis::cmd("PING").query_async::<String>(c).await).await.map(|_| ())
    }
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
            assert_eq!(cache.timeout, MAX_TIMEOUT, "the timeout is capped");
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
