//! LifecycleStore on every adapter: the due index (sparse, by due time, paged, across the
//! shards), the watermarks, and runs whose shards count once. Plus the embedded store's
//! housekeeping, which stands in for DynamoDB's TTL.

use chrono::{DateTime, Duration, Utc};

use stark::app::Stores;
use stark::domain::*;
use stark::ports::*;

fn t0() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().unwrap()
}

/// An auto-renewing monthly subscription whose period ends at `end`: due 3 days before.
fn sub(end: DateTime<Utc>) -> Subscription {
    Subscription {
        subscription_id: uuid::Uuid::now_v7().to_string(),
        user_id: uuid::Uuid::now_v7().to_string(),
        user_email: Email::parse("due@stark.example").unwrap(),
        product_id: ProductId::parse("DUE-1").unwrap(),
        plan_id: PlanId::parse("MONTHLY").unwrap(),
        status: SubStatus::Active,
        current_period_start: end - Duration::days(30),
        current_period_end: end,
        anchor: end - Duration::days(30),
        period_index: 0,
        auto_renew: true,
        scheduled_plan_id: None,
        marks: Default::default(),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

async fn put(stores: &Stores, s: &Subscription, expected: Option<u64>) {
    let c = Commit { subscription: Some((s.clone(), expected)), ..Commit::default() };
    stores.subscriptions.commit(&c).await.unwrap();
}

/// Everything due by `now`, over every shard, `limit` at a time.
async fn all_due(stores: &Stores, now: DateTime<Utc>, limit: usize) -> Vec<Subscription> {
    let from = (now - Duration::days(6)).date_naive();
    let mut out = Vec::new();
    for shard in 0..stores.lifecycle.due_shards() {
        let mut after: Option<DueCursor> = None;
        let mut previous: Option<(DateTime<Utc>, String)> = None;
        loop {
            let page = stores.lifecycle.due_subscriptions(shard, from, now, after.as_ref(), limit).await.unwrap();
            assert!(page.len() <= limit);
            for s in &page {
                let key = (s.next_due().unwrap(), s.subscription_id.clone());
                assert!(previous.as_ref().is_none_or(|p| *p < key), "pages come by due time, then id");
                previous = Some(key);
            }
            let Some(last) = page.last() else { break };
            after = Some(DueCursor { due_at: last.next_due().unwrap(), subscription_id: last.subscription_id.clone() });
            out.extend(page);
        }
    }
    out.sort_by_key(|s| s.subscription_id.clone());
    out
}

contract!(
    the_due_index_lists_live_subscriptions_due_by_now_across_days_and_shards,
    a_write_moves_a_subscription_in_the_due_index_and_an_ended_one_leaves_it,
    watermarks_are_kept_per_shard,
    a_run_counts_each_shard_once_and_finishes_with_its_last,
);

async fn the_due_index_lists_live_subscriptions_due_by_now_across_days_and_shards(stores: &Stores) {
    let now = t0() + Duration::days(20);
    // Due 3 days before their ends: spread over several days and shards, some not yet due.
    let mut expected = Vec::new();
    for i in 0..12 {
        let s = sub(now + Duration::days(3) - Duration::hours(11 * i) + Duration::hours(30));
        put(stores, &s, None).await;
        if s.next_due().unwrap() <= now {
            expected.push(s.subscription_id.clone());
        }
    }
    assert!(!expected.is_empty() && expected.len() < 12, "some are due, some are not");
    expected.sort();
    for limit in [1, 3, 100] {
        let ids: Vec<String> = all_due(stores, now, limit).await.into_iter().map(|s| s.subscription_id).collect();
        assert_eq!(ids, expected, "limit {limit}");
    }
}

async fn a_write_moves_a_subscription_in_the_due_index_and_an_ended_one_leaves_it(stores: &Stores) {
    let now = t0() + Duration::days(10);
    let s = sub(now + Duration::days(1));
    put(stores, &s, None).await;
    assert_eq!(all_due(stores, now, 10).await.len(), 1);
    // The balance was checked: next due at the end, after now.
    let checked = s.balance_checked(now);
    put(stores, &checked, Some(s.version)).await;
    assert!(all_due(stores, now, 10).await.is_empty());
    let at_end = all_due(stores, now + Duration::days(1), 10).await;
    assert_eq!(at_end.len(), 1);
    assert_eq!(at_end[0], checked, "the index gives the subscription as written");
    // Ended: out of the index for good.
    let ended = checked.ended(now);
    put(stores, &ended, Some(checked.version)).await;
    assert!(all_due(stores, now + Duration::days(400), 10).await.is_empty());
}

async fn watermarks_are_kept_per_shard(stores: &Stores) {
    let shards = stores.lifecycle.due_shards();
    assert!(shards >= 1);
    assert_eq!(stores.lifecycle.watermark(0).await.unwrap(), None);
    let day = t0().date_naive();
    stores.lifecycle.set_watermark(0, day).await.unwrap();
    stores.lifecycle.set_watermark(0, day + Duration::days(1)).await.unwrap();
    assert_eq!(stores.lifecycle.watermark(0).await.unwrap(), Some(day + Duration::days(1)));
    if shards > 1 {
        assert_eq!(stores.lifecycle.watermark(1).await.unwrap(), None);
    }
}

async fn a_run_counts_each_shard_once_and_finishes_with_its_last(stores: &Stores) {
    let lc = &stores.lifecycle;
    let older = stark::app::lifecycle::new_run("20260501T100000Z-a".into(), t0(), t0(), 2);
    let run = stark::app::lifecycle::new_run("20260502T100000Z-b".into(), t0() + Duration::days(1), t0(), 2);
    lc.start_run(&older).await.unwrap();
    lc.start_run(&run).await.unwrap();
    lc.start_run(&run).await.unwrap(); // a retried schedule
    let counts = RunCounts { renewed: 2, emails: 3, ..RunCounts::default() };
    lc.finish_shard(&run.run_id, 0, &counts, t0()).await.unwrap();
    lc.finish_shard(&run.run_id, 0, &counts, t0()).await.unwrap(); // redelivered: adds nothing
    let half = lc.run(&run.run_id).await.unwrap().unwrap();
    assert_eq!((half.shards_done, half.counts.renewed, half.finished_at), (1, 2, None));
    let done_at = t0() + Duration::minutes(3);
    lc.finish_shard(&run.run_id, 1, &RunCounts { past_due: 1, ..RunCounts::default() }, done_at).await.unwrap();
    let done = lc.run(&run.run_id).await.unwrap().unwrap();
    assert_eq!((done.shards_done, done.finished_at), (2, Some(done_at)));
    assert_eq!(done.counts, RunCounts { renewed: 2, past_due: 1, emails: 3, ..RunCounts::default() });
    // A shard of a run nobody started records nothing and is no error.
    lc.finish_shard("20990101T000000Z-x", 0, &counts, t0()).await.unwrap();
    assert_eq!(lc.run("20990101T000000Z-x").await.unwrap(), None);
    let recent: Vec<String> = lc.recent_runs(10).await.unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(recent, [run.run_id.clone(), older.run_id.clone()], "newest first");
}

#[tokio::test]
async fn the_embedded_store_deletes_what_expired_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = stark::adapters::sqlite::SqliteStore::open(&dir.path().join("stark.db")).unwrap();
    let now = t0() + Duration::days(2);
    let email = Email::parse("old@stark.example").unwrap();
    let mut stale = OtpRecord::new("mac-old".into(), t0());
    stale.expires_at = now - Duration::minutes(1);
    OtpStore::put_otp(&store, &email, OtpPurpose::Verification, &stale, &[]).await.unwrap();
    let fresh = OtpRecord::new("mac-new".into(), now);
    OtpStore::put_otp(&store, &email, OtpPurpose::PasswordReset, &fresh, &[]).await.unwrap();
    let claim = |key: &str, expires_at| IdempotencyClaim {
        user_id: "u1".into(),
        key: key.into(),
        request_hash: "h".into(),
        token: "t".into(),
        lock_until: t0(),
        expires_at,
    };
    IdempotencyStore::claim_idempotency(&store, &claim("old", now - Duration::hours(1)), t0()).await.unwrap();
    IdempotencyStore::claim_idempotency(&store, &claim("new", now + Duration::hours(1)), t0()).await.unwrap();
    EmailLog::claim_send(&store, "job-old", t0(), t0(), now - Duration::seconds(1)).await.unwrap();
    EmailLog::claim_send(&store, "job-new", t0(), now + Duration::hours(1), now + Duration::days(29)).await.unwrap();

    // Batches of one: the loop, not one statement, empties each table.
    let purged = Housekeeping::purge_expired(&store, now, 1).await.unwrap();
    assert_eq!(purged, 3);
    assert_eq!(OtpStore::get_otp(&store, &email, OtpPurpose::Verification).await.unwrap(), None);
    assert!(OtpStore::get_otp(&store, &email, OtpPurpose::PasswordReset).await.unwrap().is_some());
    let other_body = IdempotencyClaim { request_hash: "other".into(), ..claim("new", now + Duration::hours(2)) };
    let again = IdempotencyStore::claim_idempotency(&store, &other_body, t0()).await.unwrap();
    assert!(matches!(again, ClaimOutcome::Existing(_)), "the live key is kept");
    assert_eq!(EmailLog::claim_send(&store, "job-new", now, now, now).await.unwrap(), SendClaim::InFlight);
    assert_eq!(Housekeeping::purge_expired(&store, now, 1000).await.unwrap(), 0, "nothing left to delete");
}
