//! Where a request's time goes. The handler benchmark runs each request inside [`scope`] and
//! gets back the time spent in each [`Part`]: signatures and MACs, password hashing, and
//! store and queue calls, so that what remains is the handler's own work. That remainder is
//! also measured as CPU time: the time the request's own polls kept a thread busy outside the
//! parts, which a thread preempted by another process does not inflate. Outside a scope (in
//! production) timing a part costs one task-local lookup and reads no clock.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
    /// CPU time of the scope's own polls outside every part: the handler's own work, without
    /// the time its thread waited to run.
    pub own_cpu: Duration,
}

#[derive(Clone, Copy, Default)]
struct Ledger {
    spent: Spent,
    /// CPU time of all the scope's polls, and of the polls inside a part.
    polls_cpu: Duration,
    parts_cpu: Duration,
    /// Parts being timed around the current poll (a part inside a part counts once).
    depth: u32,
}

tokio::task_local! {
    static LEDGER: Cell<Ledger>;
}

fn update(f: impl FnOnce(&mut Ledger)) {
    let _ = LEDGER.try_with(|l| {
        let mut s = l.get();
        f(&mut s);
        l.set(s);
    });
}

fn add(part: Part, d: Duration) {
    update(|l| match part {
        Part::Crypto => l.spent.crypto += d,
        Part::Hash => l.spent.hash += d,
        Part::Io => l.spent.io += d,
    });
}

fn counting() -> bool {
    LEDGER.try_with(|_| ()).is_ok()
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `poll` as part of a part: its CPU time counts to the parts unless an outer part
/// already counts it.
fn in_part<T>(poll: impl FnOnce() -> T) -> T {
    let mut outer = true;
    update(|l| {
        outer = l.depth == 0;
        l.depth += 1;
    });
    let start = if outer { Some(thread_cpu()) } else { None };
    let out = poll();
    let cpu = start.map(|s| thread_cpu().saturating_sub(s));
    update(|l| {
        l.depth -= 1;
        if let Some(cpu) = cpu {
            l.parts_cpu += cpu;
        }
    });
    out
}

/// Runs `f`, counting its time as `part` when in a scope.
pub fn time<T>(part: Part, f: impl FnOnce() -> T) -> T {
    if !counting() {
        return f();
    }
    let start = Instant::now();
    let out = in_part(f);
    add(part, start.elapsed());
    out
}

/// A future whose every poll runs inside a part.
struct PartPolls<F>(Pin<Box<F>>);

impl<F: Future> Future for PartPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.0.as_mut();
        in_part(|| inner.poll(cx))
    }
}

/// Awaits `fut`, counting its time as `part` when in a scope.
pub async fn time_async<T>(part: Part, fut: impl Future<Output = T>) -> T {
    if !counting() {
        return fut.await;
    }
    let start = Instant::now();
    let out = PartPolls(Box::pin(fut)).await;
    add(part, start.elapsed());
    out
}

/// A future whose polls' CPU time is added up in the ledger.
struct CountedPolls<F>(Pin<Box<F>>);

impl<F: Future> Future for CountedPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu();
        let out = self.0.as_mut().poll(cx);
        let cpu = thread_cpu().saturating_sub(start);
        update(|l| l.polls_cpu += cpu);
        out
    }
}

/// Runs `fut` and returns what it spent in each part. Work it spawns onto other tasks is not
/// counted (the handlers await their store and hash calls directly).
pub async fn scope<T>(fut: impl Future<Output = T>) -> (T, Spent) {
    LEDGER
        .scope(Cell::new(Ledger::default()), async move {
            let out = CountedPolls(Box::pin(fut)).await;
            let l = LEDGER.with(Cell::get);
            (out, Spent { own_cpu: l.polls_cpu.saturating_sub(l.parts_cpu), ..l.spent })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = thread_cpu();
        while thread_cpu() - start < d {}
    }

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

    #[tokio::test]
    async fn own_cpu_is_the_work_outside_the_parts_and_not_the_waiting() {
        let ((), spent) = scope(async {
            spin(Duration::from_millis(4));
            time(Part::Crypto, || spin(Duration::from_millis(6)));
            // A part inside a part: counted once.
            time_async(Part::Io, async {
                time(Part::Crypto, || spin(Duration::from_millis(3)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            })
            .await;
            std::thread::sleep(Duration::from_millis(20)); // waiting, not working
            spin(Duration::from_millis(2));
        })
        .await;
        // 4 + 2 ms of work outside the parts; the 9 ms inside them and the sleeps are not it.
        assert!(spent.own_cpu >= Duration::from_millis(6), "{spent:?}");
        assert!(spent.own_cpu < Duration::from_millis(9), "{spent:?}");
        assert!(spent.io >= Duration::from_millis(23), "{spent:?}");
    }
}
