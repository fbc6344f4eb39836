//! The lifecycle's records in the single table:
//! - the due index: GSI2, sparse, partitioned by due day and shard
//!   (`DUE#<yyyy-mm-dd>#<shard>` / `<due time>#<subscription id>`), written with every write
//!   of a subscription (`commerce::sub_item`); a run queries it day by day, never Scan;
//! - each shard's watermark, the runs and which shards each run finished, under the
//!   `LIFECYCLE` partition (a few dozen writes a day).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use chrono::{DateTime, NaiveDate, Utc};

use super::commerce::from_doc;
use super::{failed_conditions, get_n, get_s, get_ts, key, n, s, ts, ts_string, DynamoStore, Item};
use crate::domain::lifecycle::{due_day, due_shard};
use crate::domain::Subscription;
use crate::ports::*;

const PK: &str = "LIFECYCLE";

/// GSI2's keys for a subscription due at `due`.
pub(super) fn due_keys(sub: &Subscription, due: DateTime<Utc>, shards: u32) -> (String, String) {
    (
        due_pk(due_day(due), due_shard(&sub.subscription_id, shards)),
        format!("{}#{}", ts_string(due), sub.subscription_id),
    )
}

fn due_pk(day: NaiveDate, shard: u32) -> String {
    format!("DUE#{}#{shard:02}", day.format("%Y-%m-%d"))
}

fn run_key(run_id: &str) -> Item {
    key(PK, format!("RUN#{run_id}"))
}

const COUNTS: [&str; 8] = ["renewed", "past_due", "expired", "canceled", "reminders", "low_balance", "emails", "left"];

fn count_values(c: &RunCounts) -> [u64; 8] {
    [c.renewed, c.past_due, c.expired, c.canceled, c.reminders, c.low_balance, c.emails, c.left]
}

fn run_from_item(item: &Item) -> anyhow::Result<LifecycleRun> {
    let count = |name: &str| get_n(item, &format!("c_{name}")).unwrap_or(0) as u64;
    let shards = get_n(item, "shards")? as u32;
    let shards_done = get_n(item, "shards_done").unwrap_or(0) as u32;
    Ok(LifecycleRun {
        run_id: get_s(item, "run_id")?.to_string(),
        now: get_ts(item, "now")?,
        started_at: get_ts(item, "started_at")?,
        finished_at: if shards_done >= shards { get_ts(item, "last_shard_at").ok() } else { None },
        shards,
        shards_done,
        counts: RunCounts {
            renewed: count("renewed"),
            past_due: count("past_due"),
            expired: count("expired"),
            canceled: count("canceled"),
            reminders: count("reminders"),
            low_balance: count("low_balance"),
            emails: count("emails"),
            left: count("left"),
        },
    })
}

#[async_trait]
impl LifecycleStore for DynamoStore {
    fn due_shards(&self) -> u32 {
        self.due_shards
    }

    async fn due_subscriptions(
        &self,
        shard: u32,
        from: NaiveDate,
        now: DateTime<Utc>,
        after: Option<&DueCursor>,
        limit: usize,
    ) -> Result<Vec<Subscription>, InfraError> {
        let after_sk = after.map(|a| format!("{}#{}", ts_string(a.due_at), a.subscription_id));
        // Everything due by `now` sorts at or before this: ids never hold '~'.
        let hi = format!("{}#~", ts_string(now));
        let mut day = after.map_or(from, |a| due_day(a.due_at).max(from));
        let last = due_day(now);
        let mut out = Vec::new();
        while day <= last && out.len() < limit {
            let on_cursor_day = after.is_some_and(|a| due_day(a.due_at) == day);
            let mut start: Option<Item> = None;
            loop {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("GSI2")
                    .expression_attribute_values(":pk", s(due_pk(day, shard)))
                    .expression_attribute_values(":hi", s(&hi))
                    .limit(((limit - out.len()) + 1).min(1000) as i32)
                    .set_exclusive_start_key(start.take());
                q = match (&after_sk, on_cursor_day) {
                    // BETWEEN includes the cursor itself; it is skipped below.
                    (Some(a), true) => q
                        .key_condition_expression("GSI2PK = :pk AND GSI2SK BETWEEN :lo AND :hi")
                        .expression_attribute_values(":lo", s(a)),
                    _ => q.key_condition_expression("GSI2PK = :pk AND GSI2SK <= :hi"),
                };
                let page = q.send().await?;
                for item in page.items.unwrap_or_default() {
                    if on_cursor_day && after_sk.as_deref() == Some(get_s(&item, "GSI2SK")?) {
                        continue;
                    }
                    if out.len() < limit {
                        out.push(from_doc(&item)?);
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if out.len() < limit => start = Some(k),
                    _ => break,
                }
            }
            day = match day.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        Ok(out)
    }

    async fn watermark(&self, shard: u32) -> Result<Option<NaiveDate>, InfraError> {
        let Some(item) = self.get(key(PK, format!("WATERMARK#{shard:02}"))).await? else { return Ok(None) };
        Ok(Some(NaiveDate::parse_from_str(get_s(&item, "day")?, "%Y-%m-%d")?))
    }

    async fn set_watermark(&self, shard: u32, day: NaiveDate) -> Result<(), InfraError> {
        let mut item = key(PK, format!("WATERMARK#{shard:02}"));
        item.insert("day".into(), s(day.format("%Y-%m-%d").to_string()));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await?;
        Ok(())
    }

    async fn start_run(&self, run: &LifecycleRun) -> Result<(), InfraError> {
        let mut item = run_key(&run.run_id);
        item.extend([
            ("run_id".into(), s(&run.run_id)),
            ("now".into(), ts(run.now)),
            ("started_at".into(), ts(run.started_at)),
            ("shards".into(), n(run.shards)),
            ("shards_done".into(), n(0)),
        ]);
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)");
        // A retried schedule finds its run recorded: keep it as it is.
        super::unless_condition_failed(req.send().await)?;
        Ok(())
    }

    async fn finish_shard(
        &self,
        run_id: &str,
        shard: u32,
        counts: &RunCounts,
        at: DateTime<Utc>,
    ) -> Result<(), InfraError> {
        // The shard's marker and the run's sums in one transaction: a shard finished twice
        // (a redelivered message) fails on the marker and adds nothing.
        let marker = self.put(key(PK, format!("RUNSHARD#{run_id}#{shard:02}")), Some("attribute_not_exists(PK)"))?;
        let mut expr = String::from("SET last_shard_at = :at ADD shards_done :one");
        let mut values: Vec<(String, AV)> = vec![(":at".into(), ts(at)), (":one".into(), n(1))];
        for (name, v) in COUNTS.iter().zip(count_values(counts)) {
            expr.push_str(&format!(", c_{name} :{name}"));
            values.push((format!(":{name}"), n(v)));
        }
        let values: Vec<(&str, AV)> = values.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let sums = self.update(run_key(run_id), &expr, Some("attribute_exists(PK)"), &[], values)?;
        match self.transact(vec![marker, sums]).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                // Finished before, or a run nobody started: nothing to add.
                Some(f) if f.iter().any(|x| *x) => Ok(()),
                _ => Err(e.into()),
            },
        }
    }

    async fn run(&self, run_id: &str) -> Result<Option<LifecycleRun>, InfraError> {
        self.get(run_key(run_id)).await?.as_ref().map(run_from_item).transpose()
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<LifecycleRun>, InfraError> {
        let items = self.query_partition(None, PK, Some("RUN#"), false, Some(limit)).await?;
        items.iter().map(run_from_item).collect()
    }
}
