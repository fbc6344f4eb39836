//! Translation-layer benchmarks (bench profile = release), in process: the per-response cost
//! of translating a response of 20 catalog strings on an L1 hit, on an L2 hit (one MGET on
//! the real redis-server that ./scripts/bench makes sure answers) and on a miss (Amazon
//! Translate adapter through the AWS SDK against the local TranslateText server), and the
//! number of Translate calls for 1,000 requests for one catalog across the six languages.
//! Run with `cargo bench -p stark-cli --bench i18n` (needs STARK_TEST_REDIS_URL); results go
//! into BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use stark::adapters::amazon_translate::AmazonTranslate;
use stark::adapters::redis_cache::RedisCache;
use stark::i18n::{Lang, TranslationService, TranslationSettings};
use stark::ports::{TranslationCache, Translator};

#[path = "../../shared/tests/support/fake_translate.rs"]
mod fake_translate;
#[path = "../../shared/tests/support/redis_server.rs"]
mod redis_server;

/// Strings in one response: a catalog page of 10 products, name and description each.
const STRINGS: usize = 20;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A catalog page: names and descriptions of realistic length, unique to this run so that
/// the shared Redis holds nothing for them yet.
fn catalog(run: &str, page: usize) -> Vec<String> {
    (0..STRINGS / 2)
        .flat_map(|i| {
            [
                format!("Mark {page}-{i} Armour ({run})"),
                format!(
                    "A nanotech suit {page}-{i} that folds into a briefcase, flies at Mach 3 and talks back \
                     politely. Includes an arc reactor, two repulsors and a year of support ({run})."
                ),
            ]
        })
        .collect()
}

fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

fn service(fake: &fake_translate::FakeTranslate, redis: &Arc<RedisCache>) -> Arc<TranslationService> {
    let translator: Arc<dyn Translator> = Arc::new(AmazonTranslate::from_conf(fake.config()));
    let l2: Arc<dyn TranslationCache> = redis.clone();
    Arc::new(TranslationService::new(Some(translator), Some(l2), TranslationSettings::default()))
}

/// Runs `once` `n` times after `warmup` untimed runs; per-run latencies in µs, sorted.
async fn measure<F: AsyncFnMut(usize)>(n: usize, warmup: usize, mut once: F, untimed: impl Fn()) -> Vec<f64> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..warmup + n {
        untimed();
        let t = Instant::now();
        once(i).await;
        if i >= warmup {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    lat.sort_by(f64::total_cmp);
    lat
}

fn report(what: &str, lat: &[f64]) -> f64 {
    let p50 = pct(lat, 0.5);
    println!(
        "{what} (n={}): p50 {p50:.1} µs, p99 {:.1} µs per response; {:.2} µs per string",
        lat.len(),
        pct(lat, 0.99),
        p50 / STRINGS as f64
    );
    p50
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "## translation benchmarks ({} logical CPUs, {STRINGS} strings per response)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    rt.block_on(async {
        let fake = fake_translate::FakeTranslate::start().await;
        let redis = Arc::new(RedisCache::new(&redis_server::shared_url(), Duration::from_millis(50)).unwrap());
        let run = uuid::Uuid::new_v4().simple().to_string();

        // L1 hit: the same page again in one process.
        let s = service(&fake, &redis);
        let page = catalog(&run, 0);
        s.translate_many(Lang::Fr, &refs(&page)).await;
        let calls = fake.calls();
        let l1 = measure(20_000, 1_000, async |_| drop(s.translate_many(Lang::Fr, &refs(&page)).await), || {}).await;
        assert_eq!(fake.calls(), calls, "an L1 hit called Translate");
        let l1 = report("L1 hit", &l1);

        // L2 hit: the in-process tier emptied before each response; one MGET for the 20.
        let l2 = measure(
            2_000,
            100,
            async |_| drop(s.translate_many(Lang::Fr, &refs(&page)).await),
            || s.clear_local_cache(),
        )
        .await;
        assert_eq!(fake.calls(), calls, "an L2 hit called Translate");
        let l2 = report("L2 hit (one MGET, real redis-server on loopback)", &l2);

        // Miss: a page nobody has seen, in each response. One MGET, 20 Translate calls
        // (8 at a time) against the local server, one SET pipeline.
        let pages: Vec<Vec<String>> = (0..330).map(|p| catalog(&run, 1 + p)).collect();
        let before = fake.calls();
        let miss = measure(300, 30, async |i| drop(s.translate_many(Lang::De, &refs(&pages[i])).await), || {}).await;
        assert_eq!(fake.calls() - before, 330 * STRINGS, "one Translate call per distinct miss");
        let miss = report("miss (MGET + 20 TranslateText on the local fake + SET pipeline)", &miss);
        println!(
            "ratios (p50): L2 hit / L1 hit = {:.0}x, miss / L1 hit = {:.0}x, miss / L2 hit = {:.1}x",
            l2 / l1,
            miss / l1,
            miss / l2
        );
        println!("(a real TranslateText call takes tens to hundreds of ms; the fake answers at once)\n");

        // 1,000 requests for one catalog page across the six languages, 50 in flight at a
        // time, on a cold process and a cold Redis (texts unique to this run).
        let page = Arc::new(catalog(&format!("{run}-load"), 0));
        let before = fake.calls();
        let cold = service(&fake, &redis);
        let t = Instant::now();
        for batch in 0..20 {
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let (cold, page) = (cold.clone(), page.clone());
                    let lang = Lang::ALL[(batch * 50 + i) % Lang::ALL.len()];
                    tokio::spawn(async move { cold.translate_many(lang, &refs(&page)).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let calls = fake.calls() - before;
        let distinct = STRINGS * (Lang::ALL.len() - 1);
        println!(
            "1,000 requests x {STRINGS} strings, six languages round-robin, 50 concurrent, cold L1 and L2: \
             {calls} Translate calls (distinct (text, non-English language) pairs: {distinct}; English is served as written), {:.0} requests/s",
            1000.0 / secs
        );
        assert_eq!(calls, distinct);
        // The same 1,000 requests on another process (fresh L1, warm Redis).
        let before = fake.calls();
        let warm = service(&fake, &redis);
        for i in 0..1000 {
            warm.translate_many(Lang::ALL[i % Lang::ALL.len()], &refs(&page)).await;
        }
        println!(
            "the same 1,000 requests on a second process (fresh L1, warm Redis): {} Translate calls, {} L2 hits",
            fake.calls() - before,
            warm.stats().l2_hits
        );
    });
}
