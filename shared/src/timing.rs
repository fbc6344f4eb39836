//! Where a request's time goes. The handler benchmark runs each request inside [`scope`] and
//! gets back the time spent in each [`Part`]: signatures and MACs, password hashing, and
//! store and queue calls, so that what remains is the handler's own work. Outside a scope
//! (in production) timing a part costs one task-local lookup and reads no clock.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Token signatures, SHA-256 and HMAC.
    Crypto,
    /// Argon2id, including the wait for a hashing permit.
    Hash,
    /// Store and queue calls, including the hop to the blocking pool.
    Io,
}

/// Time spent per part within one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub crypto: Duration,
    pub hash: Duration,
    pub io: Duration,
}

tokio::task_local! {
    static LEDGER: Cell<Spent>;
}

fn add(part: Part, d: Duration) {
    let _ = LEDGER.try_with(|l| {
        let mut s = l.get();
        match part {
            Part::Crypto => s.crypto += d,
            Part::Hash => s.hash += d,
            Part::Io => s.io += d,
        }
        l.set(s);
    });
}

fn counting() -> bool {
    LEDGER.try_with(|_| ()).is_ok()
}

/// Runs `f`, counting its time as `part` when in a scope.
pub fn time<T>(part: Part, f: impl FnOnce() -> T) -> T {
    if !counting() {
        return f();
    }
    let start = Instant::now();
    let out = f();
    add(part, start.elapsed());
    out
}

/// Awaits `fut`, counting its time as `part` when in a scope.
pub async fn time_async<T>(part: Part, fut: impl Future<Output = T>) -> T {
    if !counting() {
        return fut.await;
    }
    let start = Instant::now();
    let out = fut.await;
    add(part, start.elapsed());
    out
}

/// Runs `fut` and returns what it spent in each part. Work it spawns onto other tasks is not
/// counted (the handlers await their store and hash calls directly).
pub async fn scope<T>(fut: impl Future<Output = T>) -> (T, Spent) {
    LEDGER
        .scope(Cell::new(Spent::default()), async move {
            let out = fut.await;
            (out, LEDGER.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_counted_in_a_scope_only() {
        let ((), spent) = scope(async {
            time(Part::Crypto, || std::thread::sleep(Duration::from_millis(2)));
            time_async(Part::Io, tokio::time::sleep(Duration::from_millis(3))).await;
        })
        .await;
        assert!(spent.crypto >= Duration::from_millis(2), "{spent:?}");
        assert!(spent.io >= Duration::from_millis(3), "{spent:?}");
        assert_eq!(spent.hash, Duration::ZERO);
        // Outside a scope the work still runs.
        assert_eq!(time(Part::Hash, || 7), 7);
    }
}
