//! Machine translation of catalog text (product names and descriptions) through three
//! tiers: L1 in process (moka, bounded), L2 shared (Redis: one MGET per response), L3 the
//! `Translator` (Amazon Translate), with concurrent misses of one text coalesced into one
//! call. A failure or timeout at any tier serves the source text; failures are never cached
//! and are logged at most once per interval per tier.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use md5::{Digest, Md5};

use super::Lang;
use crate::adapters::memory_cache::MemoryCache;
use crate::ports::{InfraError, TranslationCache, Translator};

/// The cache key of `text` translated into `lang`: `i18n:<hex md5(lang NUL text)>`, the
/// same in every tier and every process.
pub fn cache_key(lang: Lang, text: &str) -> String {
    let mut h = Md5::new();
    h.update(lang.as_str().as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    format!("i18n:{}", hex::encode(h.finalize()))
}

#[derive(Debug, Clone)]
pub struct TranslationSettings {
    /// The language catalog text is written in.
    pub source: Lang,
    /// The bound of the in-process cache, in bytes of keys and texts.
    pub l1_max_bytes: u64,
    pub l1_ttl: Duration,
    pub l2_ttl: Duration,
    /// How long one L2 round trip may take before the response goes on without it.
    pub l2_timeout: Duration,
    /// How long one text may take to translate (all its pieces) before its source is served.
    pub translate_timeout: Duration,
    /// At most this many texts of one response are translated at the same time.
    pub max_concurrent_translations: usize,
    /// A longer text is served as it is: product text is bounded by the 64 KiB body limit,
    /// so this only stops abuse from turning into many Translate calls.
    pub max_text_bytes: usize,
    /// A tier's failures are logged at most once per this interval (with a count of the
    /// ones left out).
    pub log_interval: Duration,
}

impl Default for TranslationSettings {
    fn default() -> Self {
        TranslationSettings {
            source: Lang::En,
            l1_max_bytes: 32 * 1024 * 1024,
            l1_ttl: Duration::from_secs(60 * 60),
            l2_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            l2_timeout: crate::adapters::redis_cache::MAX_TIMEOUT,
            translate_timeout: Duration::from_secs(3),
            max_concurrent_translations: 8,
            max_text_bytes: 64 * 1024,
            log_interval: Duration::from_secs(60),
        }
    }
}

/// Counters since the service started, for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranslationStats {
    pub l1_hits: u64,
    pub l2_hits: u64,
    /// `Translator` calls made (one per distinct miss, whatever the concurrency).
    pub translate_calls: u64,
    pub l2_failures: u64,
    pub translate_failures: u64,
    /// Failure log lines written (at most one per tier per `log_interval`).
    pub failure_logs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    translate_calls: AtomicU64,
    l2_failures: AtomicU64,
    translate_failures: AtomicU64,
    failure_logs: AtomicU64,
}

/// Logs a tier's failure at most once per interval.
#[derive(Debug)]
struct FailureLog {
    tier: &'static str,
    interval: Duration,
    /// When the last line was written, and how many failures were left out since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl FailureLog {
    fn new(tier: &'static str, interval: Duration) -> Self {
        FailureLog { tier, interval, state: Mutex::new((None, 0)) }
    }

    /// Returns whether a line was written.
    fn record(&self, error: &dyn std::fmt::Display) -> bool {
        let suppressed = {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match state.0 {
                Some(at) if at.elapsed() < self.interval => {
                    state.1 += 1;
                    return false;
                }
                _ => {
                    *state = (Some(Instant::now()), 0);
                }
            }
            std::mem::take(&mut state.1)
        };
        tracing::warn!(
            tier = self.tier,
            error = %error,
            left_out = suppressed,
            interval_secs = self.interval.as_secs(),
            "translation tier failed; serving the source text (logged once per interval)"
        );
        true
    }
}

/// One catalog field of a response (a product's name or description): its source text and,
/// when the product stores one for the response language, that translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogText<'a> {
    pub source: &'a str,
    pub stored: Option<&'a str>,
}

/// A text as L1's coalescing load left it, and whether this caller's load made it.
type Loaded = (Arc<str>, bool);

/// What a response needs translated, whatever backs it. Built once per process.
pub struct TranslationService {
    translator: Option<Arc<dyn Translator>>,
    l1: MemoryCache,
    l2: Option<Arc<dyn TranslationCache>>,
    settings: TranslationSettings,
    counters: Counters,
    l2_log: FailureLog,
    l3_log: FailureLog,
}

impl std::fmt::Debug for TranslationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslationService")
            .field("translator", &self.translator.is_some())
            .field("l2", &self.l2.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TranslationService {
    /// `translator` None: no machine translation, every text is served as it is (and no
    /// cache is consulted). `l2` None: the in-process cache alone.
    pub fn new(
        translator: Option<Arc<dyn Translator>>,
        l2: Option<Arc<dyn TranslationCache>>,
        settings: TranslationSettings,
    ) -> Self {
        TranslationService {
            translator,
            l1: MemoryCache::new(settings.l1_max_bytes),
            l2,
            l2_log: FailureLog::new("l2", settings.log_interval),
            l3_log: FailureLog::new("translate", settings.log_interval),
            settings,
            counters: Counters::default(),
        }
    }

    /// The shared cache's state, for the health endpoint: None when there is none. Its calls
    /// are bounded like every other, so a slow Redis answers as down, promptly.
    pub async fn check_cache(&self) -> Option<Result<(), InfraError>> {
        let l2 = self.l2.as_ref()?;
        Some(l2.mget(&["i18n:health".to_string()]).await.map(|_| ()))
    }

    /// Serves source text only: what `stark serve` runs without a translator.
    pub fn source_only() -> Self {
        Self::new(None, None, TranslationSettings::default())
    }

    /// Whether texts are machine-translated at all.
    pub fn is_enabled(&self) -> bool {
        self.translator.is_some()
    }

    pub fn source(&self) -> Lang {
        self.settings.source
    }

    pub fn stats(&self) -> TranslationStats {
        let c = &self.counters;
        TranslationStats {
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            translate_calls: c.translate_calls.load(Ordering::Relaxed),
            l2_failures: c.l2_failures.load(Ordering::Relaxed),
            translate_failures: c.translate_failures.load(Ordering::Relaxed),
            failure_logs: c.failure_logs.load(Ordering::Relaxed),
        }
    }

    /// Empties the in-process tier (benchmarks use it to measure the tiers below).
    pub fn clear_local_cache(&self) {
        self.l1.clear();
    }

    /// Every field of a response in `target`, in order: the stored translation where the
    /// product has one (field by field), else the machine translation of the source text. All
    /// the fields without a stored translation go through one [`Self::translate_many`] call,
    /// so a whole response costs at most one L2 round trip.
    pub async fn localize(&self, target: Lang, fields: &[CatalogText<'_>]) -> Vec<String> {
        let missing: Vec<&str> = fields.iter().filter(|f| f.stored.is_none()).map(|f| f.source).collect();
        let mut machine = self.translate_many(target, &missing).await.into_iter();
        fields
            .iter()
            .map(|f| match f.stored {
                Some(s) => s.to_string(),
                None => machine.next().unwrap_or_else(|| f.source.to_string()),
            })
            .collect()
    }

    /// `text` in `target`; see [`Self::translate_many`].
    pub async fn translate(&self, target: Lang, text: &str) -> String {
        self.translate_many(target, &[text]).await.pop().unwrap_or_default()
    }

    /// Each text in `target`, in order. Never fails: a text that cannot be translated now
    /// (a tier down or slow, a text too big, nothing to translate in it) is served as it is.
    /// A response should make one call with all its texts: the L2 tier is then one round
    /// trip for the whole response.
    pub async fn translate_many(&self, target: Lang, texts: &[&str]) -> Vec<String> {
        let mut out: Vec<Option<String>> = vec![None; texts.len()];
        let Some(translator) = self.translator.as_ref().filter(|_| target != self.settings.source) else {
            return texts.iter().map(|t| t.to_string()).collect();
        };
        // L1. `wanted` holds each distinct missing key once, with the slots it fills.
        let mut wanted: Vec<(String, &str, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, &text) in texts.iter().enumerate() {
            if !self.worth_translating(text) {
                out[i] = Some(text.to_string());
                continue;
            }
            let key = cache_key(target, text);
            if let Some(&w) = index.get(&key) {
                wanted[w].2.push(i);
                continue;
            }
            if let Some(hit) = self.l1.get(&key).await {
                self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
                out[i] = Some(hit.to_string());
                continue;
            }
            index.insert(key.clone(), wanted.len());
            wanted.push((key, text, vec![i]));
        }
        if wanted.is_empty() {
            return fill(out, texts);
        }
        // L2: one round trip for every L1 miss of the response.
        let mut found: Vec<Option<Arc<str>>> = vec![None; wanted.len()];
        if let Some(l2) = &self.l2 {
            let keys: Vec<String> = wanted.iter().map(|(k, _, _)| k.clone()).collect();
            match tokio::time::timeout(self.settings.l2_timeout, l2.mget(&keys)).await {
                Ok(Ok(values)) if values.len() == keys.len() => {
                    for (w, value) in values.into_iter().enumerate() {
                        if let Some(v) = value {
                            self.counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                            let v: Arc<str> = Arc::from(v);
                            self.l1.insert(wanted[w].0.clone(), v.clone(), self.settings.l1_ttl).await;
                            found[w] = Some(v);
                        }
                    }
                }
                Ok(Ok(values)) => {
                    self.l2_failed(&format!("MGET answered {} values for {} keys", values.len(), keys.len()))
                }
                Ok(Err(e)) => self.l2_failed(&e),
                Err(_) => self.l2_failed(&format!("MGET timed out after {:?}", self.settings.l2_timeout)),
            }
        }
        // L3 for what is still missing, a few texts at a time. A miss that another request
        // is already translating waits for that call instead of making its own.
        let misses: Vec<usize> = (0..wanted.len()).filter(|&w| found[w].is_none()).collect();
        let loaded: Vec<(usize, Option<Loaded>)> = futures_util::stream::iter(misses)
            .map(|w| {
                let (key, text, _) = &wanted[w];
                async move { (w, self.load(translator.as_ref(), key.clone(), text, target).await) }
            })
            .buffer_unordered(self.settings.max_concurrent_translations.max(1))
            .collect()
            .await;
        let mut fresh: Vec<(String, String)> = Vec::new();
        for (w, result) in loaded {
            if let Some((text, is_fresh)) = result {
                if is_fresh {
                    fresh.push((wanted[w].0.clone(), text.to_string()));
                }
                found[w] = Some(text);
            }
        }
        // Write back what this request translated (L1 has it already); a failure only costs
        // a later Translate call.
        if let (Some(l2), false) = (&self.l2, fresh.is_empty()) {
            match tokio::time::timeout(self.settings.l2_timeout, l2.set_many(&fresh, self.settings.l2_ttl)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.l2_failed(&e),
                Err(_) => self.l2_failed(&format!("SET timed out after {:?}", self.settings.l2_timeout)),
            }
        }
        for ((_, _, slots), value) in wanted.iter().zip(found) {
            if let Some(v) = value {
                for &i in slots {
                    out[i] = Some(v.to_string());
                }
            }
        }
        fill(out, texts)
    }

    /// One text through L1's coalescing load and the translator. None on failure (nothing
    /// is cached then, so the next request tries again).
    async fn load(&self, translator: &dyn Translator, key: String, text: &str, target: Lang) -> Option<Loaded> {
        let timeout = self.settings.translate_timeout;
        let source = self.settings.source;
        let call = async {
            self.counters.translate_calls.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(timeout, translator.translate(text, source, target)).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("translation timed out after {timeout:?}")),
            }
        };
        match self.l1.get_or_try_insert_with(key, self.settings.l1_ttl, call).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.counters.translate_failures.fetch_add(1, Ordering::Relaxed);
                if self.l3_log.record(&e) {
                    self.counters.failure_logs.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        }
    }

    fn l2_failed(&self, e: &dyn std::fmt::Display) {
        self.counters.l2_failures.fetch_add(1, Ordering::Relaxed);
        if self.l2_log.record(e) {
            self.counters.failure_logs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Empty text, text with no letters (numbers, emoji, punctuation) and oversized text
    /// are served as they are, without a cache lookup or a call.
    fn worth_translating(&self, text: &str) -> bool {
        text.len() <= self.settings.max_text_bytes && text.chars().any(char::is_alphabetic)
    }
}

/// The answer for every slot: its translation, or its source text.
fn fill(out: Vec<Option<String>>, texts: &[&str]) -> Vec<String> {
    out.into_iter().zip(texts).map(|(o, t)| o.unwrap_or_else(|| t.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicBool;

    /// Prefixes the target language; counts calls; can be told to fail or to be slow.
    #[derive(Default)]
    struct Fake {
        calls: AtomicU64,
        fail: AtomicBool,
        delay_ms: AtomicU64,
    }

    #[async_trait]
    impl Translator for Fake {
        async fn translate(&self, text: &str, _source: Lang, target: Lang) -> Result<String, crate::ports::InfraError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            anyhow::ensure!(!self.fail.load(Ordering::SeqCst), "the fake translator is told to fail");
            Ok(format!("[{target}] {text}"))
        }
    }

    fn service(fake: &Arc<Fake>, settings: TranslationSettings) -> TranslationService {
        TranslationService::new(Some(fake.clone() as Arc<dyn Translator>), None, settings)
    }

    #[test]
    fn the_key_is_md5_of_lang_nul_text() {
        // md5("fr\0Hello") computed independently (`printf 'fr\0Hello' | md5sum`).
        assert_eq!(cache_key(Lang::Fr, "Hello"), "i18n:5f55d7ee20599a6fb7765b69ffbd206a");
        assert_ne!(cache_key(Lang::Fr, "Hello"), cache_key(Lang::De, "Hello"));
    }

    #[tokio::test]
    async fn without_a_translator_or_into_the_source_language_text_is_served_as_is() {
        let off = TranslationService::source_only();
        assert_eq!(off.translate_many(Lang::Ja, &["Hello", "World"]).await, vec!["Hello", "World"]);
        let fake = Arc::new(Fake::default());
        let on = service(&fake, TranslationSettings::default());
        assert_eq!(on.translate(Lang::En, "Hello").await, "Hello");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn repeated_and_warm_texts_cost_no_call() {
        let fake = Arc::new(Fake::default());
        let s = service(&fake, TranslationSettings::default());
        let got = s.translate_many(Lang::Fr, &["Suit", "Suit", "Arc reactor", "42", "", "🚀"]).await;
        assert_eq!(got, vec!["[fr] Suit", "[fr] Suit", "[fr] Arc reactor", "42", "", "🚀"]);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        s.translate_many(Lang::Fr, &["Arc reactor", "Suit"]).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        assert_eq!(s.stats().l1_hits, 2);
    }

    #[tokio::test]
    async fn failures_serve_the_source_are_not_cached_and_are_logged_once_per_interval() {
        let fake = Arc::new(Fake::default());
        fake.fail.store(true, Ordering::SeqCst);
        let s = service(&fake, TranslationSettings { log_interval: Duration::from_secs(3600), ..Default::default() });
        for _ in 0..5 {
            assert_eq!(s.translate(Lang::De, "Jarvis").await, "Jarvis");
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 5, "a failure must not be cached");
        let stats = s.stats();
        assert_eq!((stats.translate_failures, stats.failure_logs), (5, 1));
        fake.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.translate(Lang::De, "Jarvis").await, "[de] Jarvis");
    }

    #[tokio::test]
    async fn a_slow_translator_times_out_to_the_source() {
        let fake = Arc::new(Fake::default());
        fake.delay_ms.store(5_000, Ordering::SeqCst);
        let s =
            service(&fake, TranslationSettings { translate_timeout: Duration::from_millis(50), ..Default::default() });
        assert_eq!(s.translate(Lang::Hi, "Friday").await, "Friday");
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_text_make_one_call() {
        let fake = Arc::new(Fake::default());
        fake.delay_ms.store(100, Ordering::SeqCst);
        let s = Arc::new(service(&fake, TranslationSettings::default()));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.translate(Lang::Ja, "Mark 85").await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "[ja] Mark 85");
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stored_translations_come_first_field_by_field() {
        let fake = Arc::new(Fake::default());
        let s = service(&fake, TranslationSettings::default());
        let fields = [
            CatalogText { source: "Mark 85", stored: Some("Marque 85") },
            CatalogText { source: "A suit", stored: None },
            CatalogText { source: "Arc reactor", stored: None },
            CatalogText { source: "Jarvis", stored: Some("Jarvis (FR)") },
        ];
        let got = s.localize(Lang::Fr, &fields).await;
        assert_eq!(got, vec!["Marque 85", "[fr] A suit", "[fr] Arc reactor", "Jarvis (FR)"]);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        // Without a translator the stored ones still win and the rest is the source.
        let off = TranslationService::source_only();
        assert_eq!(off.localize(Lang::Fr, &fields).await, vec!["Marque 85", "A suit", "Arc reactor", "Jarvis (FR)"]);
    }

    #[tokio::test]
    async fn oversized_text_is_served_as_is() {
        let fake = Arc::new(Fake::default());
        let s = service(&fake, TranslationSettings { max_text_bytes: 100, ..Default::default() });
        let big = "a".repeat(101);
        assert_eq!(s.translate(Lang::Es, &big).await, big);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 0);
    }
}
