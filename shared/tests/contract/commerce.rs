//! The contract of the catalog, subscription, idempotency and outbox ports, on every store
//! adapter: the conditions that keep money and subscriptions right under races.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

use stark::app::Stores;
use stark::domain::*;
use stark::ports::*;

contract!(
    products_are_created_once_with_their_plans,
    plans_are_added_once_to_existing_products,
    product_updates_compare_and_swap,
    upsert_replaces_fields_and_keeps_other_plans,
    a_subscription_claims_the_live_slot_once,
    a_failed_condition_writes_nothing,
    subscription_updates_compare_and_swap_and_release_the_slot,
    the_trial_marker_is_set_once,
    wallet_debits_never_overdraw_and_credits_are_capped,
    concurrent_debits_against_one_balance_make_one_charge,
    idempotency_keys_are_claimed_completed_and_released,
    idempotency_completion_in_a_commit_must_hold_the_claim,
    the_outbox_lists_old_entries_and_deletes_them,
    the_outbox_deletes_a_batch,
    codes_are_written_with_their_email,
    the_email_log_sends_each_job_once,
    the_email_log_takes_a_batch_as_it_takes_each_job,
    a_starting_sender_takes_over_the_leases_of_the_process_before_it,
);

fn t0() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().unwrap()
}

fn plan(id: &str, price: i64) -> Plan {
    Plan {
        plan_id: PlanId::parse(id).unwrap(),
        name: format!("Plan {id}"),
        period: Period::Monthly,
        price: Money::usd(price),
        trial_days: 7,
    }
}

fn product(id: &str, plans: Vec<Plan>) -> Product {
    Product {
        product_id: ProductId::parse(id).unwrap(),
        name: format!("Product {id}"),
        description: "A product.".into(),
        translations: BTreeMap::from([(
            "es".to_string(),
            TextTranslation { name: Some("Producto".into()), description: None },
        )]),
        status: ProductStatus::Active,
        owner_id: Some("provider-1".into()),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
        plans,
    }
}

fn new_user_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn sub(user: &str, product: &str, plan: &str) -> Subscription {
    Subscription {
        subscription_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.to_string(),
        user_email: Email::parse("buyer@stark.example").unwrap(),
        product_id: ProductId::parse(product).unwrap(),
        plan_id: PlanId::parse(plan).unwrap(),
        status: SubStatus::Active,
        current_period_start: t0(),
        current_period_end: t0() + Duration::days(30),
        anchor: t0(),
        period_index: 0,
        auto_renew: true,
        scheduled_plan_id: None,
        marks: Default::default(),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

fn txn(user: &str, kind: TxnKind, amount: i64) -> WalletTxn {
    WalletTxn {
        transaction_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.to_string(),
        kind,
        amount: Money::usd(amount),
        reference: "test".into(),
        created_at: t0(),
    }
}

fn payment(user: &str, sub_id: &str, amount: i64) -> Payment {
    Payment {
        payment_id: uuid::Uuid::now_v7().to_string(),
        user_id: user.to_string(),
        subscription_id: sub_id.to_string(),
        amount: Money::usd(amount),
        method: "STARK_PAY".into(),
        created_at: t0(),
    }
}

fn job() -> EmailJob {
    EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::PaymentConfirmation,
        to: Email::parse("buyer@stark.example").unwrap(),
        locale: "en".into(),
        vars: BTreeMap::new(),
        not_after: None,
    }
}

fn conflict(r: Result<(), CommitError>) -> Conflict {
    match r {
        Err(CommitError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn credit(s: &Stores, user: &str, amount: i64) {
    s.subscriptions
        .commit(&Commit { wallet: Some(txn(user, TxnKind::Credit, amount)), ..Commit::default() })
        .await
        .unwrap();
}

async fn products_are_created_once_with_their_plans(s: &Stores) {
    let id = format!("P-{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    let p = product(&id, vec![plan("GOLD", 5000), plan("BASIC", 1000)]);
    s.catalog.create_product(&p).await.unwrap();
    let got = s.catalog.product(&p.product_id).await.unwrap().unwrap();
    assert_eq!(got.name, p.name);
    assert_eq!(got.translations, p.translations);
    assert_eq!(got.owner_id.as_deref(), Some("provider-1"));
    // Plans come sorted by price.
    assert_eq!(got.plans.iter().map(|p| p.plan_id.as_str()).collect::<Vec<_>>(), ["BASIC", "GOLD"]);
    let mut again = product(&id, vec![plan("OTHER", 1)]);
    again.name = "Impostor".into();
    assert!(matches!(s.catalog.create_product(&again).await, Err(CatalogWriteError::Exists)));
    // The failed create wrote nothing: neither the name nor its plan.
    let got = s.catalog.product(&p.product_id).await.unwrap().unwrap();
    assert_eq!(got.name, p.name);
    assert_eq!(got.plans.len(), 2);
    let listed = s.catalog.list_products().await.unwrap();
    let mine = listed.iter().find(|x| x.product_id == p.product_id).expect("listed");
    assert_eq!(mine.plans.len(), 2);
    assert!(s.catalog.product(&ProductId::parse("NO-SUCH-PRODUCT").unwrap()).await.unwrap().is_none());
}

async fn plans_are_added_once_to_existing_products(s: &Stores) {
    let id = format!("P-{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    let p = product(&id, vec![plan("BASIC", 1000)]);
    s.catalog.create_product(&p).await.unwrap();
    s.catalog.add_plan(&p.product_id, &plan("YEARLY", 9000)).await.unwrap();
    assert!(matches!(s.catalog.add_plan(&p.product_id, &plan("YEARLY", 1)).await, Err(CatalogWriteError::Exists)));
    let missing = ProductId::parse("MISSING-PRODUCT").unwrap();
    assert!(matches!(s.catalog.add_plan(&missing, &plan("X1", 1)).await, Err(CatalogWriteError::NotFound)));
    let got = s.catalog.product(&p.product_id).await.unwrap().unwrap();
    assert_eq!(got.plan(&PlanId::parse("YEARLY").unwrap()).unwrap().price, Money::usd(9000));
    assert!(s.catalog.product(&missing).await.unwrap().is_none(), "a refused plan must not create its product");
}

async fn product_updates_compare_and_swap(s: &Stores) {
    let id = format!("P-{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    let mut p = product(&id, vec![plan("BASIC", 1000)]);
    s.catalog.create_product(&p).await.unwrap();
    p.name = "Renamed".into();
    p.status = ProductStatus::Archived;
    assert!(s.catalog.update_product(&p, 1).await.unwrap());
    // A writer that read version 1 too loses.
    p.name = "Stale".into();
    assert!(!s.catalog.update_product(&p, 1).await.unwrap());
    let got = s.catalog.product(&p.product_id).await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.status, got.version), ("Renamed", ProductStatus::Archived, 2));
    assert_eq!(got.plans.len(), 1, "updating the product keeps its plans");
}

async fn upsert_replaces_fields_and_keeps_other_plans(s: &Stores) {
    let id = format!("P-{}", uuid::Uuid::new_v4().simple()).to_uppercase();
    s.catalog.upsert_product(&product(&id, vec![plan("BASIC", 1000), plan("GOLD", 5000)])).await.unwrap();
    let mut p = product(&id, vec![plan("GOLD", 6000)]);
    p.description = "New words.".into();
    s.catalog.upsert_product(&p).await.unwrap();
    let got = s.catalog.product(&p.product_id).await.unwrap().unwrap();
    assert_eq!(got.description, "New words.");
    assert_eq!(got.plans.len(), 2);
    assert_eq!(got.plan(&PlanId::parse("GOLD").unwrap()).unwrap().price, Money::usd(6000));
}

async fn a_subscription_claims_the_live_slot_once(s: &Stores) {
    let user = new_user_id();
    let first = sub(&user, "P1", "GOLD");
    s.subscriptions
        .commit(&Commit { subscription: Some((first.clone(), None)), live: Some(LiveSlot::Claim), ..Commit::default() })
        .await
        .unwrap();
    let state = s.subscriptions.account_state(&user, &first.product_id).await.unwrap();
    assert_eq!(state.live.as_ref(), Some(&first));
    assert!(!state.trial_used);
    assert_eq!(state.balance_minor, 0);
    let second = sub(&user, "P1", "BASIC");
    let r = s
        .subscriptions
        .commit(&Commit {
            subscription: Some((second.clone(), None)),
            live: Some(LiveSlot::Claim),
            ..Commit::default()
        })
        .await;
    assert_eq!(conflict(r), Conflict::Subscription);
    assert!(s.subscriptions.subscription(&user, &second.subscription_id).await.unwrap().is_none());
    // Another product has its own slot; another user sees nothing of this one.
    let other = sub(&user, "P2", "GOLD");
    s.subscriptions
        .commit(&Commit { subscription: Some((other.clone(), None)), live: Some(LiveSlot::Claim), ..Commit::default() })
        .await
        .unwrap();
    let listed = s.subscriptions.user_subscriptions(&user).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| &x.subscription_id).collect::<Vec<_>>(),
        [&other.subscription_id, &first.subscription_id]
    );
    assert!(s.subscriptions.subscription(&new_user_id(), &first.subscription_id).await.unwrap().is_none());
    assert!(s.subscriptions.account_state(&new_user_id(), &first.product_id).await.unwrap().live.is_none());
}

async fn a_failed_condition_writes_nothing(s: &Stores) {
    let user = new_user_id();
    credit(s, &user, 500).await;
    let sub1 = sub(&user, "P1", "GOLD");
    // The debit cannot pass (500 < 1000): the subscription, slot, payment and outbox entry
    // of the same commit must not be written either.
    let entry = OutboxEntry { created_at: t0(), job: job() };
    let r = s
        .subscriptions
        .commit(&Commit {
            subscription: Some((sub1.clone(), None)),
            live: Some(LiveSlot::Claim),
            wallet: Some(txn(&user, TxnKind::Debit, 1000)),
            payment: Some(payment(&user, &sub1.subscription_id, 1000)),
            outbox: vec![entry.clone()],
            ..Commit::default()
        })
        .await;
    assert_eq!(conflict(r), Conflict::Funds);
    let state = s.subscriptions.account_state(&user, &sub1.product_id).await.unwrap();
    assert!(state.live.is_none());
    assert_eq!(state.balance_minor, 500);
    assert!(s.subscriptions.user_subscriptions(&user).await.unwrap().is_empty());
    assert!(s.subscriptions.payments(&user).await.unwrap().is_empty());
    assert_eq!(s.subscriptions.wallet(&user, 10).await.unwrap().1.len(), 1, "only the credit");
    let pending = s.outbox.pending_outbox(t0() + Duration::days(1), None, 1000).await.unwrap();
    assert!(!pending.iter().any(|e| e.job.job_id == entry.job.job_id));
}

async fn subscription_updates_compare_and_swap_and_release_the_slot(s: &Stores) {
    let user = new_user_id();
    let mut s1 = sub(&user, "P1", "GOLD");
    s.subscriptions
        .commit(&Commit { subscription: Some((s1.clone(), None)), live: Some(LiveSlot::Claim), ..Commit::default() })
        .await
        .unwrap();
    s1.version = 2;
    s1.auto_renew = false;
    s.subscriptions.commit(&Commit { subscription: Some((s1.clone(), Some(1))), ..Commit::default() }).await.unwrap();
    // A writer that read version 1 loses.
    let mut stale = s1.clone();
    stale.version = 2;
    stale.plan_id = PlanId::parse("BASIC").unwrap();
    let r = s.subscriptions.commit(&Commit { subscription: Some((stale, Some(1))), ..Commit::default() }).await;
    assert_eq!(conflict(r), Conflict::Subscription);
    // Only the holder frees the slot.
    let mut imposter = sub(&user, "P1", "GOLD");
    imposter.status = SubStatus::Canceled;
    let r = s
        .subscriptions
        .commit(&Commit {
            subscription: Some((imposter.clone(), None)),
            live: Some(LiveSlot::Release),
            ..Commit::default()
        })
        .await;
    assert_eq!(conflict(r), Conflict::Subscription);
    s1.version = 3;
    s1.status = SubStatus::Canceled;
    s.subscriptions
        .commit(&Commit {
            subscription: Some((s1.clone(), Some(2))),
            live: Some(LiveSlot::Release),
            ..Commit::default()
        })
        .await
        .unwrap();
    let state = s.subscriptions.account_state(&user, &s1.product_id).await.unwrap();
    assert!(state.live.is_none());
    let stored = s.subscriptions.subscription(&user, &s1.subscription_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.version, stored.auto_renew), (SubStatus::Canceled, 3, false));
    let by_product = s.subscriptions.product_subscriptions(&s1.product_id).await.unwrap();
    assert!(by_product.iter().any(|x| x.subscription_id == s1.subscription_id && x.status == SubStatus::Canceled));
}

async fn the_trial_marker_is_set_once(s: &Stores) {
    let user = new_user_id();
    let mut t1 = sub(&user, "P1", "GOLD");
    t1.status = SubStatus::Trialing;
    s.subscriptions
        .commit(&Commit {
            subscription: Some((t1.clone(), None)),
            live: Some(LiveSlot::Claim),
            trial: true,
            ..Commit::default()
        })
        .await
        .unwrap();
    // End it, freeing the slot: the marker stays.
    let mut ended = t1.clone();
    ended.version = 2;
    ended.status = SubStatus::Expired;
    s.subscriptions
        .commit(&Commit { subscription: Some((ended, Some(1))), live: Some(LiveSlot::Release), ..Commit::default() })
        .await
        .unwrap();
    let mut t2 = sub(&user, "P1", "GOLD");
    t2.status = SubStatus::Trialing;
    let r = s
        .subscriptions
        .commit(&Commit {
            subscription: Some((t2.clone(), None)),
            live: Some(LiveSlot::Claim),
            trial: true,
            ..Commit::default()
        })
        .await;
    assert_eq!(conflict(r), Conflict::TrialUsed);
    let state = s.subscriptions.account_state(&user, &t1.product_id).await.unwrap();
    assert!(state.trial_used);
    assert!(state.live.is_none(), "the refused trial must not hold the slot");
    assert!(s.subscriptions.subscription(&user, &t2.subscription_id).await.unwrap().is_none());
}

async fn wallet_debits_never_overdraw_and_credits_are_capped(s: &Stores) {
    let user = new_user_id();
    // No wallet yet: a debit fails.
    let r = s.subscriptions.commit(&Commit { wallet: Some(txn(&user, TxnKind::Debit, 1)), ..Commit::default() }).await;
    assert_eq!(conflict(r), Conflict::Funds);
    credit(s, &user, 1000).await;
    s.subscriptions
        .commit(&Commit { wallet: Some(txn(&user, TxnKind::Debit, 600)), ..Commit::default() })
        .await
        .unwrap();
    let r =
        s.subscriptions.commit(&Commit { wallet: Some(txn(&user, TxnKind::Debit, 600)), ..Commit::default() }).await;
    assert_eq!(conflict(r), Conflict::Funds);
    let (balance, txns) = s.subscriptions.wallet(&user, 10).await.unwrap();
    assert_eq!(balance, 400);
    assert_eq!(txns.iter().map(|t| t.kind).collect::<Vec<_>>(), [TxnKind::Debit, TxnKind::Credit], "newest first");
    let r = s
        .subscriptions
        .commit(&Commit { wallet: Some(txn(&user, TxnKind::Credit, MAX_BALANCE_MINOR)), ..Commit::default() })
        .await;
    assert_eq!(conflict(r), Conflict::Funds);
    assert_eq!(s.subscriptions.wallet(&user, 1).await.unwrap().0, 400);
    assert_eq!(s.subscriptions.wallet(&user, 1).await.unwrap().1.len(), 1, "limit is honoured");
    assert_eq!(s.subscriptions.wallet(&user, 0).await.unwrap(), (400, Vec::new()), "the balance alone");
}

async fn concurrent_debits_against_one_balance_make_one_charge(s: &Stores) {
    let user = new_user_id();
    credit(s, &user, 1000).await;
    let s = Arc::new(s.clone());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, user) = (s.clone(), user.clone());
            tokio::spawn(async move {
                let p = payment(&user, "sub", 1000);
                s.subscriptions
                    .commit(&Commit {
                        wallet: Some(txn(&user, TxnKind::Debit, 1000)),
                        payment: Some(p),
                        ..Commit::default()
                    })
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(CommitError::Conflict(Conflict::Funds)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.subscriptions.wallet(&user, 100).await.unwrap().0, 0);
    assert_eq!(s.subscriptions.payments(&user).await.unwrap().len(), 1, "no orphan payment");
}

fn claim(user: &str, key: &str, hash: &str, now: DateTime<Utc>) -> IdempotencyClaim {
    IdempotencyClaim {
        user_id: user.to_string(),
        key: key.to_string(),
        request_hash: hash.to_string(),
        token: uuid::Uuid::new_v4().to_string(),
        lock_until: now + Duration::seconds(60),
        expires_at: now + Duration::hours(24),
    }
}

fn response(status: u16) -> StoredResponse {
    StoredResponse { status, body: serde_json::json!({"x": status}), message_key: Some("purchase_ok".into()) }
}

async fn idempotency_keys_are_claimed_completed_and_released(s: &Stores) {
    let user = new_user_id();
    let now = t0();
    let first = claim(&user, "key-1", "h1", now);
    assert_eq!(s.idempotency.claim_idempotency(&first, now).await.unwrap(), ClaimOutcome::Claimed);
    // While it runs, a repeat sees it running.
    let again = claim(&user, "key-1", "h1", now);
    let running = ClaimOutcome::Existing(IdempotencyRecord { request_hash: "h1".into(), response: None });
    assert_eq!(s.idempotency.claim_idempotency(&again, now).await.unwrap(), running);
    // Another user's key of the same name is another key.
    assert_eq!(
        s.idempotency.claim_idempotency(&claim(&new_user_id(), "key-1", "h9", now), now).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // Only the holder completes it, once.
    let wrong = IdempotencyCompletion { key: "key-1".into(), token: "not-mine".into(), response: response(201) };
    assert!(!s.idempotency.complete_idempotency(&user, &wrong).await.unwrap());
    let done = IdempotencyCompletion { key: "key-1".into(), token: first.token.clone(), response: response(402) };
    assert!(s.idempotency.complete_idempotency(&user, &done).await.unwrap());
    assert!(!s.idempotency.complete_idempotency(&user, &done).await.unwrap());
    let finished =
        ClaimOutcome::Existing(IdempotencyRecord { request_hash: "h1".into(), response: Some(response(402)) });
    assert_eq!(s.idempotency.claim_idempotency(&again, now + Duration::hours(23)).await.unwrap(), finished);
    // Releasing a completed key does nothing.
    s.idempotency.release_idempotency(&user, "key-1", &first.token).await.unwrap();
    assert_eq!(s.idempotency.claim_idempotency(&again, now).await.unwrap(), finished);
    // After 24 h the key is free again.
    let later = now + Duration::hours(25);
    assert_eq!(
        s.idempotency.claim_idempotency(&claim(&user, "key-1", "h2", later), later).await.unwrap(),
        ClaimOutcome::Claimed
    );

    // A released claim frees the key at once; a dead holder's claim is taken over after its lock.
    let c = claim(&user, "key-2", "h1", now);
    assert_eq!(s.idempotency.claim_idempotency(&c, now).await.unwrap(), ClaimOutcome::Claimed);
    s.idempotency.release_idempotency(&user, "key-2", "not-mine").await.unwrap();
    assert!(matches!(
        s.idempotency.claim_idempotency(&claim(&user, "key-2", "h1", now), now).await.unwrap(),
        ClaimOutcome::Existing(_)
    ));
    s.idempotency.release_idempotency(&user, "key-2", &c.token).await.unwrap();
    let c3 = claim(&user, "key-2", "h1", now);
    assert_eq!(s.idempotency.claim_idempotency(&c3, now).await.unwrap(), ClaimOutcome::Claimed);
    let after_lock = now + Duration::seconds(61);
    // Another body under the key is still refused after the lock, so it can answer 422.
    let other_body = ClaimOutcome::Existing(IdempotencyRecord { request_hash: "h1".into(), response: None });
    assert_eq!(
        s.idempotency.claim_idempotency(&claim(&user, "key-2", "h2", after_lock), after_lock).await.unwrap(),
        other_body
    );
    assert_eq!(
        s.idempotency.claim_idempotency(&claim(&user, "key-2", "h1", after_lock), after_lock).await.unwrap(),
        ClaimOutcome::Claimed
    );
}

async fn idempotency_completion_in_a_commit_must_hold_the_claim(s: &Stores) {
    let user = new_user_id();
    let now = t0();
    let c = claim(&user, "buy-1", "h", now);
    s.idempotency.claim_idempotency(&c, now).await.unwrap();
    credit(s, &user, 1000).await;
    let s1 = sub(&user, "P1", "GOLD");
    let stolen = IdempotencyCompletion { key: "buy-1".into(), token: "someone-else".into(), response: response(201) };
    let r = s
        .subscriptions
        .commit(&Commit {
            subscription: Some((s1.clone(), None)),
            live: Some(LiveSlot::Claim),
            wallet: Some(txn(&user, TxnKind::Debit, 1000)),
            idempotency: Some((user.clone(), stolen)),
            ..Commit::default()
        })
        .await;
    assert_eq!(conflict(r), Conflict::Idempotency);
    assert_eq!(s.subscriptions.wallet(&user, 1).await.unwrap().0, 1000, "the debit was rolled back");
    let mine = IdempotencyCompletion { key: "buy-1".into(), token: c.token.clone(), response: response(201) };
    s.subscriptions
        .commit(&Commit {
            subscription: Some((s1.clone(), None)),
            live: Some(LiveSlot::Claim),
            wallet: Some(txn(&user, TxnKind::Debit, 1000)),
            idempotency: Some((user.clone(), mine)),
            ..Commit::default()
        })
        .await
        .unwrap();
    let replay = s.idempotency.claim_idempotency(&claim(&user, "buy-1", "h", now), now).await.unwrap();
    assert_eq!(
        replay,
        ClaimOutcome::Existing(IdempotencyRecord { request_hash: "h".into(), response: Some(response(201)) })
    );
}

async fn the_outbox_lists_old_entries_and_deletes_them(s: &Stores) {
    // The outbox is shared by every test on this store, so look only at this test's entries.
    let base = "2031-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(rand_secs());
    let entries: Vec<OutboxEntry> =
        (0..3).map(|i| OutboxEntry { created_at: base + Duration::seconds(i), job: job() }).collect();
    s.subscriptions.commit(&Commit { outbox: entries.clone(), ..Commit::default() }).await.unwrap();
    let ids =
        |v: &[OutboxEntry]| v.iter().filter(|e| entries.contains(e)).map(|e| e.job.job_id.clone()).collect::<Vec<_>>();
    let pending = s.outbox.pending_outbox(base + Duration::seconds(2), None, 1000).await.unwrap();
    assert_eq!(
        ids(&pending),
        [entries[0].job.job_id.clone(), entries[1].job.job_id.clone()],
        "older than `before`, oldest first"
    );
    s.outbox.delete_outbox(&entries[0]).await.unwrap();
    s.outbox.delete_outbox(&entries[0]).await.unwrap();
    let pending = s.outbox.pending_outbox(base + Duration::days(1), None, 1000).await.unwrap();
    assert_eq!(ids(&pending), [entries[1].job.job_id.clone(), entries[2].job.job_id.clone()]);
    // Pages: after an entry, only what comes after it.
    let next = s.outbox.pending_outbox(base + Duration::days(1), Some(&entries[1]), 1000).await.unwrap();
    assert_eq!(ids(&next), [entries[2].job.job_id.clone()]);
    let first = s.outbox.pending_outbox(base + Duration::days(1), Some(&entries[0]), 1).await.unwrap();
    assert_eq!(ids(&first), [entries[1].job.job_id.clone()], "the deleted cursor still places the page");
    assert_eq!(pending.iter().find(|e| e.job.job_id == entries[1].job.job_id), Some(&entries[1]), "round trip");
}

async fn the_outbox_deletes_a_batch(s: &Stores) {
    let base = "2032-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::seconds(rand_secs());
    let entries: Vec<OutboxEntry> =
        (0..3).map(|i| OutboxEntry { created_at: base + Duration::seconds(i), job: job() }).collect();
    s.subscriptions.commit(&Commit { outbox: entries.clone(), ..Commit::default() }).await.unwrap();
    s.outbox.delete_outbox_many(&[]).await.unwrap();
    // One of them twice: an entry already gone is fine.
    s.outbox.delete_outbox_many(&[entries[0].clone(), entries[2].clone(), entries[0].clone()]).await.unwrap();
    let pending = s.outbox.pending_outbox(base + Duration::days(1), None, 1000).await.unwrap();
    let left: Vec<&OutboxEntry> = pending.iter().filter(|e| entries.contains(e)).collect();
    assert_eq!(left, [&entries[1]]);
}

fn rand_secs() -> i64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as i64
}

async fn codes_are_written_with_their_email(s: &Stores) {
    let far = "2099-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let email = Email::parse(&format!("{}@stark.example", uuid::Uuid::new_v4().simple())).unwrap();
    let user = User {
        id: new_user_id(),
        email: email.clone(),
        username: Username::parse(&format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).unwrap(),
        role: Role::User,
        email_verified: false,
        locale: "en".into(),
        created_at: t0(),
        password_hash: PasswordHash("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        token_generation: 0,
    };
    let signup_email = OutboxEntry { created_at: t0(), job: job() };
    s.users
        .create_user(&user, &OtpRecord::new("mac1".into(), t0()), std::slice::from_ref(&signup_email))
        .await
        .unwrap();
    // A refused signup (the email is taken) writes no email either.
    let mut twin = user.clone();
    twin.id = new_user_id();
    twin.username = Username::parse("another_name").unwrap();
    let refused = OutboxEntry { created_at: t0(), job: job() };
    assert!(s
        .users
        .create_user(&twin, &OtpRecord::new("mac2".into(), t0()), std::slice::from_ref(&refused))
        .await
        .is_err());
    let resend = OutboxEntry { created_at: t0(), job: job() };
    s.otps
        .put_otp(&email, OtpPurpose::Verification, &OtpRecord::new("mac3".into(), t0()), std::slice::from_ref(&resend))
        .await
        .unwrap();
    let pending = s.outbox.pending_outbox(far, None, 1000).await.unwrap();
    assert!(pending.contains(&signup_email));
    assert!(pending.contains(&resend));
    assert!(!pending.contains(&refused));
    assert_eq!(s.otps.get_otp(&email, OtpPurpose::Verification).await.unwrap().unwrap().code_mac, "mac3");
}

async fn the_email_log_sends_each_job_once(s: &Stores) {
    let now = t0();
    let (lease, keep) = (now + Duration::minutes(2), now + Duration::days(30));
    let id = uuid::Uuid::now_v7().to_string();
    assert_eq!(s.email_log.claim_send(&id, now, lease, keep).await.unwrap(), SendClaim::Claimed);
    assert_eq!(s.email_log.claim_send(&id, now, lease, keep).await.unwrap(), SendClaim::InFlight);
    // A sender that died: its lease runs out and another takes the job.
    let later = now + Duration::minutes(3);
    assert_eq!(
        s.email_log.claim_send(&id, later, later + Duration::minutes(2), keep).await.unwrap(),
        SendClaim::Claimed
    );
    s.email_log.mark_sent(&id, "ses-123").await.unwrap();
    let sent = SendClaim::Sent { message_id: "ses-123".into() };
    assert_eq!(s.email_log.claim_send(&id, later, lease, keep).await.unwrap(), sent);
    assert_eq!(s.email_log.claim_send(&id, now + Duration::days(29), lease, keep).await.unwrap(), sent);
    // Releasing a sent job changes nothing.
    s.email_log.release_send(&id).await.unwrap();
    assert_eq!(s.email_log.claim_send(&id, later, lease, keep).await.unwrap(), sent);

    // A failed send gives the job back at once.
    let retry = uuid::Uuid::now_v7().to_string();
    assert_eq!(s.email_log.claim_send(&retry, now, lease, keep).await.unwrap(), SendClaim::Claimed);
    s.email_log.release_send(&retry).await.unwrap();
    assert_eq!(s.email_log.claim_send(&retry, now, lease, keep).await.unwrap(), SendClaim::Claimed);

    // A refused address is on record for good.
    let refused = uuid::Uuid::now_v7().to_string();
    s.email_log.claim_send(&refused, now, lease, keep).await.unwrap();
    s.email_log
        .mark_rejected(&refused, &Email::parse("bounce@stark.example").unwrap(), "MessageRejected: no")
        .await
        .unwrap();
    let rejected = SendClaim::Rejected { reason: "MessageRejected: no".into() };
    assert_eq!(s.email_log.claim_send(&refused, later, lease, keep).await.unwrap(), rejected);
}

async fn the_email_log_takes_a_batch_as_it_takes_each_job(s: &Stores) {
    let now = t0();
    let (lease, keep) = (now + Duration::minutes(2), now + Duration::days(30));
    let [fresh, sent, held] = [(); 3].map(|_| uuid::Uuid::now_v7().to_string());
    s.email_log.claim_send(&sent, now, lease, keep).await.unwrap();
    s.email_log.mark_sent(&sent, "m-sent").await.unwrap();
    s.email_log.claim_send(&held, now, lease, keep).await.unwrap();
    assert_eq!(s.email_log.claim_sends(&[], now, lease, keep).await.unwrap(), []);
    assert_eq!(
        s.email_log.claim_sends(&[&fresh, &sent, &held], now, lease, keep).await.unwrap(),
        [SendClaim::Claimed, SendClaim::Sent { message_id: "m-sent".into() }, SendClaim::InFlight],
        "each job answered in order, as claim_send answers it"
    );
    assert_eq!(s.email_log.claim_sends(&[&fresh], now, lease, keep).await.unwrap(), [SendClaim::InFlight], "taken");
    s.email_log.mark_sent_many(&[]).await.unwrap();
    s.email_log.mark_sent_many(&[(&fresh, "m-fresh"), (&held, "m-held")]).await.unwrap();
    let later = now + Duration::minutes(3);
    assert_eq!(
        s.email_log.claim_sends(&[&held, &fresh], later, later + Duration::minutes(2), keep).await.unwrap(),
        [SendClaim::Sent { message_id: "m-held".into() }, SendClaim::Sent { message_id: "m-fresh".into() }]
    );
}

/// A mailer that keeps what it was given.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl Mailer for Recorder {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendFailure> {
        self.0.lock().unwrap().push(email.job_id.clone());
        Ok(format!("sent-{}", email.job_id))
    }
}

fn code_job() -> EmailJob {
    EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::OtpVerification,
        to: Email::parse("tony@stark.example").unwrap(),
        locale: "en".into(),
        vars: [("code", "123456"), ("username", "tony"), ("ttl_minutes", "10")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        not_after: None,
    }
}

async fn a_starting_sender_takes_over_the_leases_of_the_process_before_it(s: &Stores) {
    use stark::app::notify::{Delivery, Sender, LEASE};
    let clock = Arc::new(stark::clock::ManualClock::new(t0()));
    let keep = t0() + Duration::days(30);
    // The process before: it took a job and died before sending it.
    let orphan = code_job();
    assert_eq!(s.email_log.claim_send(&orphan.job_id, t0(), t0() + LEASE, keep).await.unwrap(), SendClaim::Claimed);
    clock.advance(Duration::seconds(1));
    let started = clock.now();
    let mailer = Arc::new(Recorder::default());
    let sender = |takes_over_before| Sender {
        log: s.email_log.clone(),
        mailer: mailer.clone(),
        clock: clock.clone(),
        takes_over_before,
    };
    // A sender among many (AWS) waits for the lease to run out...
    assert!(matches!(sender(None).deliver(&orphan).await, Delivery::Retry { .. }));
    // ...the one process of a data dir, started after the claim, sends it now.
    assert!(matches!(sender(Some(started)).deliver(&orphan).await, Delivery::Sent { .. }));
    assert_eq!(*mailer.0.lock().unwrap(), std::slice::from_ref(&orphan.job_id));
    // It does not take over a lease taken after it started (its own, in flight).
    clock.advance(Duration::seconds(1));
    let mine = code_job();
    assert_eq!(
        s.email_log.claim_send(&mine.job_id, clock.now(), clock.now() + LEASE, keep).await.unwrap(),
        SendClaim::Claimed
    );
    assert!(matches!(sender(Some(started)).deliver(&mine).await, Delivery::Retry { .. }));
    // And once the lease is over, anyone may send it.
    clock.advance(LEASE);
    assert!(matches!(sender(None).deliver(&mine).await, Delivery::Sent { .. }));
}
