//! The `TranslationCache` contract, one suite run against every adapter: misses, values in
//! key order, overwrites, TTLs, odd and large values, and empty calls.

use std::time::Duration;

use stark::adapters::memory_cache::MemoryCache;
use stark::adapters::redis_cache::RedisCache;
use stark::ports::TranslationCache;

use crate::redis_server::{shared_url, unique_prefix};

const HOUR: Duration = Duration::from_secs(3600);

fn owned(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

async fn contract(cache: &dyn TranslationCache, prefix: &str) {
    let k = |n: u32| format!("{prefix}:{n}");

    // Nothing asked, nothing answered; nothing stored is fine too.
    assert_eq!(cache.mget(&[]).await.unwrap(), Vec::<Option<String>>::new());
    cache.set_many(&[], HOUR).await.unwrap();

    // Misses are None, one per key.
    assert_eq!(cache.mget(&[k(1), k(2)]).await.unwrap(), owned(&[None, None]));

    // Values come back in the order of the keys asked, misses in between, duplicates too.
    let odd = "trois 🚀 e\u{301} \u{0} שָׁלוֹם مرحبا \u{200d}\u{feff} {x}";
    cache.set_many(&[(k(1), "un".into()), (k(3), odd.into())], HOUR).await.unwrap();
    assert_eq!(cache.mget(&[k(3), k(2), k(1), k(3)]).await.unwrap(), owned(&[Some(odd), None, Some("un"), Some(odd)]));

    // A second write replaces the value.
    cache.set_many(&[(k(1), "uno".into())], HOUR).await.unwrap();
    assert_eq!(cache.mget(&[k(1)]).await.unwrap(), owned(&[Some("uno")]));

    // Large values round-trip whole.
    let big = "Ünïcödé ".repeat(20_000);
    cache.set_many(&[(k(4), big.clone())], HOUR).await.unwrap();
    assert_eq!(cache.mget(&[k(4)]).await.unwrap(), vec![Some(big)]);

    // Many keys in one call.
    let many: Vec<(String, String)> = (100..300).map(|n| (k(n), format!("v{n}"))).collect();
    cache.set_many(&many, HOUR).await.unwrap();
    let keys: Vec<String> = many.iter().map(|(key, _)| key.clone()).collect();
    let got = cache.mget(&keys).await.unwrap();
    assert_eq!(got, many.iter().map(|(_, v)| Some(v.clone())).collect::<Vec<_>>());

    // An entry expires after its TTL; one written with a long TTL beside it stays.
    cache.set_many(&[(k(5), "brief".into()), (k(6), "lasting".into())], Duration::from_secs(1)).await.unwrap();
    cache.set_many(&[(k(6), "lasting".into())], HOUR).await.unwrap();
    assert_eq!(cache.mget(&[k(5)]).await.unwrap(), owned(&[Some("brief")]));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(cache.mget(&[k(5), k(6)]).await.unwrap(), owned(&[None, Some("lasting")]));
}

#[tokio::test]
async fn the_in_process_cache_keeps_the_contract() {
    contract(&MemoryCache::new(64 * 1024 * 1024), &unique_prefix("memory")).await;
}

#[tokio::test]
async fn the_redis_cache_keeps_the_contract() {
    let cache = RedisCache::new(&shared_url(), Duration::from_millis(50)).unwrap();
    contract(&cache, &unique_prefix("redis")).await;
}

#[tokio::test]
async fn the_in_process_cache_is_bounded() {
    let cache = MemoryCache::new(1024 * 1024);
    let value = "x".repeat(10_000);
    for n in 0..1000 {
        cache.set_many(&[(format!("k{n}"), value.clone())], HOUR).await.unwrap();
    }
    assert!(cache.weighted_bytes().await <= 1024 * 1024);
    let keys: Vec<String> = (0..1000).map(|n| format!("k{n}")).collect();
    let kept = cache.mget(&keys).await.unwrap().iter().filter(|v| v.is_some()).count();
    assert!(kept <= 110, "a 1 MiB cache kept {kept} values of 10 kB");
}
