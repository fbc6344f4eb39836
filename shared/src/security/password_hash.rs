//! Argon2id password hashing. The PHC string carries the algorithm and its parameters, so
//! it doubles as the scheme tag: a hash made with older parameters is re-hashed on the next
//! successful login, and raising the cost needs no migration.
//!
//! Memory: each hash needs `m_kib` KiB of working blocks (19 MiB at production cost). They
//! are not allocated per hash: glibc's malloc raises its mmap threshold after the first such
//! block is freed, then serves later ones from per-thread arenas that it never gives back,
//! and `stark serve` grew from 30 MB to 2.5 GB after ~400 logins that way. Instead each
//! hashing permit (one per core) has one block buffer, made on first use and reused by every
//! hash run under a permit, so the memory is bounded by the number of permits. The hashes run
//! on threads of their own (one per permit) at a lower priority than the rest of the process.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use std::sync::{Arc, Mutex, OnceLock};

use crate::domain::{Password, PasswordHash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl HashCost {
    /// The contract's parameters: m=19456 KiB, t=2, p=1.
    pub const PRODUCTION: HashCost = HashCost { m_kib: 19456, t: 2, p: 1 };
    /// Cheap parameters for tests that are not about hashing cost.
    pub const TEST: HashCost = HashCost { m_kib: 64, t: 1, p: 1 };
}

/// The hash of a random 64-character password that was thrown away after hashing: nothing can
/// match it, and checking against it costs exactly what checking a real production hash costs.
pub const PRODUCTION_DUMMY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$NZS5x9H8iFBliHvd49AQ2A$p45nELRf4y41mv1fw4LRUTO/SHdCEMNxDv+pupdL6kc";

/// The working memory of one hash at a time. Blocks left from an earlier hash are not
/// cleared: argon2 overwrites every block it reads before reading it, and what they hold is
/// derived from a password by the very function whose output is the stored hash.
type Blocks = Vec<Block>;

/// A hash to run on a hashing thread, with the buffer it was given.
type Job = Box<dyn FnOnce() + Send>;

/// How much hashing threads yield to the rest of the process (`nice`, 0 to 19). A login is
/// 30 ms of argon2 around about a millisecond of store calls and token work; at the same
/// priority, the scheduler shares a core between a hash and that millisecond in time slices
/// of several milliseconds, so on two cores with two hashes running every other request
/// waited behind them. At 10, whatever wakes up for a request runs first and the hashes take
/// the rest (a nice-10 thread still gets about a tenth of a core against a busy nice-0 one).
const HASHING_NICE: i32 = 10;

/// One thread per permit, started on the first hash, and one block buffer per permit, made
/// on first use: at most `n` hashes run at a time, and the memory is at most `n` buffers
/// however many hashes are asked for. A buffer goes with the job to whichever thread takes
/// it, so a process hashing one password at a time (a Lambda) keeps one buffer, not `n`.
struct Permits {
    n: usize,
    gate: Arc<tokio::sync::Semaphore>,
    jobs: OnceLock<std::sync::mpsc::Sender<Job>>,
    /// Buffers not in use; never more than the number of permits exist.
    free: Arc<Mutex<Vec<Blocks>>>,
}

impl Permits {
    fn new(n: usize) -> Self {
        Permits {
            n,
            gate: Arc::new(tokio::sync::Semaphore::new(n)),
            jobs: OnceLock::new(),
            free: Arc::new(Mutex::new(Vec::with_capacity(n))),
        }
    }

    fn jobs(&self) -> &std::sync::mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.n {
                let rx = rx.clone();
                // A thread that cannot be started leaves the others; with none, the
                // receiver is gone and every hash answers an error.
                let _ = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                    lower_priority();
                    loop {
                        let next = { rx.lock().unwrap_or_else(|p| p.into_inner()).recv() };
                        let Ok(job) = next else { return };
                        job();
                    }
                });
            }
            tx
        })
    }

    /// Runs `f` on a hashing thread with a buffer of at least `blocks` blocks, under a
    /// permit. The permit goes with the job, so a request dropped while its hash runs does
    /// not let another hash start beside it.
    async fn run<T: Send + 'static>(
        &self,
        blocks: usize,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let permit = self.gate.clone().acquire_owned().await?;
        let free = self.free.clone();
        let mut buffer = free.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if buffer.len() < blocks {
                // First use of this permit's buffer, or the cost went up: grow it once, and
                // keep it. A hash stored at a lower cost uses the front of it.
                buffer.resize(blocks, Block::default());
            }
            let out = f(&mut buffer[..blocks]);
            free.lock().unwrap_or_else(|p| p.into_inner()).push(buffer);
            drop(permit);
            let _ = tx.send(out);
        });
        self.jobs().send(job).map_err(|_| anyhow::anyhow!("no hashing thread is running"))?;
        rx.await.map_err(|_| anyhow::anyhow!("a hashing thread stopped in the middle of a hash"))
    }
}

/// Lowers the calling thread's scheduling priority to [`HASHING_NICE`]; on Linux the nice
/// value is per thread. Without permission it stays as it was.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority reads no memory of ours; who = 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS as _, 0, HASHING_NICE);
    }
}

#[derive(Clone)]
pub struct PasswordHasherService {
    cost: HashCost,
    /// A hash of a random password, checked against when the account does not exist so that
    /// an unknown email costs the same work as a wrong password. At production cost it is a
    /// constant ([`PRODUCTION_DUMMY`]), so a cold start neither pays for making one nor makes
    /// its first unknown-email login slower than a wrong password; other costs make one on
    /// first need.
    dummy: Arc<OnceLock<PasswordHash>>,
    /// One per core: a flood of logins queues instead of exhausting CPU or memory.
    permits: Arc<Permits>,
}

impl std::fmt::Debug for PasswordHasherService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasherService").field("cost", &self.cost).finish()
    }
}

fn params(cost: HashCost) -> anyhow::Result<Params> {
    Params::new(cost.m_kib, cost.t, cost.p, None).map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))
}

fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    salt
}

/// Hashes into `memory` (at least `params.block_count()` blocks) with a fresh salt.
fn hash_in(params: &Params, password: &str, memory: &mut [Block]) -> anyhow::Result<PasswordHash> {
    let salt = random_salt();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("argon2 output: {e}"))?),
    };
    Ok(PasswordHash(phc.to_string()))
}

/// One hash with its own memory (the benchmarks, tests and `stark` ops commands).
pub fn hash_with(cost: HashCost, password: &str) -> anyhow::Result<PasswordHash> {
    let params = params(cost)?;
    let mut memory = vec![Block::default(); params.block_count()];
    hash_in(&params, password, &mut memory)
}

/// A stored hash, parsed: what checking a password against it takes.
struct Stored {
    argon: Argon2<'static>,
    cost: Option<HashCost>,
    is_argon2id: bool,
    blocks: usize,
    salt: Salt,
    expected: Output,
}

impl Stored {
    /// None for anything that is not a well-formed argon2 PHC string: it matches nothing.
    fn parse(phc: &str) -> Option<Stored> {
        let parsed = Phc::new(phc).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
        let version = parsed.version.map_or(Ok(Version::default()), Version::try_from).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        let cost = Some(HashCost { m_kib: params.m_cost(), t: params.t_cost(), p: params.p_cost() });
        Some(Stored {
            blocks: params.block_count(),
            argon: Argon2::new(algorithm, version, params),
            cost,
            is_argon2id: algorithm == Algorithm::Argon2id,
            salt: parsed.salt?,
            expected: parsed.hash?,
        })
    }

    fn matches(&self, password: &str, memory: &mut [Block]) -> bool {
        let mut out = vec![0u8; self.expected.len()];
        if self.argon.hash_password_into_with_memory(password.as_bytes(), &self.salt, &mut out, memory).is_err() {
            return false;
        }
        // Output's equality is constant-time.
        Output::new(&out).is_ok_and(|computed| computed == self.expected)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match { needs_rehash: bool },
}

/// The most memory a stored hash may ask for: four times the production cost. A hash beyond
/// it is not ours, and checking it would grow a permit's buffer for good.
const MAX_STORED_M_KIB: u32 = 4 * HashCost::PRODUCTION.m_kib;

impl PasswordHasherService {
    pub fn new(cost: HashCost) -> anyhow::Result<Self> {
        // Fail at start-up, not at the first login, if the parameters are unusable.
        params(cost)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy = OnceLock::new();
        if cost == HashCost::PRODUCTION {
            let _ = dummy.set(PasswordHash(PRODUCTION_DUMMY.to_string()));
        }
        Ok(PasswordHasherService { cost, dummy: Arc::new(dummy), permits: Arc::new(Permits::new(cores)) })
    }

    /// The dummy hash; at a cost other than production's it is made on first need.
    async fn dummy(&self) -> anyhow::Result<PasswordHash> {
        if let Some(h) = self.dummy.get() {
            return Ok(h.clone());
        }
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let fresh = self.hash_text(hex::encode(random)).await?;
        Ok(self.dummy.get_or_init(|| fresh).clone())
    }

    async fn hash_text(&self, password: String) -> anyhow::Result<PasswordHash> {
        let params = params(self.cost)?;
        self.permits.run(params.block_count(), move |memory| hash_in(&params, &password, memory)).await?
    }

    /// Hashes on a hashing thread: argon2id at production cost takes tens of milliseconds.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        crate::timing::time_async(crate::timing::Part::Hash, self.hash_text(password.expose().to_string())).await
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no account.
    pub async fn verify(&self, password: &Password, stored: Option<&PasswordHash>) -> anyhow::Result<Verdict> {
        crate::timing::time_async(crate::timing::Part::Hash, self.verify_inner(password, stored)).await
    }

    async fn verify_inner(&self, password: &Password, stored: Option<&PasswordHash>) -> anyhow::Result<Verdict> {
        let is_real = stored.is_some();
        let hash = match stored {
            Some(h) => h.clone(),
            None => self.dummy().await?,
        };
        let Some(parsed) = Stored::parse(&hash.0).filter(|s| s.cost.is_some_and(|c| c.m_kib <= MAX_STORED_M_KIB))
        else {
            return Ok(Verdict::Mismatch);
        };
        let needs_rehash = !parsed.is_argon2id || parsed.cost != Some(self.cost);
        let pw = password.expose().to_string();
        let ok = self.permits.run(parsed.blocks, move |memory| parsed.matches(&pw, memory)).await?;
        if !ok || !is_real {
            return Ok(Verdict::Mismatch);
        }
        Ok(Verdict::Match { needs_rehash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_flags_old_parameters() {
        let pw = Password::parse("correct horse").unwrap();
        let old = hash_with(HashCost { m_kib: 32, t: 1, p: 1 }, pw.expose()).unwrap();
        let svc = PasswordHasherService::new(HashCost::TEST).unwrap();
        assert_eq!(svc.verify(&pw, Some(&old)).await.unwrap(), Verdict::Match { needs_rehash: true });
        let fresh = svc.hash(&pw).await.unwrap();
        assert!(fresh.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(svc.verify(&pw, Some(&fresh)).await.unwrap(), Verdict::Match { needs_rehash: false });
        let wrong = Password::parse("wrong horse").unwrap();
        assert_eq!(svc.verify(&wrong, Some(&fresh)).await.unwrap(), Verdict::Mismatch);
        // No account: the dummy never matches, even for its own (unknown) password.
        assert_eq!(svc.verify(&pw, None).await.unwrap(), Verdict::Mismatch);
        // Garbage where a hash should be matches nothing.
        assert_eq!(svc.verify(&pw, Some(&PasswordHash("not a hash".into()))).await.unwrap(), Verdict::Mismatch);
    }

    #[test]
    fn hashes_are_the_argon2_crates_own() {
        // Made in our reused memory, checked by the crate's own verifier, and the other way
        // round: the stored format is unchanged.
        use argon2::{PasswordHasher, PasswordVerifier};
        let ours = hash_with(HashCost::TEST, "correct horse").unwrap();
        let phc = Phc::new(&ours.0).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &phc).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse", &phc).is_err());
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(HashCost::TEST).unwrap())
            .hash_password_with_salt(b"correct horse", &random_salt())
            .unwrap()
            .to_string();
        let stored = Stored::parse(&theirs).unwrap();
        let mut memory = vec![Block::default(); stored.blocks];
        assert!(stored.matches("correct horse", &mut memory));
        assert!(!stored.matches("wrong horse", &mut memory));
    }

    #[tokio::test]
    async fn a_larger_stored_cost_grows_a_buffer_and_a_smaller_uses_its_front() {
        let svc = PasswordHasherService::new(HashCost::TEST).unwrap();
        let pw = Password::parse("correct horse").unwrap();
        let big = hash_with(HashCost { m_kib: 256, t: 1, p: 1 }, pw.expose()).unwrap();
        let small = svc.hash(&pw).await.unwrap();
        for _ in 0..3 {
            assert_eq!(svc.verify(&pw, Some(&big)).await.unwrap(), Verdict::Match { needs_rehash: true });
            assert_eq!(svc.verify(&pw, Some(&small)).await.unwrap(), Verdict::Match { needs_rehash: false });
        }
        let buffers = svc.permits.free.lock().unwrap();
        assert!(buffers.len() <= std::thread::available_parallelism().map_or(2, |n| n.get()));
        assert!(buffers.iter().any(|b| b.len() == 256), "{:?}", buffers.iter().map(Vec::len).collect::<Vec<_>>());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_their_own_threads_at_a_lower_priority() {
        let svc = PasswordHasherService::new(HashCost::TEST).unwrap();
        svc.hash(&Password::parse("correct horse").unwrap()).await.unwrap();
        // /proc/self/task/TID/stat: "tid (comm) state ..."; the nice value is field 19.
        let nice: Vec<i64> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .filter(|stat| stat.contains("(argon2-"))
            .map(|stat| stat.rsplit_once(')').unwrap().1.split_whitespace().nth(16).unwrap().parse().unwrap())
            .collect();
        assert!(!nice.is_empty(), "no argon2 thread");
        assert!(nice.iter().all(|&n| n == i64::from(HASHING_NICE)), "{nice:?}");
    }

    #[tokio::test]
    async fn a_stored_hash_asking_for_too_much_memory_matches_nothing() {
        let svc = PasswordHasherService::new(HashCost::TEST).unwrap();
        let pw = Password::parse("correct horse").unwrap();
        let huge = PasswordHash(format!(
            "$argon2id$v=19$m={},t=1,p=1$NZS5x9H8iFBliHvd49AQ2A$p45nELRf4y41mv1fw4LRUTO/SHdCEMNxDv+pupdL6kc",
            MAX_STORED_M_KIB + 1
        ));
        assert_eq!(svc.verify(&pw, Some(&huge)).await.unwrap(), Verdict::Mismatch);
    }

    #[test]
    fn the_production_dummy_has_the_production_parameters() {
        let phc = Phc::new(PRODUCTION_DUMMY).unwrap();
        let p = Params::try_from(&phc).unwrap();
        assert_eq!(phc.algorithm.as_str(), "argon2id");
        assert_eq!(HashCost { m_kib: p.m_cost(), t: p.t_cost(), p: p.p_cost() }, HashCost::PRODUCTION);
    }

    #[tokio::test]
    async fn production_parameters_are_the_contracts() {
        let svc = PasswordHasherService::new(HashCost::PRODUCTION).unwrap();
        let pw = Password::parse("correct horse").unwrap();
        let h = svc.hash(&pw).await.unwrap();
        assert!(h.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", h.0);
        assert_eq!(svc.verify(&pw, Some(&h)).await.unwrap(), Verdict::Match { needs_rehash: false });
    }
}
