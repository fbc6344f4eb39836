//! The catalog read from process memory. Products and plans are read on every catalog page
//! and written rarely, so the list of products is kept for a short bound ([`CATALOG_TTL`])
//! in front of whichever store holds it. Every write through this process drops the copy at
//! once (so `stark serve`, one process, never serves a stale catalog after its own writes);
//! a write made by another process (another Lambda, `stark catalog load`) shows here within
//! the bound. Single products are always read from the store, so a purchase, a trial and a
//! compare-and-swap update see the stored version.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Plan, Product, ProductId};
use crate::ports::{CatalogStore, CatalogWriteError, InfraError};

/// How stale the list may be across processes (see the README).
pub const CATALOG_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    /// The list and when the read that made it began.
    list: Option<(Instant, Arc<Vec<Product>>)>,
    /// Raised by every write: a read that began before it must not be kept.
    generation: u64,
}

pub struct CachedCatalog {
    inner: Arc<dyn CatalogStore>,
    ttl: Duration,
    state: Mutex<State>,
    /// One store read at a time refills the list; requests that miss together share it.
    refill: tokio::sync::Mutex<()>,
}

impl CachedCatalog {
    pub fn new(inner: Arc<dyn CatalogStore>, ttl: Duration) -> Self {
        CachedCatalog { inner, ttl, state: Mutex::new(State::default()), refill: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self) -> Option<Arc<Vec<Product>>> {
        let state = self.state();
        let (at, list) = state.list.as_ref()?;
        (at.elapsed() < self.ttl).then(|| list.clone())
    }

    /// Drops the list. Called after every write, whatever its outcome: a write that failed
    /// on a timeout may still have landed.
    fn invalidate(&self) {
        let mut state = self.state();
        state.generation += 1;
        state.list = None;
    }
}

#[async_trait]
impl CatalogStore for CachedCatalog {
    async fn create_product(&self, product: &Product) -> Result<(), CatalogWriteError> {
        let out = self.inner.create_product(product).await;
        self.invalidate();
        out
    }

    async fn update_product(&self, product: &Product, expected: u64) -> Result<bool, InfraError> {
        let out = self.inner.update_product(product, expected).await;
        self.invalidate();
        out
    }

    async fn add_plan(&self, product_id: &ProductId, plan: &Plan) -> Result<(), CatalogWriteError> {
        let out = self.inner.add_plan(product_id, plan).await;
        self.invalidate();
        out
    }

    async fn upsert_product(&self, product: &Product) -> Result<(), InfraError> {
        let out = self.inner.upsert_product(product).await;
        self.invalidate();
        out
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, InfraError> {
        self.inner.product(id).await
    }

    async fn list_products(&self) -> Result<Vec<Product>, InfraError> {
        if let Some(list) = self.fresh() {
            return Ok(list.as_ref().clone());
        }
        let _refill = self.refill.lock().await;
        if let Some(list) = self.fresh() {
            return Ok(list.as_ref().clone());
        }
        let (began, generation) = (Instant::now(), self.state().generation);
        let list = self.inner.list_products().await?;
        let mut state = self.state();
        if state.generation == generation {
            state.list = Some((began, Arc::new(list.clone())));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::{ProductStatus, TextTranslation};
    use std::collections::BTreeMap;

    fn product(id: &str, name: &str) -> Product {
        let now = chrono::Utc::now();
        Product {
            product_id: ProductId::parse(id).unwrap(),
            name: name.into(),
            description: String::new(),
            translations: BTreeMap::<String, TextTranslation>::new(),
            status: ProductStatus::Active,
            owner_id: None,
            created_at: now,
            updated_at: now,
            version: 1,
            plans: Vec::new(),
        }
    }

    fn names(list: &[Product]) -> Vec<&str> {
        list.iter().map(|p| p.name.as_str()).collect()
    }

    #[tokio::test]
    async fn own_writes_show_at_once_and_others_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CatalogStore> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let cached = CachedCatalog::new(store.clone(), Duration::from_millis(300));
        cached.create_product(&product("P-A", "a")).await.unwrap();
        assert_eq!(names(&cached.list_products().await.unwrap()), ["a"]);
        // Another process writes behind the cache: not seen within the bound ...
        store.upsert_product(&product("P-B", "b")).await.unwrap();
        assert_eq!(names(&cached.list_products().await.unwrap()), ["a"]);
        // ... but a single product is read from the store ...
        assert!(cached.product(&ProductId::parse("P-B").unwrap()).await.unwrap().is_some());
        // ... and a write through this process drops the list at once.
        cached.upsert_product(&product("P-C", "c")).await.unwrap();
        assert_eq!(names(&cached.list_products().await.unwrap()), ["a", "b", "c"]);
        store.upsert_product(&product("P-D", "d")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(names(&cached.list_products().await.unwrap()), ["a", "b", "c", "d"]);
    }

    /// A store whose list reads wait for a signal, to hold one open across a write.
    struct Slow {
        inner: SqliteStore,
        go: tokio::sync::Semaphore,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl CatalogStore for Slow {
        async fn create_product(&self, p: &Product) -> Result<(), CatalogWriteError> {
            self.inner.create_product(p).await
        }
        async fn update_product(&self, p: &Product, expected: u64) -> Result<bool, InfraError> {
            self.inner.update_product(p, expected).await
        }
        async fn add_plan(&self, id: &ProductId, plan: &Plan) -> Result<(), CatalogWriteError> {
            self.inner.add_plan(id, plan).await
        }
        async fn upsert_product(&self, p: &Product) -> Result<(), InfraError> {
            self.inner.upsert_product(p).await
        }
        async fn product(&self, id: &ProductId) -> Result<Option<Product>, InfraError> {
            self.inner.product(id).await
        }
        async fn list_products(&self) -> Result<Vec<Product>, InfraError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let list = self.inner.list_products().await;
            self.go.acquire().await.map_err(anyhow::Error::from)?.forget();
            list
        }
    }

    #[tokio::test]
    async fn misses_share_one_read_and_a_read_older_than_a_write_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let slow = Arc::new(Slow {
            inner: SqliteStore::open(&dir.path().join("s.db")).unwrap(),
            go: tokio::sync::Semaphore::new(0),
            reads: Default::default(),
        });
        let cached = Arc::new(CachedCatalog::new(slow.clone(), Duration::from_secs(60)));
        slow.inner.upsert_product(&product("P-A", "a")).await.unwrap();
        let readers: Vec<_> = (0..5)
            .map(|_| {
                let c = cached.clone();
                tokio::spawn(async move { c.list_products().await.unwrap() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The read in flight saw only A; B is written (through the cache) before it returns.
        cached.upsert_product(&product("P-B", "b")).await.unwrap();
        slow.go.add_permits(1);
        // The readers that waited behind the first read take the next one, which sees B.
        tokio::time::sleep(Duration::from_millis(50)).await;
        slow.go.add_permits(1);
        let mut seen = Vec::new();
        for r in readers {
            seen.push(names(&r.await.unwrap()).join(","));
        }
        assert_eq!(seen.iter().filter(|s| *s == "a").count(), 1, "{seen:?}");
        assert_eq!(seen.iter().filter(|s| *s == "a,b").count(), 4, "{seen:?}");
        assert_eq!(slow.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The second read is kept: no store read now.
        slow.go.add_permits(1);
        assert_eq!(names(&cached.list_products().await.unwrap()), ["a", "b"]);
        assert_eq!(slow.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
