//! The catalog, subscriptions, wallets, idempotency keys and the outbox on SQLite. Records are
//! stored as JSON documents beside the columns that are queried or conditioned on; a commit
//! runs in one `BEGIN IMMEDIATE` transaction and checks each condition as it goes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;

use super::{ts, Cached, SqliteStore};
use crate::domain::lifecycle::due_shard;
use crate::domain::{Plan, Product, ProductId, Subscription, TxnKind, MAX_BALANCE_MINOR};
use crate::ports::*;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    product_id TEXT NOT NULL REFERENCES products(product_id),
    plan_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (product_id, plan_id)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    subscription_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    -- The due index (see domain::lifecycle): NULL once the subscription has ended.
    due_at TEXT,
    due_shard INTEGER
);
CREATE INDEX IF NOT EXISTS subscriptions_by_user ON subscriptions (user_id, subscription_id);
CREATE INDEX IF NOT EXISTS subscriptions_by_product ON subscriptions (product_id, subscription_id);
CREATE TABLE IF NOT EXISTS live_slots (
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE TABLE IF NOT EXISTS trials (
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE TABLE IF NOT EXISTS wallets (
    user_id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL CHECK (balance >= 0)
);
CREATE TABLE IF NOT EXISTS wallet_txns (
    transaction_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wallet_txns_by_user ON wallet_txns (user_id, created_at);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_user ON payments (user_id, created_at);
CREATE TABLE IF NOT EXISTS idempotency (
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    token TEXT NOT NULL,
    lock_until TEXT NOT NULL,
    response TEXT,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    job_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_age ON outbox (created_at);
"#;

pub(super) fn to_doc<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub(super) fn from_doc<T: DeserializeOwned>(s: String) -> rusqlite::Result<T> {
    serde_json::from_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(super) fn docs<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    rows.map(|r| r.and_then(from_doc)).collect()
}

fn load_product(c: &Connection, id: &str) -> rusqlite::Result<Option<Product>> {
    let Some(doc) =
        c.row("SELECT doc FROM products WHERE product_id = ?1", [id], |r| r.get::<_, String>(0)).optional()?
    else {
        return Ok(None);
    };
    let mut p: Product = from_doc(doc)?;
    p.plans = docs(c, "SELECT doc FROM plans WHERE product_id = ?1", [id])?;
    p.sort_plans();
    Ok(Some(p))
}

fn insert_plan(c: &Connection, product_id: &ProductId, plan: &Plan, replace: bool) -> rusqlite::Result<bool> {
    let verb = if replace { "INSERT OR REPLACE" } else { "INSERT OR IGNORE" };
    let n = c.exec(
        &format!("{verb} INTO plans (product_id, plan_id, doc) VALUES (?1, ?2, ?3)"),
        params![product_id.as_str(), plan.plan_id.as_str(), to_doc(plan)?],
    )?;
    Ok(n == 1)
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_product(&self, product: &Product) -> Result<(), CatalogWriteError> {
        let p = product.clone();
        let created = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.exec(
                    "INSERT OR IGNORE INTO products (product_id, version, doc) VALUES (?1, ?2, ?3)",
                    params![p.product_id.as_str(), p.version as i64, to_doc(&p)?],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                for plan in &p.plans {
                    insert_plan(&tx, &p.product_id, plan, false)?;
                }
                tx.commit()?;
                Ok(true)
            })
            .await?;
        if created {
            Ok(())
        } else {
            Err(CatalogWriteError::Exists)
        }
    }

    async fn update_product(&self, product: &Product, expected: u64) -> Result<bool, InfraError> {
        let mut p = product.clone();
        p.version = expected + 1;
        self.run(move |c| {
            c.exec(
                "UPDATE products SET version = ?2, doc = ?3 WHERE product_id = ?1 AND version = ?4",
                params![p.product_id.as_str(), p.version as i64, to_doc(&p)?, expected as i64],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn add_plan(&self, product_id: &ProductId, plan: &Plan) -> Result<(), CatalogWriteError> {
        let (id, plan) = (product_id.clone(), plan.clone());
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let exists =
                    tx.row("SELECT 1 FROM products WHERE product_id = ?1", [id.as_str()], |_| Ok(())).optional()?;
                if exists.is_none() {
                    return Ok(Err(CatalogWriteError::NotFound));
                }
                if !insert_plan(&tx, &id, &plan, false)? {
                    return Ok(Err(CatalogWriteError::Exists));
                }
                tx.commit()?;
                Ok(Ok(()))
            })
            .await?;
        outcome
    }

    async fn upsert_product(&self, product: &Product) -> Result<(), InfraError> {
        let p = product.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.exec(
                "INSERT OR REPLACE INTO products (product_id, version, doc) VALUES (?1, ?2, ?3)",
                params![p.product_id.as_str(), p.version as i64, to_doc(&p)?],
            )?;
            for plan in &p.plans {
                insert_plan(&tx, &p.product_id, plan, true)?;
            }
            tx.commit()
        })
        .await
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, InfraError> {
        let id = id.as_str().to_string();
        self.run(move |c| load_product(c, &id)).await
    }

    async fn list_products(&self) -> Result<Vec<Product>, InfraError> {
        self.run(|c| {
            let ids: Vec<String> = {
                let mut stmt = c.prepare_cached("SELECT product_id FROM products ORDER BY product_id")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(load_product(c, &id)?);
            }
            Ok(out)
        })
        .await
    }
}

fn load_subscription(c: &Connection, id: &str) -> rusqlite::Result<Option<Subscription>> {
    c.row("SELECT doc FROM subscriptions WHERE subscription_id = ?1", [id], |r| r.get::<_, String>(0))
        .optional()?
        .map(from_doc)
        .transpose()
}

/// Writes outbox entries inside the transaction of the change that causes them.
pub(super) fn insert_outbox(tx: &rusqlite::Transaction<'_>, entries: &[OutboxEntry]) -> rusqlite::Result<()> {
    for e in entries {
        tx.exec(
            "INSERT OR REPLACE INTO outbox (job_id, created_at, doc) VALUES (?1, ?2, ?3)",
            params![e.job.job_id, ts(e.created_at), to_doc(e)?],
        )?;
    }
    Ok(())
}

/// Applies one commit inside `tx`; the first failed condition aborts it.
fn apply(tx: &rusqlite::Transaction<'_>, commit: &Commit) -> rusqlite::Result<Result<(), Conflict>> {
    if let Some((sub, expected)) = &commit.subscription {
        let doc = to_doc(sub)?;
        // The due index is written with the subscription, so it is right by construction.
        let due_at = sub.next_due().map(ts);
        let shard = due_shard(&sub.subscription_id, super::lifecycle::SHARDS);
        let n = match expected {
            None => tx.exec(
                "INSERT OR IGNORE INTO subscriptions (subscription_id, user_id, product_id, version, doc, due_at, due_shard) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![sub.subscription_id, sub.user_id, sub.product_id.as_str(), sub.version as i64, doc, due_at, shard],
            )?,
            Some(v) => tx.exec(
                "UPDATE subscriptions SET version = ?2, doc = ?3, due_at = ?5, due_shard = ?6 \
                 WHERE subscription_id = ?1 AND version = ?4",
                params![sub.subscription_id, sub.version as i64, doc, *v as i64, due_at, shard],
            )?,
        };
        if n != 1 {
            return Ok(Err(Conflict::Subscription));
        }
        let user = &sub.user_id;
        let product = sub.product_id.as_str();
        let slot_ok = match commit.live {
            None => true,
            Some(LiveSlot::Claim) => {
                tx.exec(
                    "INSERT OR IGNORE INTO live_slots (user_id, product_id, subscription_id) VALUES (?1, ?2, ?3)",
                    params![user, product, sub.subscription_id],
                )? == 1
            }
            Some(LiveSlot::Release) => {
                tx.exec(
                    "DELETE FROM live_slots WHERE user_id = ?1 AND product_id = ?2 AND subscription_id = ?3",
                    params![user, product, sub.subscription_id],
                )? == 1
            }
        };
        if !slot_ok {
            return Ok(Err(Conflict::Subscription));
        }
        if commit.trial
            && tx.exec("INSERT OR IGNORE INTO trials (user_id, product_id) VALUES (?1, ?2)", params![user, product])?
                == 0
        {
            return Ok(Err(Conflict::TrialUsed));
        }
    }
    if let Some(txn) = &commit.wallet {
        let a = txn.amount.amount_minor;
        let n = match txn.kind {
            TxnKind::Debit => tx.exec(
                "UPDATE wallets SET balance = balance - ?2 WHERE user_id = ?1 AND balance >= ?2",
                params![txn.user_id, a],
            )?,
            TxnKind::Credit => {
                tx.exec("INSERT OR IGNORE INTO wallets (user_id, balance) VALUES (?1, 0)", [&txn.user_id])?;
                tx.exec(
                    "UPDATE wallets SET balance = balance + ?2 WHERE user_id = ?1 AND balance + ?2 <= ?3",
                    params![txn.user_id, a, MAX_BALANCE_MINOR],
                )?
            }
        };
        if n != 1 {
            return Ok(Err(Conflict::Funds));
        }
        tx.exec(
            "INSERT INTO wallet_txns (transaction_id, user_id, created_at, doc) VALUES (?1, ?2, ?3, ?4)",
            params![txn.transaction_id, txn.user_id, ts(txn.created_at), to_doc(txn)?],
        )?;
    }
    if let Some(p) = &commit.payment {
        tx.exec(
            "INSERT INTO payments (payment_id, user_id, created_at, doc) VALUES (?1, ?2, ?3, ?4)",
            params![p.payment_id, p.user_id, ts(p.created_at), to_doc(p)?],
        )?;
    }
    if let Some((user, done)) = &commit.idempotency {
        let n = tx.exec(
            "UPDATE idempotency SET response = ?4 WHERE user_id = ?1 AND key = ?2 AND token = ?3 AND response IS NULL",
            params![user, done.key, done.token, to_doc(&done.response)?],
        )?;
        if n != 1 {
            return Ok(Err(Conflict::Idempotency));
        }
    }
    insert_outbox(tx, &commit.outbox)?;
    Ok(Ok(()))
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn account_state(&self, user_id: &str, product_id: &ProductId) -> Result<AccountState, InfraError> {
        let (user, product) = (user_id.to_string(), product_id.as_str().to_string());
        self.run(move |c| {
            let live_id: Option<String> = c
                .row(
                    "SELECT subscription_id FROM live_slots WHERE user_id = ?1 AND product_id = ?2",
                    params![user, product],
                    |r| r.get(0),
                )
                .optional()?;
            let live = match live_id {
                Some(id) => load_subscription(c, &id)?,
                None => None,
            };
            let trial_used = c
                .row("SELECT 1 FROM trials WHERE user_id = ?1 AND product_id = ?2", params![user, product], |_| Ok(()))
                .optional()?
                .is_some();
            let balance_minor =
                c.row("SELECT balance FROM wallets WHERE user_id = ?1", [&user], |r| r.get(0)).optional()?;
            Ok(AccountState { live, trial_used, balance_minor: balance_minor.unwrap_or(0) })
        })
        .await
    }

    async fn subscription(&self, user_id: &str, subscription_id: &str) -> Result<Option<Subscription>, InfraError> {
        let (user, id) = (user_id.to_string(), subscription_id.to_string());
        self.run(move |c| Ok(load_subscription(c, &id)?.filter(|s| s.user_id == user))).await
    }

    async fn user_subscriptions(&self, user_id: &str) -> Result<Vec<Subscription>, InfraError> {
        let user = user_id.to_string();
        self.run(move |c| {
            docs(c, "SELECT doc FROM subscriptions WHERE user_id = ?1 ORDER BY subscription_id DESC", [user])
        })
        .await
    }

    async fn product_subscriptions(&self, product_id: &ProductId) -> Result<Vec<Subscription>, InfraError> {
        let product = product_id.as_str().to_string();
        self.run(move |c| {
            docs(c, "SELECT doc FROM subscriptions WHERE product_id = ?1 ORDER BY subscription_id DESC", [product])
        })
        .await
    }

    async fn wallet(&self, user_id: &str, limit: usize) -> Result<(i64, Vec<crate::domain::WalletTxn>), InfraError> {
        let user = user_id.to_string();
        self.run(move |c| {
            let balance: Option<i64> =
                c.row("SELECT balance FROM wallets WHERE user_id = ?1", [&user], |r| r.get(0)).optional()?;
            let txns = docs(
                c,
                "SELECT doc FROM wallet_txns WHERE user_id = ?1 ORDER BY created_at DESC, transaction_id DESC LIMIT ?2",
                params![user, limit as i64],
            )?;
            Ok((balance.unwrap_or(0), txns))
        })
        .await
    }

    async fn payments(&self, user_id: &str) -> Result<Vec<crate::domain::Payment>, InfraError> {
        let user = user_id.to_string();
        self.run(move |c| {
            docs(c, "SELECT doc FROM payments WHERE user_id = ?1 ORDER BY created_at DESC, payment_id DESC", [user])
        })
        .await
    }

    async fn commit(&self, commit: &Commit) -> Result<(), CommitError> {
        let commit = commit.clone();
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let outcome = apply(&tx, &commit)?;
                if outcome.is_ok() {
                    tx.commit()?;
                }
                Ok(outcome)
            })
            .await?;
        outcome.map_err(CommitError::Conflict)
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        claim: &IdempotencyClaim,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, InfraError> {
        let cl = claim.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<(String, Option<String>, String, String)> = tx
                .row(
                    "SELECT request_hash, response, lock_until, expires_at FROM idempotency WHERE user_id = ?1 AND key = ?2",
                    params![cl.user_id, cl.key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let now_s = ts(now);
            if let Some((request_hash, response, lock_until, expires_at)) = existing {
                // A dead holder's claim is taken over only for the same request: another body
                // under its key is still 422.
                let live =
                    expires_at > now_s && (response.is_some() || lock_until > now_s || request_hash != cl.request_hash);
                if live {
                    let response = response.map(from_doc).transpose()?;
                    return Ok(ClaimOutcome::Existing(IdempotencyRecord { request_hash, response }));
                }
            }
            tx.exec(
                "INSERT OR REPLACE INTO idempotency (user_id, key, request_hash, token, lock_until, response, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
                params![cl.user_id, cl.key, cl.request_hash, cl.token, ts(cl.lock_until), ts(cl.expires_at)],
            )?;
            tx.commit()?;
            Ok(ClaimOutcome::Claimed)
        })
        .await
    }

    async fn complete_idempotency(&self, user_id: &str, done: &IdempotencyCompletion) -> Result<bool, InfraError> {
        let (user, done) = (user_id.to_string(), done.clone());
        self.run(move |c| {
            c.exec(
                "UPDATE idempotency SET response = ?4 WHERE user_id = ?1 AND key = ?2 AND token = ?3 AND response IS NULL",
                params![user, done.key, done.token, to_doc(&done.response)?],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn release_idempotency(&self, user_id: &str, key: &str, token: &str) -> Result<(), InfraError> {
        let (user, key, token) = (user_id.to_string(), key.to_string(), token.to_string());
        self.run(move |c| {
            c.exec(
                "DELETE FROM idempotency WHERE user_id = ?1 AND key = ?2 AND token = ?3 AND response IS NULL",
                params![user, key, token],
            )
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn pending_outbox(
        &self,
        before: DateTime<Utc>,
        after: Option<&OutboxEntry>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, InfraError> {
        // Without a cursor, start before the first possible entry.
        let (after_at, after_id) =
            after.map_or((String::new(), String::new()), |e| (ts(e.created_at), e.job.job_id.clone()));
        self.run(move |c| {
            docs(
                c,
                "SELECT doc FROM outbox WHERE created_at < ?1 AND (created_at, job_id) > (?2, ?3) \
                 ORDER BY created_at, job_id LIMIT ?4",
                params![ts(before), after_at, after_id, limit as i64],
            )
        })
        .await
    }

    async fn delete_outbox(&self, entry: &OutboxEntry) -> Result<(), InfraError> {
        let id = entry.job.job_id.clone();
        self.run(move |c| c.exec("DELETE FROM outbox WHERE job_id = ?1", [id]).map(|_| ())).await
    }

    async fn delete_outbox_many(&self, entries: &[OutboxEntry]) -> Result<(), InfraError> {
        let ids: Vec<String> = entries.iter().map(|e| e.job.job_id.clone()).collect();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for id in &ids {
                tx.exec("DELETE FROM outbox WHERE job_id = ?1", [id])?;
            }
            tx.commit()
        })
        .await
    }
}
