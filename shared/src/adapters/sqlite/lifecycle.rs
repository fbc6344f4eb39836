//! The lifecycle's records on SQLite: the due index is two columns of `subscriptions` with a
//! partial index on (shard, due time), so a run reads only what is due; watermarks and runs
//! are small tables of their own. The embedded store also deletes here what DynamoDB's TTL
//! deletes on AWS.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::commerce::{docs, from_doc, to_doc};
use super::{ts, Cached, SqliteStore};
use crate::domain::lifecycle::due_shard;
use crate::domain::Subscription;
use crate::ports::*;

pub(super) const SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS subscriptions_due ON subscriptions (due_shard, due_at, subscription_id)
    WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS lifecycle_watermarks (
    shard INTEGER PRIMARY KEY,
    day TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lifecycle_runs (
    run_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lifecycle_run_shards (
    run_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    PRIMARY KEY (run_id, shard)
);
CREATE INDEX IF NOT EXISTS otps_by_expiry ON otps (expires_at);
CREATE INDEX IF NOT EXISTS throttle_by_expiry ON throttle (expires_at);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX IF NOT EXISTS refresh_families_by_expiry ON refresh_families (expires_at);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
CREATE INDEX IF NOT EXISTS email_log_by_expiry ON email_log (keep_until);
"#;

/// A database made before the due index has no due columns: add them and index every
/// subscription once. Runs at open, before `SCHEMA`.
pub(super) fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let has_due: bool =
        c.prepare_cached("SELECT 1 FROM pragma_table_info('subscriptions') WHERE name = 'due_at'")?.exists([])?;
    if has_due {
        return Ok(());
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "ALTER TABLE subscriptions ADD COLUMN due_at TEXT; ALTER TABLE subscriptions ADD COLUMN due_shard INTEGER;",
    )?;
    let subs: Vec<Subscription> = docs(&tx, "SELECT doc FROM subscriptions", [])?;
    for s in subs {
        tx.exec(
            "UPDATE subscriptions SET due_at = ?2, due_shard = ?3 WHERE subscription_id = ?1",
            params![s.subscription_id, s.next_due().map(ts), due_shard(&s.subscription_id, SHARDS)],
        )?;
    }
    tx.commit()
}

/// One index on the due time serves every day and has no hot partition to spread: one shard.
pub(super) const SHARDS: u32 = 1;

fn day_string(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn load_run(c: &Connection, run_id: &str) -> rusqlite::Result<Option<LifecycleRun>> {
    c.row("SELECT doc FROM lifecycle_runs WHERE run_id = ?1", [run_id], |r| r.get::<_, String>(0))
        .optional()?
        .map(from_doc)
        .transpose()
}

#[async_trait]
impl LifecycleStore for SqliteStore {
    fn due_shards(&self) -> u32 {
        SHARDS
    }

    async fn due_subscriptions(
        &self,
        shard: u32,
        _from: NaiveDate,
        now: DateTime<Utc>,
        after: Option<&DueCursor>,
        limit: usize,
    ) -> Result<Vec<Subscription>, InfraError> {
        // One index covers every day, so the watermark is not needed to bound the read.
        let (after_at, after_id) =
            after.map_or((String::new(), String::new()), |a| (ts(a.due_at), a.subscription_id.clone()));
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM subscriptions WHERE due_shard = ?1 AND due_at IS NOT NULL AND due_at <= ?2 \
                 AND (due_at, subscription_id) > (?3, ?4) ORDER BY due_at, subscription_id LIMIT ?5",
                params![shard, ts(now), after_at, after_id, limit as i64],
            )
        })
        .await
    }

    async fn watermark(&self, shard: u32) -> Result<Option<NaiveDate>, InfraError> {
        let day: Option<String> = self
            .run(move |c| {
                c.row("SELECT day FROM lifecycle_watermarks WHERE shard = ?1", [shard], |r| r.get(0)).optional()
            })
            .await?;
        Ok(day.map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d")).transpose()?)
    }

    async fn set_watermark(&self, shard: u32, day: NaiveDate) -> Result<(), InfraError> {
        self.run(move |c| {
            c.exec(
                "INSERT OR REPLACE INTO lifecycle_watermarks (shard, day) VALUES (?1, ?2)",
                params![shard, day_string(day)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn start_run(&self, run: &LifecycleRun) -> Result<(), InfraError> {
        let run = run.clone();
        self.run(move |c| {
            c.exec(
                "INSERT OR IGNORE INTO lifecycle_runs (run_id, doc) VALUES (?1, ?2)",
                params![run.run_id, to_doc(&run)?],
            )
            .map(|_| ())
        })
        .await
    }

    async fn finish_shard(
        &self,
        run_id: &str,
        shard: u32,
        counts: &RunCounts,
        at: DateTime<Utc>,
    ) -> Result<(), InfraError> {
        let (run_id, counts) = (run_id.to_string(), *counts);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let first = tx.exec(
                "INSERT OR IGNORE INTO lifecycle_run_shards (run_id, shard) VALUES (?1, ?2)",
                params![run_id, shard],
            )? == 1;
            let Some(mut run) = load_run(&tx, &run_id)? else { return Ok(()) };
            if !first {
                return Ok(());
            }
            run.counts.add(&counts);
            run.shards_done += 1;
            if run.shards_done >= run.shards {
                run.finished_at = Some(at);
            }
            tx.exec("UPDATE lifecycle_runs SET doc = ?2 WHERE run_id = ?1", params![run_id, to_doc(&run)?])?;
            tx.commit()
        })
        .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<LifecycleRun>, InfraError> {
        let id = run_id.to_string();
        self.run(move |c| load_run(c, &id)).await
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<LifecycleRun>, InfraError> {
        // Run ids are UUIDv7 or time-stamped event ids: newest first is id order only for the
        // former, so order by the run's own start.
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM lifecycle_runs ORDER BY json_extract(doc, '$.started_at') DESC, run_id DESC LIMIT ?1",
                [limit as i64],
            )
        })
        .await
    }
}

/// Each table the embedded store expires itself, and the column that says when.
const EXPIRING: [(&str, &str); 6] = [
    ("otps", "expires_at"),
    ("throttle", "expires_at"),
    ("refresh_tokens", "expires_at"),
    ("refresh_families", "expires_at"),
    ("idempotency", "expires_at"),
    ("email_log", "keep_until"),
];

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn purge_expired(&self, now: DateTime<Utc>, batch: usize) -> Result<u64, InfraError> {
        let mut total = 0u64;
        for (table, column) in EXPIRING {
            // Bounded batches, each its own short transaction, so a large backlog never holds
            // the write lock for long.
            loop {
                let n = self
                    .run(move |c| {
                        c.exec(
                            &format!(
                                "DELETE FROM {table} WHERE rowid IN \
                                 (SELECT rowid FROM {table} WHERE {column} < ?1 LIMIT ?2)"
                            ),
                            params![ts(now), batch as i64],
                        )
                    })
                    .await?;
                total += n as u64;
                if n < batch {
                    break;
                }
            }
        }
        Ok(total)
    }
}
