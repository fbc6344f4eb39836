//! The production store: one DynamoDB table (see ../../design.md, "Single-table design").
//! Uniqueness and atomicity come from conditional writes and `TransactWriteItems`; reads that
//! decide something are strongly consistent. TTL deletes lazily, so reads check `expires_at`.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

mod commerce;
mod email_log;
mod lifecycle;

use crate::adapters::aws_errors::dynamo;
use crate::domain::{Email, OtpPurpose, OtpRecord, PasswordHash, Role, User, Username};
use crate::ports::*;

type Item = HashMap<String, AV>;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// The due index's shard count (see `domain::lifecycle::DUE_SHARDS`).
    due_shards: u32,
}

fn s(v: impl Into<String>) -> AV {
    AV::S(v.into())
}

fn n(v: impl ToString) -> AV {
    AV::N(v.to_string())
}

/// Fixed width, so timestamps compare and sort as strings.
fn ts_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn ts(t: DateTime<Utc>) -> AV {
    AV::S(ts_string(t))
}

/// The `ttl` attribute: epoch seconds, a day after the item stops mattering.
fn ttl(t: DateTime<Utc>) -> AV {
    n(t.timestamp() + 86_400)
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))])
}

fn get_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    match item.get(name) {
        Some(AV::S(v)) => Ok(v),
        _ => anyhow::bail!("item attribute {name} is missing or not a string"),
    }
}

fn get_n(item: &Item, name: &str) -> anyhow::Result<i64> {
    match item.get(name) {
        Some(AV::N(v)) => Ok(v.parse()?),
        _ => anyhow::bail!("item attribute {name} is missing or not a number"),
    }
}

fn get_bool(item: &Item, name: &str) -> anyhow::Result<bool> {
    match item.get(name) {
        Some(AV::Bool(v)) => Ok(*v),
        _ => anyhow::bail!("item attribute {name} is missing or not a boolean"),
    }
}

fn get_ts(item: &Item, name: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(get_s(item, name)?)?.with_timezone(&Utc))
}

fn user_pk(id: &str) -> String {
    format!("USER#{id}")
}

fn email_pk(email: &Email) -> String {
    format!("EMAIL#{}", email.as_str())
}

fn otp_sk(purpose: OtpPurpose) -> String {
    format!("OTP#{}", purpose.as_str())
}

fn user_item(u: &User) -> Item {
    let mut item = key(user_pk(&u.id), "PROFILE");
    item.extend([
        ("id".into(), s(&u.id)),
        ("email".into(), s(u.email.as_str())),
        ("username".into(), s(u.username.as_str())),
        ("role".into(), s(u.role.as_str())),
        ("email_verified".into(), AV::Bool(u.email_verified)),
        ("locale".into(), s(&u.locale)),
        ("created_at".into(), ts(u.created_at)),
        ("password_hash".into(), s(&u.password_hash.0)),
        ("token_generation".into(), n(u.token_generation)),
    ]);
    item
}

fn user_from_item(item: &Item) -> anyhow::Result<User> {
    Ok(User {
        id: get_s(item, "id")?.to_string(),
        email: Email::parse(get_s(item, "email")?).map_err(|_| anyhow::anyhow!("stored email is invalid"))?,
        username: Username::parse(get_s(item, "username")?)
            .map_err(|_| anyhow::anyhow!("stored username is invalid"))?,
        role: get_s(item, "role")?.parse().map_err(|_| anyhow::anyhow!("stored role is invalid"))?,
        email_verified: get_bool(item, "email_verified")?,
        locale: get_s(item, "locale")?.to_string(),
        created_at: get_ts(item, "created_at")?,
        password_hash: PasswordHash(get_s(item, "password_hash")?.to_string()),
        token_generation: get_n(item, "token_generation")? as u64,
    })
}

fn otp_item(email: &Email, purpose: OtpPurpose, otp: &OtpRecord) -> Item {
    let mut item = key(email_pk(email), otp_sk(purpose));
    item.extend([
        ("code_mac".into(), s(&otp.code_mac)),
        ("attempts".into(), n(otp.attempts)),
        ("created_at".into(), ts(otp.created_at)),
        ("expires_at".into(), ts(otp.expires_at)),
        ("ttl".into(), ttl(otp.expires_at)),
    ]);
    item
}

fn otp_from_item(item: &Item) -> anyhow::Result<OtpRecord> {
    Ok(OtpRecord {
        code_mac: get_s(item, "code_mac")?.to_string(),
        attempts: get_n(item, "attempts")? as u32,
        created_at: get_ts(item, "created_at")?,
        expires_at: get_ts(item, "expires_at")?,
    })
}

fn refresh_item(r: &RefreshTokenRecord) -> Item {
    let mut item = key(format!("REFRESH#{}", r.token_hash), "REFRESH");
    item.extend([
        ("token_hash".into(), s(&r.token_hash)),
        ("user_id".into(), s(&r.user_id)),
        ("family_id".into(), s(&r.family_id)),
        ("generation".into(), n(r.generation)),
        ("rotated".into(), AV::Bool(r.rotated)),
        ("expires_at".into(), ts(r.expires_at)),
        ("ttl".into(), ttl(r.expires_at)),
    ]);
    item
}

fn family_key(family_id: &str) -> Item {
    key(format!("FAMILY#{family_id}"), "FAMILY")
}

/// A conditional single-item write: `Some(output)` when applied, `None` when its condition
/// failed, an error for anything else.
fn unless_condition_failed<T, E>(
    res: Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> anyhow::Result<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match res {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => Ok(None),
        Err(e) => Err(dynamo(e)),
    }
}

/// For a cancelled transaction: which of its items failed their condition.
fn failed_conditions(
    err: &SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Option<Vec<bool>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            Some(e.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect())
        }
        _ => None,
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into(), due_shards: crate::domain::lifecycle::DUE_SHARDS }
    }

    /// Spreads the due index over `shards` partitions (1 to `MAX_DUE_SHARDS`) instead of the
    /// default. Every function of a deployment must use the same count.
    pub fn with_due_shards(mut self, shards: u32) -> Self {
        self.due_shards = shards.clamp(1, crate::domain::lifecycle::MAX_DUE_SHARDS);
        self
    }

    fn put(&self, item: Item, condition: Option<&str>) -> anyhow::Result<TransactWriteItem> {
        let mut p = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(c) = condition {
            p = p.condition_expression(c);
        }
        Ok(TransactWriteItem::builder().put(p.build()?).build())
    }

    async fn get(&self, key: Item) -> anyhow::Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.item)
    }

    /// The items of `keys` that exist, in any order: BatchGetItem, 100 keys a call, strongly
    /// consistent, with what DynamoDB leaves unprocessed asked again after a short pause.
    async fn batch_get(&self, keys: Vec<Item>) -> anyhow::Result<Vec<Item>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = Some(HashMap::from([(
                self.table.clone(),
                KeysAndAttributes::builder().set_keys(Some(chunk.to_vec())).consistent_read(true).build()?,
            )]));
            let mut pause = std::time::Duration::from_millis(10);
            while let Some(req) = pending.take() {
                let out = self.client.batch_get_item().set_request_items(Some(req)).send().await.map_err(dynamo)?;
                found.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
                pending = out.unprocessed_keys.filter(|u| !u.is_empty());
                if pending.is_some() {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
            }
        }
        Ok(found)
    }

    /// Puts `item` if `condition` holds; otherwise reads the item that holds its key. `None`:
    /// written; `Some(item)`: held by that item. When the holder vanishes between the two
    /// calls, the put is tried again (a few times).
    async fn put_or_read(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AV)],
    ) -> anyhow::Result<Option<Item>> {
        let k = key(get_s(&item, "PK")?, get_s(&item, "SK")?);
        for _ in 0..3 {
            let mut req = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(condition);
            for (n, v) in names {
                req = req.expression_attribute_names(*n, *v);
            }
            for (n, v) in values {
                req = req.expression_attribute_values(*n, v.clone());
            }
            if unless_condition_failed(req.send().await)?.is_some() {
                return Ok(None);
            }
            if let Some(existing) = self.get(k.clone()).await? {
                return Ok(Some(existing));
            }
        }
        anyhow::bail!("the item at {k:?} kept changing while it was claimed")
    }

    /// Runs a transaction. A cancellation caused only by a conflicting concurrent transaction
    /// (no failed condition) is retried a few times with jitter; the retry then sees the
    /// winner's write and fails its condition properly, so races end as 409s, not 500s.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>> {
        let mut attempt = 0u32;
        loop {
            let res = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let conflict_only = match &res {
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        let reasons = c.cancellation_reasons();
                        reasons.iter().any(|r| r.code() == Some("TransactionConflict"))
                            && !reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                    _ => false,
                },
                Ok(_) => false,
            };
            if !conflict_only || attempt >= 5 {
                return res.map(|_| ());
            }
            attempt += 1;
            let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..(10u64 << attempt));
            tokio::time::sleep(std::time::Duration::from_millis(5 + jitter)).await;
        }
    }

    /// Creates the table with the key schema and indexes that `template.yaml` declares. For
    /// tests and local runs against a DynamoDB-compatible server.
    pub async fn create_table(client: &Client, table: &str) -> anyhow::Result<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let ks = |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build();
        let mut req = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .key_schema(ks("PK", KeyType::Hash)?)
            .key_schema(ks("SK", KeyType::Range)?);
        for g in ["GSI1", "GSI2", "GSI3"] {
            req = req
                .attribute_definitions(attr(&format!("{g}PK"))?)
                .attribute_definitions(attr(&format!("{g}SK"))?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(g)
                        .key_schema(ks(&format!("{g}PK"), KeyType::Hash)?)
                        .key_schema(ks(&format!("{g}SK"), KeyType::Range)?)
                        .projection(Projection::builder().projection_type(ProjectionType::All).build())
                        .build()?,
                );
        }
        req.send().await.map_err(dynamo)?;
        // As in template.yaml: expired items go away by themselves (reads check `expires_at`).
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()?,
            )
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }
}

#[async_trait]
impl StorePing for DynamoStore {
    async fn ping(&self) -> Result<(), InfraError> {
        self.client.describe_table().table_name(&self.table).send().await.map_err(dynamo)?;
        Ok(())
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &User, otp: &OtpRecord, outbox: &[OutboxEntry]) -> Result<(), CreateUserError> {
        let mut email_claim = key(email_pk(&user.email), "EMAIL");
        email_claim.insert("user_id".into(), s(&user.id));
        let mut username_claim = key(format!("USERNAME#{}", user.username.canonical()), "USERNAME");
        username_claim.insert("user_id".into(), s(&user.id));
        let mut items = vec![
            self.put(user_item(user), Some("attribute_not_exists(PK)"))?,
            self.put(email_claim, Some("attribute_not_exists(PK)"))?,
            self.put(username_claim, Some("attribute_not_exists(PK)"))?,
            self.put(otp_item(&user.email, OtpPurpose::Verification, otp), None)?,
        ];
        for e in outbox {
            items.push(self.put(commerce::outbox_item(e)?, None)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(f) if f.get(1) == Some(&true) => Err(CreateUserError::EmailTaken),
                Some(f) if f.get(2) == Some(&true) => Err(CreateUserError::UsernameTaken),
                _ => Err(CreateUserError::Infra(dynamo(e))),
            },
        }
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, InfraError> {
        let Some(claim) = self.get(key(email_pk(email), "EMAIL")).await? else { return Ok(None) };
        self.user_by_id(get_s(&claim, "user_id")?).await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, InfraError> {
        self.get(key(user_pk(id), "PROFILE")).await?.as_ref().map(user_from_item).transpose()
    }

    async fn users_by_id(&self, ids: &[String]) -> Result<Vec<User>, InfraError> {
        let items = self.batch_get(ids.iter().map(|id| key(user_pk(id), "PROFILE")).collect()).await?;
        items.iter().map(user_from_item).collect()
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        expected: &PasswordHash,
        hash: &PasswordHash,
    ) -> Result<bool, InfraError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user_id), "PROFILE")))
            .update_expression("SET password_hash = :h")
            .condition_expression("password_hash = :old")
            .expression_attribute_values(":h", s(&hash.0))
            .expression_attribute_values(":old", s(&expected.0))
            .send()
            .await;
        Ok(unless_condition_failed(res)?.is_some())
    }

    async fn set_role(&self, user_id: &str, role: Role) -> Result<bool, InfraError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user_id), "PROFILE")))
            .update_expression("SET #r = :r")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#r", "role")
            .expression_attribute_values(":r", s(role.as_str()))
            .send()
            .await;
        Ok(unless_condition_failed(res)?.is_some())
    }
}

#[async_trait]
impl OtpStore for DynamoStore {
    async fn put_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        otp: &OtpRecord,
        outbox: &[OutboxEntry],
    ) -> Result<(), InfraError> {
        if outbox.is_empty() {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(otp_item(email, purpose, otp)))
                .send()
                .await
                .map_err(dynamo)?;
            return Ok(());
        }
        let mut items = vec![self.put(otp_item(email, purpose, otp), None)?];
        for e in outbox {
            items.push(self.put(commerce::outbox_item(e)?, None)?);
        }
        self.transact(items).await.map_err(dynamo)?;
        Ok(())
    }

    async fn get_otp(&self, email: &Email, purpose: OtpPurpose) -> Result<Option<OtpRecord>, InfraError> {
        self.get(key(email_pk(email), otp_sk(purpose))).await?.as_ref().map(otp_from_item).transpose()
    }

    async fn take_attempt(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        max: u32,
    ) -> Result<Option<OtpRecord>, InfraError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(email), otp_sk(purpose))))
            .update_expression("ADD attempts :one")
            .condition_expression("attribute_exists(PK) AND attempts < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match unless_condition_failed(res)? {
            Some(out) => otp_from_item(
                out.attributes.as_ref().ok_or_else(|| anyhow::anyhow!("UpdateItem returned no attributes"))?,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    async fn delete_otp(&self, email: &Email, purpose: OtpPurpose, code_mac: &str) -> Result<(), InfraError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(email), otp_sk(purpose))))
            .condition_expression("code_mac = :m")
            .expression_attribute_values(":m", s(code_mac))
            .send()
            .await;
        // Nothing to do when the item is missing or no longer matches.
        unless_condition_failed(res)?;
        Ok(())
    }

    async fn redeem_otp(
        &self,
        email: &Email,
        purpose: OtpPurpose,
        code_mac: &str,
        redemption: &OtpRedemption,
    ) -> Result<bool, InfraError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(email), otp_sk(purpose))))
            .condition_expression("code_mac = :m")
            .expression_attribute_values(":m", s(code_mac))
            .build()?;
        let update = match redemption {
            OtpRedemption::VerifyEmail { user_id } => Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(user_id), "PROFILE")))
                .update_expression("SET email_verified = :t")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":t", AV::Bool(true))
                .build()?,
            // The generation bump revokes every refresh token of the account at once.
            OtpRedemption::ResetPassword { user_id, new_hash } => Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(user_id), "PROFILE")))
                .update_expression("SET email_verified = :t, password_hash = :h ADD token_generation :one")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":t", AV::Bool(true))
                .expression_attribute_values(":h", s(&new_hash.0))
                .expression_attribute_values(":one", n(1))
                .build()?,
        };
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) => match failed_conditions(&e) {
                Some(f) if f.first() == Some(&true) => Ok(false),
                _ => Err(dynamo(e)),
            },
        }
    }
}

#[async_trait]
impl ThrottleStore for DynamoStore {
    async fn load(&self, k: &str, now: DateTime<Utc>) -> Result<Option<Versioned<String>>, InfraError> {
        let Some(item) = self.get(key(format!("THROTTLE#{k}"), "THROTTLE")).await? else { return Ok(None) };
        let live = get_ts(&item, "expires_at")? > now;
        Ok(Some(Versioned {
            value: if live { get_s(&item, "value")?.to_string() } else { String::new() },
            version: get_n(&item, "version")? as u64,
        }))
    }

    async fn store(
        &self,
        k: &str,
        value: &str,
        expected: Option<u64>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, InfraError> {
        let mut item = key(format!("THROTTLE#{k}"), "THROTTLE");
        item.extend([
            ("value".into(), s(value)),
            ("version".into(), n(expected.map_or(1, |v| v + 1))),
            ("expires_at".into(), ts(expires_at)),
            ("ttl".into(), ttl(expires_at)),
        ]);
        let mut req = self.client.put_item().table_name(&self.table).set_item(Some(item));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(PK)"),
            Some(v) => req.condition_expression("version = :v").expression_attribute_values(":v", n(v)),
        };
        Ok(unless_condition_failed(req.send().await)?.is_some())
    }
}

#[async_trait]
impl RefreshTokenStore for DynamoStore {
    async fn create_family(&self, first: &RefreshTokenRecord) -> Result<(), InfraError> {
        let mut family = family_key(&first.family_id);
        family.extend([
            ("user_id".into(), s(&first.user_id)),
            ("revoked".into(), AV::Bool(false)),
            ("ttl".into(), ttl(first.expires_at)),
        ]);
        self.transact(vec![
            self.put(family, Some("attribute_not_exists(PK)"))?,
            self.put(refresh_item(first), Some("attribute_not_exists(PK)"))?,
        ])
        .await?;
        Ok(())
    }

    async fn get_refresh(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>, InfraError> {
        let Some(item) = self.get(key(format!("REFRESH#{token_hash}"), "REFRESH")).await? else { return Ok(None) };
        Ok(Some(RefreshTokenRecord {
            token_hash: get_s(&item, "token_hash")?.to_string(),
            user_id: get_s(&item, "user_id")?.to_string(),
            family_id: get_s(&item, "family_id")?.to_string(),
            generation: get_n(&item, "generation")? as u64,
            rotated: get_bool(&item, "rotated")?,
            expires_at: get_ts(&item, "expires_at")?,
        }))
    }

    async fn rotate(&self, old: &RefreshTokenRecord, next: &RefreshTokenRecord) -> Result<Rotation, InfraError> {
        // The conditions below decide, not the caller's copy: `rotated = false` on the old
        // token and `revoked = false` on its family.
        let mark_rotated = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("REFRESH#{}", old.token_hash), "REFRESH")))
            .update_expression("SET rotated = :t")
            .condition_expression("rotated = :f")
            .expression_attribute_values(":t", AV::Bool(true))
            .expression_attribute_values(":f", AV::Bool(false))
            .build()?;
        // Touching the family both checks it is live and pushes its TTL out with the new
        // token, so a session kept alive by rotation outlives its first token's 30 days.
        let family_live = Update::builder()
            .table_name(&self.table)
            .set_key(Some(family_key(&old.family_id)))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("revoked = :f")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":f", AV::Bool(false))
            .expression_attribute_values(":ttl", ttl(next.expires_at))
            .build()?;
        let next = RefreshTokenRecord { family_id: old.family_id.clone(), ..next.clone() };
        let items = vec![
            TransactWriteItem::builder().update(mark_rotated).build(),
            TransactWriteItem::builder().update(family_live).build(),
            self.put(refresh_item(&next), Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(Rotation::Rotated),
            Err(e) => match failed_conditions(&e) {
                Some(f) if f.first() == Some(&true) => {
                    // `rotated = false` failed: the token is gone (TTL), or rotated already.
                    if self.get_refresh(&old.token_hash).await?.is_none() {
                        return Ok(Rotation::NotFound);
                    }
                    if f.get(1) == Some(&true) {
                        return Ok(Rotation::FamilyRevoked);
                    }
                    self.revoke_family(&old.family_id).await?;
                    Ok(Rotation::ReuseDetected)
                }
                Some(f) if f.get(1) == Some(&true) => Ok(Rotation::FamilyRevoked),
                _ => Err(dynamo(e)),
            },
        }
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), InfraError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(family_key(family_id)))
            .update_expression("SET revoked = :t")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":t", AV::Bool(true))
            .send()
            .await;
        // Nothing to do when the item is missing or no longer matches.
        unless_condition_failed(res)?;
        Ok(())
    }
}
