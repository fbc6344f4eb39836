//! The Amazon Translate adapter through the AWS SDK against the local TranslateText server,
//! and the tiered service on top of it with Redis as L2: warm paths make no Translate call,
//! concurrent misses make one per distinct text, long text is split under the limit, odd
//! Unicode never fails, and a failure serves the source text without being cached.

use std::sync::Arc;
use std::time::Duration;

use stark::adapters::amazon_translate::AmazonTranslate;
use stark::adapters::redis_cache::RedisCache;
use stark::i18n::{Lang, TranslationService, TranslationSettings};
use stark::ports::{TranslationCache, Translator};

use crate::fake_translate::{fake_translation, FakeTranslate, MAX_TEXT_BYTES};
use crate::redis_server::shared_url;

fn translator(fake: &FakeTranslate) -> Arc<dyn Translator> {
    Arc::new(AmazonTranslate::from_conf(fake.config()))
}

fn redis() -> Arc<dyn TranslationCache> {
    Arc::new(RedisCache::new(&shared_url(), Duration::from_millis(50)).unwrap())
}

/// A service as a process builds it: its own L1, the shared Redis as L2.
fn service(fake: &FakeTranslate) -> TranslationService {
    TranslationService::new(Some(translator(fake)), Some(redis()), TranslationSettings::default())
}

/// Texts no earlier run has cached in the shared Redis.
fn catalog(n: usize) -> Vec<String> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..n).map(|i| format!("Product {i} of run {run}: a suit that folds into a briefcase.")).collect()
}

fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn the_adapter_speaks_translate_text() {
    let fake = FakeTranslate::start().await;
    let t = AmazonTranslate::from_conf(fake.config());
    assert_eq!(t.translate("Hello", Lang::En, Lang::Fr).await.unwrap(), "[fr] Hello");
    // Surrounding whitespace survives (the service trims what it sends).
    assert_eq!(t.translate("  Hello\n", Lang::En, Lang::De).await.unwrap(), "  [de] Hello\n");
    assert_eq!(fake.calls(), 2);
    // Into the source language there is nothing to do.
    assert_eq!(t.translate("Hello", Lang::En, Lang::En).await.unwrap(), "Hello");
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn warm_paths_make_no_translate_call() {
    let fake = FakeTranslate::start().await;
    let texts = catalog(20);
    let first = service(&fake);
    let cold = first.translate_many(Lang::Es, &refs(&texts)).await;
    assert_eq!(cold, texts.iter().map(|t| fake_translation(t, "es")).collect::<Vec<_>>());
    assert_eq!(fake.calls(), 20);

    // L1 warm: the same process again.
    assert_eq!(first.translate_many(Lang::Es, &refs(&texts)).await, cold);
    assert_eq!(fake.calls(), 20, "an L1 hit called Translate");
    assert_eq!(first.stats().l1_hits, 20);

    // L2 warm: another process (a fresh L1) on the same Redis, one MGET for the 20.
    let second = service(&fake);
    assert_eq!(second.translate_many(Lang::Es, &refs(&texts)).await, cold);
    assert_eq!(fake.calls(), 20, "an L2 hit called Translate");
    assert_eq!(second.stats().l2_hits, 20);
    // ... which filled its L1.
    assert_eq!(second.translate_many(Lang::Es, &refs(&texts)).await, cold);
    assert_eq!(second.stats().l1_hits, 20);
    assert_eq!(fake.calls(), 20);
}

#[tokio::test]
async fn concurrent_misses_make_one_call_per_distinct_text() {
    let fake = FakeTranslate::start().await;
    fake.delay(Duration::from_millis(150));
    let service = Arc::new(service(&fake));
    let texts = Arc::new(catalog(5));
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let (service, texts) = (service.clone(), texts.clone());
            tokio::spawn(async move {
                // Every request asks for the first text; each also asks for one of the others.
                let asked = [texts[0].as_str(), texts[1 + n % 4].as_str()];
                (asked.map(str::to_string), service.translate_many(Lang::Hi, &asked).await)
            })
        })
        .collect();
    for t in tasks {
        let (asked, got) = t.await.unwrap();
        assert_eq!(got, asked.iter().map(|t| fake_translation(t, "hi")).collect::<Vec<_>>());
    }
    assert_eq!(fake.calls(), 5, "50 concurrent requests over 5 distinct texts");
}

#[tokio::test]
async fn long_text_is_split_under_the_request_limit() {
    let fake = FakeTranslate::start().await;
    let service = service(&fake);
    let sentence = format!("The armour {} folds into a nanotech housing. ", uuid::Uuid::new_v4().simple());
    let text = sentence.repeat(35_000 / sentence.len());
    assert!(text.len() > 3 * MAX_TEXT_BYTES);
    let got = service.translate(Lang::Fr, &text).await;
    let sizes = fake.text_sizes();
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= MAX_TEXT_BYTES), "{sizes:?}");
    // Every piece was translated, in order, and nothing was lost at the cuts.
    assert_eq!(got.matches("[fr] ").count(), sizes.len());
    assert_eq!(got.replace("[fr] ", ""), text);
}

#[tokio::test]
async fn odd_and_huge_unicode_is_translated_or_passed_through() {
    let fake = FakeTranslate::start().await;
    let service = service(&fake);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let texts: Vec<String> = vec![
        format!("Emoji 🚀🦾👍🏽 {run}"),
        format!("Combining e\u{301}\u{302}\u{303} {run}"),
        format!("RTL שָׁלוֹם مرحبا \u{202e}reversed\u{202c} {run}"),
        format!("NUL \u{0} and controls \u{1}\u{7f} {run}"),
        format!("Zero-width \u{200b}\u{200d}\u{feff} {run}"),
        format!("Braces {{code}} and \"quotes\" \\ {run}"),
        "🚀🦾".repeat(5_000),                            // no letters: served as is
        format!("{}{run}", "e\u{301}".repeat(12_000)),   // 36 kB, no spaces: split between marks
        format!("{}{run}", "x".repeat(2 * 1024 * 1024)), // over the service's bound: as is
        String::new(),
        "   ".into(),
    ];
    let got = service.translate_many(Lang::Ja, &refs(&texts)).await;
    assert_eq!(got.len(), texts.len());
    for (t, g) in texts.iter().zip(&got) {
        assert!(
            g == t || g.replace("[ja] ", "") == *t,
            "{:?} came back as {:?}",
            &t[..t.len().min(40)],
            &g[..g.len().min(40)]
        );
    }
    assert_eq!(got[0], fake_translation(&texts[0], "ja"));
    assert_eq!(got[3], fake_translation(&texts[3], "ja"));
    assert_eq!(got[6], texts[6]);
    assert_eq!(got[8], texts[8]);
    assert!(fake.text_sizes().iter().all(|&s| s <= MAX_TEXT_BYTES));
}

#[tokio::test]
async fn a_translate_failure_serves_the_source_and_is_not_cached() {
    let fake = FakeTranslate::start().await;
    let service = service(&fake);
    let text = catalog(1).remove(0);
    fake.fail(true);
    assert_eq!(service.translate(Lang::De, &text).await, text);
    assert_eq!(fake.calls(), 1);
    // Not cached in either tier: the next request tries again.
    assert_eq!(service.translate(Lang::De, &text).await, text);
    assert_eq!(fake.calls(), 2);
    let key = stark::i18n::cache_key(Lang::De, &text);
    assert_eq!(redis().mget(&[key]).await.unwrap(), vec![None]);
    fake.fail(false);
    assert_eq!(service.translate(Lang::De, &text).await, fake_translation(&text, "de"));
    assert_eq!(fake.calls(), 3);
    assert_eq!(service.translate(Lang::De, &text).await, fake_translation(&text, "de"));
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn a_slow_translate_times_out_to_the_source() {
    let fake = FakeTranslate::start().await;
    fake.delay(Duration::from_secs(5));
    let service = TranslationService::new(
        Some(translator(&fake)),
        Some(redis()),
        TranslationSettings { translate_timeout: Duration::from_millis(200), ..Default::default() },
    );
    let text = catalog(1).remove(0);
    assert_eq!(service.translate(Lang::Es, &text).await, text);
}

#[tokio::test]
async fn without_a_translator_nothing_is_called_and_the_source_is_served() {
    let service = TranslationService::new(None, Some(redis()), TranslationSettings::default());
    let texts = catalog(3);
    assert_eq!(service.translate_many(Lang::Fr, &refs(&texts)).await, texts);
    assert_eq!(service.stats(), Default::default());
}
