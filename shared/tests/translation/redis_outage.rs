//! The Redis adapter against its own redis-server, which the test freezes, kills and starts
//! again on the same port: calls fail fast and bounded while Redis is gone or hung, the
//! service on top keeps answering, and the adapter reconnects when Redis is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stark::adapters::redis_cache::RedisCache;
use stark::i18n::{Lang, TranslationService, TranslationSettings};
use stark::ports::{TranslationCache, Translator};

use crate::fake_translate::FakeTranslate;
use crate::redis_server::{unique_prefix, RedisServer};

const HOUR: Duration = Duration::from_secs(3600);
/// Loose on purpose: the machine is shared and noisy. The adapter's own bound is 50 ms;
/// this only proves a call does not hang on a dead or frozen server.
const PROMPT: Duration = Duration::from_secs(2);

async fn until_ok<T, F: AsyncFn() -> anyhow::Result<T>>(what: &str, f: F) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what} did not recover within 15 s: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn assert_fails_promptly(cache: &RedisCache, key: &str) {
    for _ in 0..5 {
        let t = Instant::now();
        assert!(cache.mget(&[key.to_string()]).await.is_err(), "MGET succeeded on a Redis that is not there");
        assert!(t.elapsed() < PROMPT, "MGET took {:?}", t.elapsed());
        let t = Instant::now();
        assert!(cache.set_many(&[(key.to_string(), "x".into())], HOUR).await.is_err());
        assert!(t.elapsed() < PROMPT, "SET took {:?}", t.elapsed());
    }
}

#[tokio::test]
async fn redis_stopping_and_returning_mid_test() {
    let mut server = RedisServer::start();
    let cache = RedisCache::new(&server.url(), Duration::from_millis(50)).unwrap();
    let key = format!("{}:k", unique_prefix("outage"));

    until_ok("first connect", async || cache.ping().await).await;
    cache.set_many(&[(key.clone(), "before".into())], HOUR).await.unwrap();
    assert_eq!(cache.mget(std::slice::from_ref(&key)).await.unwrap(), vec![Some("before".to_string())]);

    // Hung: the server accepts and never answers. Every call gives up at the timeout.
    server.freeze(true);
    assert_fails_promptly(&cache, &key).await;
    server.freeze(false);
    let back = until_ok("after a freeze", async || cache.mget(std::slice::from_ref(&key)).await).await;
    assert_eq!(back, vec![Some("before".to_string())]);

    // Gone: the connection breaks and connecting is refused.
    server.kill();
    assert_fails_promptly(&cache, &key).await;

    // Back on the same port (empty: no persistence). The same adapter reconnects.
    server.restart();
    until_ok("after a restart", async || cache.set_many(&[(key.clone(), "after".into())], HOUR).await).await;
    assert_eq!(cache.mget(std::slice::from_ref(&key)).await.unwrap(), vec![Some("after".to_string())]);
}

#[tokio::test]
async fn the_service_answers_while_redis_is_down_and_uses_it_again_when_it_returns() {
    let mut server = RedisServer::start();
    let fake = FakeTranslate::start().await;
    let translator: Arc<dyn Translator> =
        Arc::new(stark::adapters::amazon_translate::AmazonTranslate::from_conf(fake.config()));
    let redis = Arc::new(RedisCache::new(&server.url(), Duration::from_millis(50)).unwrap());
    let service = TranslationService::new(
        Some(translator),
        Some(redis.clone() as Arc<dyn TranslationCache>),
        TranslationSettings { log_interval: HOUR, ..Default::default() },
    );
    until_ok("first connect", async || redis.ping().await).await;

    assert!(matches!(service.check_cache().await, Some(Ok(()))), "health sees the cache");
    server.kill();
    assert!(matches!(service.check_cache().await, Some(Err(_))), "health sees it down");
    // L2 is down: L3 still translates, and L1 serves the repeat without any tier below.
    let text = format!("Nanotech housing {}", uuid::Uuid::new_v4());
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(service.translate(Lang::Fr, &text).await, format!("[fr] {text}"));
        assert!(t.elapsed() < PROMPT);
    }
    assert_eq!(fake.calls(), 1);
    let down = service.stats();
    assert!(down.l2_failures >= 2, "{down:?}");
    // Logged once for the whole outage so far, not once per failure.
    assert_eq!(down.failure_logs, 1, "{down:?}");

    // Both down: the source text, still an answer.
    fake.fail(true);
    let other = format!("Repulsor {}", uuid::Uuid::new_v4());
    assert_eq!(service.translate(Lang::De, &other).await, other);

    // Redis back: a new miss is written to it and read from it by a fresh process.
    fake.fail(false);
    server.restart();
    until_ok("after a restart", async || redis.ping().await).await;
    assert!(matches!(service.check_cache().await, Some(Ok(()))), "and back");
    let fresh = format!("Arc reactor {}", uuid::Uuid::new_v4());
    assert_eq!(service.translate(Lang::Ja, &fresh).await, format!("[ja] {fresh}"));
    let key = stark::i18n::cache_key(Lang::Ja, &fresh);
    assert_eq!(redis.mget(&[key]).await.unwrap(), vec![Some(format!("[ja] {fresh}"))]);
}

#[tokio::test]
async fn tls_to_a_server_without_tls_is_an_error_not_a_panic() {
    // A server that answers a ClientHello with plain text: the TLS client is built (crypto
    // provider, system roots), starts its handshake and refuses the answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"-ERR this is not TLS\r\n").await;
        }
    });
    let cache = RedisCache::new(&format!("rediss://127.0.0.1:{port}"), Duration::from_millis(50)).unwrap();
    // The connect runs on in its own task (loading the system's roots may take longer than
    // one call waits); each call fails promptly until the handshake has been refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = Instant::now();
        let e = format!("{:#}", cache.mget(&["k".to_string()]).await.unwrap_err());
        assert!(t.elapsed() < PROMPT);
        // rustls's own refusal, not a connect failure: the handshake really ran.
        if e.contains("InvalidContentType") {
            break;
        }
        assert!(Instant::now() < deadline, "no TLS refusal within 10 s; last error: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
