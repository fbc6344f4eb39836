//! The catalog, subscriptions, wallets, idempotency keys and the outbox in the single table
//! (see design.md). Records are JSON documents (`doc`) beside the attributes that keys,
//! indexes and conditions use. A commit is one `TransactWriteItems`.

use async_trait::async_trait;

use crate::adapters::aws_errors::dynamo;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ConditionCheck, Delete, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use super::{failed_conditions, get_n, get_s, key, n, s, ts, ttl, unless_condition_failed, user_pk, DynamoStore, Item};
use crate::domain::{Plan, Product, ProductId, Subscription, TxnKind, MAX_BALANCE_MINOR};
use crate::ports::*;

const CATALOG: &str = "CATALOG";
/// Outbox entries are spread over a few partitions so one hot partition never limits writes.
const OUTBOX_SHARDS: u32 = 4;

pub(super) fn doc<T: serde::Serialize>(v: &T) -> anyhow::Result<AV> {
    Ok(s(serde_json::to_string(v)?))
}

pub(super) fn from_doc<T: DeserializeOwned>(item: &Item) -> anyhow::Result<T> {
    Ok(serde_json::from_str(get_s(item, "doc")?)?)
}

fn product_pk(id: &str) -> String {
    format!("PRODUCT#{id}")
}

fn product_item(p: &Product) -> anyhow::Result<Item> {
    let mut item = key(product_pk(p.product_id.as_str()), "PRODUCT");
    item.extend([
        ("GSI1PK".into(), s(CATALOG)),
        ("GSI1SK".into(), s(p.product_id.as_str())),
        ("kind".into(), s("product")),
        ("version".into(), n(p.version)),
        ("doc".into(), doc(p)?),
    ]);
    Ok(item)
}

fn plan_item(product_id: &ProductId, plan: &Plan) -> anyhow::Result<Item> {
    let mut item = key(product_pk(product_id.as_str()), format!("PLAN#{}", plan.plan_id));
    item.extend([
        ("GSI1PK".into(), s(CATALOG)),
        ("GSI1SK".into(), s(format!("{product_id}#{}", plan.plan_id))),
        ("kind".into(), s("plan")),
        ("product_id".into(), s(product_id.as_str())),
        ("doc".into(), doc(plan)?),
    ]);
    Ok(item)
}

/// Folds a product's items (its own and its plans') into products, keeping their order.
fn products_from(items: &[Item]) -> anyhow::Result<Vec<Product>> {
    let mut products: Vec<Product> = Vec::new();
    let mut plans: HashMap<String, Vec<Plan>> = HashMap::new();
    for item in items {
        match get_s(item, "kind")? {
            "product" => products.push(from_doc(item)?),
            _ => plans.entry(get_s(item, "product_id")?.to_string()).or_default().push(from_doc(item)?),
        }
    }
    for p in &mut products {
        p.plans = plans.remove(p.product_id.as_str()).unwrap_or_default();
        p.sort_plans();
    }
    Ok(products)
}

fn sub_item(sub: &Subscription, shards: u32) -> anyhow::Result<Item> {
    let mut item = key(user_pk(&sub.user_id), format!("SUB#{}", sub.subscription_id));
    item.extend([
        ("GSI3PK".into(), s(format!("PSUB#{}", sub.product_id))),
        ("GSI3SK".into(), s(&sub.subscription_id)),
        ("version".into(), n(sub.version)),
        ("doc".into(), doc(sub)?),
    ]);
    // The sparse due index (GSI2), written with every write of the subscription so it is
    // right by construction; an ended subscription has no entry.
    if let Some(due) = sub.next_due() {
        let (pk, sk) = super::lifecycle::due_keys(sub, due, shards);
        item.extend([("GSI2PK".into(), s(pk)), ("GSI2SK".into(), s(sk))]);
    }
    Ok(item)
}

fn idem_key(user_id: &str, k: &str) -> Item {
    key(format!("IDEM#{user_id}#{k}"), "IDEM")
}

fn outbox_key(e: &OutboxEntry) -> Item {
    let shard = e.job.job_id.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b))) % OUTBOX_SHARDS;
    let sk = format!("{}#{}", super::ts_string(e.created_at), e.job.job_id);
    key(format!("OUTBOX#{shard}"), sk)
}

/// An outbox entry as an item, to write in the transaction of the change that causes it.
pub(super) fn outbox_item(e: &OutboxEntry) -> anyhow::Result<Item> {
    let mut item = outbox_key(e);
    item.insert("doc".into(), doc(e)?);
    Ok(item)
}

impl DynamoStore {
    /// Every item of one partition (optionally under an SK prefix), following pages.
    pub(super) async fn query_partition(
        &self,
        index: Option<&str>,
        pk: &str,
        sk_prefix: Option<&str>,
        forward: bool,
        limit: Option<usize>,
    ) -> anyhow::Result<Vec<Item>> {
        let (pk_attr, sk_attr) = match index {
            Some(i) => (format!("{i}PK"), format!("{i}SK")),
            None => ("PK".to_string(), "SK".to_string()),
        };
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .scan_index_forward(forward)
                .expression_attribute_names("#pk", pk_attr.clone())
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", sk_attr.clone())
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("#pk = :pk"),
            };
            q = match index {
                Some(i) => q.index_name(i),
                None => q.consistent_read(true),
            };
            if let Some(l) = limit {
                q = q.limit((l - out.len()).min(1000) as i32);
            }
            let page = q.send().await.map_err(dynamo)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if limit.is_none_or(|l| out.len() < l) => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    pub(super) fn update(
        &self,
        key: Item,
        expr: &str,
        cond: Option<&str>,
        names: &[(&str, &str)],
        values: Vec<(&str, AV)>,
    ) -> anyhow::Result<TransactWriteItem> {
        let mut u = Update::builder().table_name(&self.table).set_key(Some(key)).update_expression(expr);
        if let Some(c) = cond {
            u = u.condition_expression(c);
        }
        for (k, v) in names {
            u = u.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            u = u.expression_attribute_values(k, v);
        }
        Ok(TransactWriteItem::builder().update(u.build()?).build())
    }
}

#[async_trait]
impl CatalogStore for DynamoStore {
    async fn create_product(&self, product: &Product) -> Result<(), CatalogWriteError> {
        let mut items = vec![self.put(product_item(product)?, Some("attribute_not_exists(PK)"))?];
        for plan in &product.plans {
            items.push(self.put(plan_item(&product.product_id, plan)?, Some("attribute_not_exists(PK)"))?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(f) if f.first() == Some(&true) => Err(CatalogWriteError::Exists),
                _ => Err(CatalogWriteError::Infra(dynamo(e))),
            },
        }
    }

    async fn update_product(&self, product: &Product, expected: u64) -> Result<bool, InfraError> {
        let mut p = product.clone();
        p.version = expected + 1;
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(product_item(&p)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(expected));
        Ok(unless_condition_failed(req.send().await)?.is_some())
    }

    async fn add_plan(&self, product_id: &ProductId, plan: &Plan) -> Result<(), CatalogWriteError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(product_pk(product_id.as_str()), "PRODUCT")))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(anyhow::Error::from)?;
        let items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            self.put(plan_item(product_id, plan)?, Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(f) if f.first() == Some(&true) => Err(CatalogWriteError::NotFound),
                Some(f) if f.get(1) == Some(&true) => Err(CatalogWriteError::Exists),
                _ => Err(CatalogWriteError::Infra(dynamo(e))),
            },
        }
    }

    async fn upsert_product(&self, product: &Product) -> Result<(), InfraError> {
        let mut items = vec![self.put(product_item(product)?, None)?];
        for plan in &product.plans {
            items.push(self.put(plan_item(&product.product_id, plan)?, None)?);
        }
        // A transaction holds at most 100 items; a product has at most 50 plans.
        self.transact(items).await.map_err(dynamo)?;
        Ok(())
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, InfraError> {
        let items = self.query_partition(None, &product_pk(id.as_str()), None, true, None).await?;
        Ok(products_from(&items)?.pop())
    }

    async fn list_products(&self) -> Result<Vec<Product>, InfraError> {
        // One query on GSI1 reads the whole catalog, products and plans.
        let items = self.query_partition(Some("GSI1"), CATALOG, None, true, None).await?;
        products_from(&items)
    }
}

#[async_trait]
impl SubscriptionStore for DynamoStore {
    async fn account_state(&self, user_id: &str, product_id: &ProductId) -> Result<AccountState, InfraError> {
        let pk = user_pk(user_id);
        let keys = [format!("LIVE#{product_id}"), format!("TRIAL#{product_id}"), "WALLET".to_string()]
            .into_iter()
            .map(|sk| key(pk.clone(), sk))
            .collect();
        let found = self.batch_get(keys).await?;
        let sk_of = |item: &Item| get_s(item, "SK").map(str::to_string).unwrap_or_default();
        let mut state = AccountState { live: None, trial_used: false, balance_minor: 0 };
        for item in &found {
            let sk = sk_of(item);
            if sk == "WALLET" {
                state.balance_minor = get_n(item, "balance")?;
            } else if sk.starts_with("TRIAL#") {
                state.trial_used = true;
            } else if sk.starts_with("LIVE#") {
                let sub_id = get_s(item, "subscription_id")?;
                state.live = self.subscription(user_id, sub_id).await?;
            }
        }
        Ok(state)
    }

    async fn subscription(&self, user_id: &str, subscription_id: &str) -> Result<Option<Subscription>, InfraError> {
        let item = self.get(key(user_pk(user_id), format!("SUB#{subscription_id}"))).await?;
        item.as_ref().map(from_doc).transpose()
    }

    async fn user_subscriptions(&self, user_id: &str) -> Result<Vec<Subscription>, InfraError> {
        let items = self.query_partition(None, &user_pk(user_id), Some("SUB#"), false, None).await?;
        items.iter().map(from_doc).collect()
    }

    async fn product_subscriptions(&self, product_id: &ProductId) -> Result<Vec<Subscription>, InfraError> {
        let items = self.query_partition(Some("GSI3"), &format!("PSUB#{product_id}"), None, false, None).await?;
        items.iter().map(from_doc).collect()
    }

    async fn wallet(&self, user_id: &str, limit: usize) -> Result<(i64, Vec<crate::domain::WalletTxn>), InfraError> {
        let balance = match self.get(key(user_pk(user_id), "WALLET")).await? {
            Some(item) => get_n(&item, "balance")?,
            None => 0,
        };
        if limit == 0 {
            return Ok((balance, Vec::new()));
        }
        let items = self.query_partition(None, &user_pk(user_id), Some("WTX#"), false, Some(limit)).await?;
        Ok((balance, items.iter().map(from_doc).collect::<anyhow::Result<_>>()?))
    }

    async fn payments(&self, user_id: &str) -> Result<Vec<crate::domain::Payment>, InfraError> {
        let items = self.query_partition(None, &user_pk(user_id), Some("PAY#"), false, None).await?;
        items.iter().map(from_doc).collect()
    }

    async fn commit(&self, commit: &Commit) -> Result<(), CommitError> {
        // Each item, and the conflict its failed condition means.
        let mut items: Vec<(TransactWriteItem, Option<Conflict>)> = Vec::new();
        if let Some((sub, expected)) = &commit.subscription {
            let item = sub_item(sub, self.due_shards)?;
            items.push(match expected {
                None => (self.put(item, Some("attribute_not_exists(PK)"))?, Some(Conflict::Subscription)),
                Some(v) => {
                    let p = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(*v))
                        .build()
                        .map_err(anyhow::Error::from)?;
                    (TransactWriteItem::builder().put(p).build(), Some(Conflict::Subscription))
                }
            });
            let pk = user_pk(&sub.user_id);
            match commit.live {
                None => {}
                Some(LiveSlot::Claim) => {
                    let mut slot = key(pk.clone(), format!("LIVE#{}", sub.product_id));
                    slot.insert("subscription_id".into(), s(&sub.subscription_id));
                    items.push((self.put(slot, Some("attribute_not_exists(PK)"))?, Some(Conflict::Subscription)));
                }
                Some(LiveSlot::Release) => {
                    let d = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(pk.clone(), format!("LIVE#{}", sub.product_id))))
                        .condition_expression("subscription_id = :id")
                        .expression_attribute_values(":id", s(&sub.subscription_id))
                        .build()
                        .map_err(anyhow::Error::from)?;
                    items.push((TransactWriteItem::builder().delete(d).build(), Some(Conflict::Subscription)));
                }
            }
            if commit.trial {
                let marker = key(pk, format!("TRIAL#{}", sub.product_id));
                items.push((self.put(marker, Some("attribute_not_exists(PK)"))?, Some(Conflict::TrialUsed)));
            }
        }
        if let Some(txn) = &commit.wallet {
            let pk = user_pk(&txn.user_id);
            let a = txn.amount.amount_minor;
            let update = match txn.kind {
                TxnKind::Debit => self.update(
                    key(pk.clone(), "WALLET"),
                    "SET balance = balance - :a",
                    Some("balance >= :a"),
                    &[],
                    vec![(":a", n(a))],
                )?,
                TxnKind::Credit => self.update(
                    key(pk.clone(), "WALLET"),
                    "ADD balance :a",
                    Some("attribute_not_exists(balance) OR balance <= :room"),
                    &[],
                    vec![(":a", n(a)), (":room", n(MAX_BALANCE_MINOR - a))],
                )?,
            };
            items.push((update, Some(Conflict::Funds)));
            let mut t = key(pk, format!("WTX#{}#{}", super::ts_string(txn.created_at), txn.transaction_id));
            t.insert("doc".into(), doc(txn)?);
            items.push((self.put(t, None)?, None));
        }
        if let Some(p) = &commit.payment {
            let mut item = key(user_pk(&p.user_id), format!("PAY#{}#{}", super::ts_string(p.created_at), p.payment_id));
            item.insert("doc".into(), doc(p)?);
            items.push((self.put(item, None)?, None));
        }
        if let Some((user, done)) = &commit.idempotency {
            let update = self.update(
                idem_key(user, &done.key),
                "SET #r = :r",
                Some("#t = :t AND attribute_not_exists(#r)"),
                // `response` and `token` are reserved words.
                &[("#r", "response"), ("#t", "token")],
                vec![(":r", doc(&done.response)?), (":t", s(&done.token))],
            )?;
            items.push((update, Some(Conflict::Idempotency)));
        }
        for e in &commit.outbox {
            items.push((self.put(outbox_item(e)?, None)?, None));
        }
        let (writes, meaning): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        match self.transact(writes).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(f) => match f.iter().zip(&meaning).find(|(failed, _)| **failed) {
                    Some((_, Some(c))) => Err(CommitError::Conflict(*c)),
                    Some((_, None)) => Err(CommitError::Infra(dynamo(e))),
                    // Cancelled with no failed condition: concurrent transactions kept
                    // conflicting past the retries. The state moved; read it again.
                    None => Err(CommitError::Conflict(Conflict::Subscription)),
                },
                None => Err(CommitError::Infra(dynamo(e))),
            },
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim_idempotency(
        &self,
        claim: &IdempotencyClaim,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, InfraError> {
        let mut item = idem_key(&claim.user_id, &claim.key);
        item.extend([
            ("request_hash".into(), s(&claim.request_hash)),
            ("token".into(), s(&claim.token)),
            ("lock_until".into(), ts(claim.lock_until)),
            ("expires_at".into(), ts(claim.expires_at)),
            ("ttl".into(), ttl(claim.expires_at)),
        ]);
        // A record blocks the key while it lives: until it expires, and while running only
        // until its lock runs out (its holder died). A dead holder's claim is taken over only
        // for the same request: another body under its key is still 422.
        let held = self
            .put_or_read(
                item,
                "attribute_not_exists(PK) OR expires_at < :now OR (attribute_not_exists(#r) AND lock_until < :now AND request_hash = :h)",
                &[("#r", "response")],
                &[(":now", ts(now)), (":h", s(&claim.request_hash))],
            )
            .await?;
        let Some(existing) = held else { return Ok(ClaimOutcome::Claimed) };
        let response = match existing.get("response") {
            Some(AV::S(r)) => Some(serde_json::from_str(r)?),
            _ => None,
        };
        Ok(ClaimOutcome::Existing(IdempotencyRecord {
            request_hash: get_s(&existing, "request_hash")?.to_string(),
            response,
        }))
    }

    async fn complete_idempotency(&self, user_id: &str, done: &IdempotencyCompletion) -> Result<bool, InfraError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(idem_key(user_id, &done.key)))
            .update_expression("SET #r = :r")
            .condition_expression("#t = :t AND attribute_not_exists(#r)")
            .expression_attribute_names("#r", "response")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":r", doc(&done.response)?)
            .expression_attribute_values(":t", s(&done.token));
        Ok(unless_condition_failed(req.send().await)?.is_some())
    }

    async fn release_idempotency(&self, user_id: &str, k: &str, token: &str) -> Result<(), InfraError> {
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(idem_key(user_id, k)))
            .condition_expression("#t = :t AND attribute_not_exists(#r)")
            .expression_attribute_names("#r", "response")
            .expression_attribute_names("#t", "token")
            .expression_attribute_values(":t", s(token));
        unless_condition_failed(req.send().await)?;
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for DynamoStore {
    async fn pending_outbox(
        &self,
        before: DateTime<Utc>,
        after: Option<&OutboxEntry>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, InfraError> {
        // The sort key is `<fixed-width time>#<job id>`, so string order is (time, id) order.
        let after_sk = after.map(|e| format!("{}#{}", super::ts_string(e.created_at), e.job.job_id));
        let mut out: Vec<OutboxEntry> = Vec::new();
        for shard in 0..OUTBOX_SHARDS {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(format!("OUTBOX#{shard}")))
                .expression_attribute_values(":before", s(super::ts_string(before)))
                .limit(limit as i32 + 1);
            q = match &after_sk {
                None => q.key_condition_expression("PK = :pk AND SK < :before"),
                // BETWEEN includes the cursor itself; it is skipped below.
                Some(a) => q
                    .key_condition_expression("PK = :pk AND SK BETWEEN :after AND :before")
                    .expression_attribute_values(":after", s(a)),
            };
            for item in q.send().await.map_err(dynamo)?.items.unwrap_or_default() {
                if after_sk.as_deref() == Some(get_s(&item, "SK")?) {
                    continue;
                }
                out.push(from_doc(&item)?);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.job.job_id).cmp(&(b.created_at, &b.job.job_id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn delete_outbox(&self, entry: &OutboxEntry) -> Result<(), InfraError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(outbox_key(entry)))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }
}
