//! Builds the `AppContext` from configuration. Adapters are chosen here, and only here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::adapters::amazon_translate::AmazonTranslate;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::eml_outbox::EmlOutbox;
use crate::adapters::inprocess_queue::InProcessQueue;
use crate::adapters::redis_cache::RedisCache;
use crate::adapters::sqlite::SqliteStore;
use crate::adapters::sqs::SqsEmailQueue;
use crate::app::{AppContext, Stores};
use crate::clock::SystemClock;
use crate::i18n::{TranslationService, TranslationSettings};
use crate::ports::{Clock, EmailQueue, TranslationCache, Translator};
use crate::security::password_hash::{HashCost, PasswordHasherService};
use crate::security::secrets::Secrets;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Dynamodb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    InProcess,
    Sqs,
}

/// What `stark serve` and the ops commands run on.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub data_dir: PathBuf,
    pub store: StoreKind,
    pub table: Option<String>,
    pub queue: QueueKind,
    pub queue_url: Option<String>,
    pub hash_cost: HashCost,
    pub mail_from: String,
    pub enumeration_floor: std::time::Duration,
    /// Redis for the shared translation cache (L2); None: the in-process cache alone.
    pub redis_url: Option<String>,
    pub translate: TranslateKind,
    /// The DynamoDB due index's shard count (`--due-shards`); the same for every process of
    /// a deployment.
    pub due_shards: u32,
    /// Whether this process owns the data dir (`stark serve`): at start it takes over the
    /// email leases that the process before it held. An ops command run beside a server
    /// (`stark lifecycle run`) must not, or it could send what the server is sending.
    pub takes_over_leases: bool,
}

/// Who machine-translates catalog text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslateKind {
    /// Nobody: catalog text is served in its source language.
    None,
    /// Amazon Translate, at the endpoint the usual AWS variables point to.
    Aws,
}

/// How long resend-otp and forgot-password take at least (see `AppContext`): well above a
/// store write plus a queue send, well below what a person notices.
pub const ENUMERATION_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

impl LocalConfig {
    pub fn embedded(data_dir: PathBuf) -> Self {
        LocalConfig {
            data_dir,
            store: StoreKind::Sqlite,
            table: None,
            queue: QueueKind::InProcess,
            queue_url: None,
            hash_cost: HashCost::PRODUCTION,
            mail_from: "Stark Industries <no-reply@stark.example>".into(),
            enumeration_floor: ENUMERATION_FLOOR,
            redis_url: None,
            translate: TranslateKind::None,
            due_shards: crate::domain::lifecycle::DUE_SHARDS,
            takes_over_leases: true,
        }
    }
}

/// The translation layer: Amazon Translate when `translate` says so, behind the in-process
/// cache and, with `redis_url`, Redis. Nothing connects here; Redis is reached on first use.
pub async fn translation_service(
    translate: TranslateKind,
    redis_url: Option<&str>,
) -> anyhow::Result<Arc<TranslationService>> {
    let settings = TranslationSettings::default();
    let translator: Option<Arc<dyn Translator>> = match translate {
        TranslateKind::None => None,
        TranslateKind::Aws => Some(Arc::new(AmazonTranslate::from_sdk_config(&aws_config().await))),
    };
    let l2: Option<Arc<dyn TranslationCache>> = match redis_url {
        Some(url) => Some(Arc::new(RedisCache::new(url, settings.l2_timeout)?)),
        None => None,
    };
    Ok(Arc::new(TranslationService::new(translator, l2, settings)))
}

/// The AWS SDK config from the usual environment (`AWS_REGION`, `AWS_ENDPOINT_URL*`, …),
/// loaded once per process on first need: every client shares it, and a process on the
/// embedded adapters never loads it at all.
pub async fn aws_config() -> aws_config::SdkConfig {
    static SDK: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    SDK.get_or_init(|| {
        use crate::adapters::aws_https::{aws_roots_client, Roots};
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(aws_timeouts());
        match Roots::from_env() {
            Roots::Aws => loader.http_client(aws_roots_client()),
            Roots::System => loader,
        }
        .load()
    })
    .await
    .clone()
}

/// Bounds on every AWS call. Without them a service that accepts the connection and then
/// says nothing (a hung endpoint) would hold the request until Lambda kills it, and the
/// client would get a gateway error instead of our 503. One attempt may take 3 s and a call
/// with its retries 6 s, which leaves a request room to answer 503 `service_unavailable`
/// well inside the 10 s Lambda timeout; a healthy DynamoDB answers in milliseconds.
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(6))
        .build()
}

pub async fn stores_from(cfg: &LocalConfig) -> anyhow::Result<Stores> {
    let (kind, data_dir, table) = (cfg.store, cfg.data_dir.as_path(), cfg.table.as_deref());
    Ok(match kind {
        StoreKind::Sqlite => {
            let store = Arc::new(SqliteStore::open(&data_dir.join("stark.db"))?);
            Stores::from_adapter(store.clone()).with_housekeeping(store)
        }
        StoreKind::Dynamodb => {
            let table = table.ok_or_else(|| anyhow::anyhow!("the DynamoDB store needs a table name (STARK_TABLE)"))?;
            let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
            Stores::from_adapter(Arc::new(DynamoStore::new(client, table).with_due_shards(cfg.due_shards)))
        }
    })
}

/// Creates the single table (key schema and indexes as `template.yaml` declares them) on the
/// DynamoDB endpoint the AWS environment points at.
pub async fn create_dynamo_table(table: &str) -> anyhow::Result<()> {
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    DynamoStore::create_table(&client, table).await
}

/// The context for `stark serve` and the ops commands. With the in-process queue, the worker
/// writing `.eml` files runs on the current runtime; the queue is returned too, to flush it
/// before exiting.
pub async fn local_context(
    cfg: &LocalConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(AppContext, Option<InProcessQueue>)> {
    let stores = stores_from(cfg).await?;
    local_context_with(cfg, clock, stores).await
}

/// As [`local_context`], on stores built by the caller (`cfg.store` and `cfg.table` are not
/// used). The API tests use it to run against DynamoDB on a test server.
pub async fn local_context_with(
    cfg: &LocalConfig,
    clock: Arc<dyn Clock>,
    stores: Stores,
) -> anyhow::Result<(AppContext, Option<InProcessQueue>)> {
    let secrets = Secrets::load_or_create(&cfg.data_dir)?;
    let (email_queue, worker): (Arc<dyn EmailQueue>, _) = match cfg.queue {
        QueueKind::InProcess => {
            let outbox = EmlOutbox::new(&cfg.data_dir.join("outbox"), cfg.mail_from.clone(), clock.clone())?;
            let sender = crate::app::notify::Sender {
                log: stores.email_log.clone(),
                mailer: Arc::new(outbox),
                clock: clock.clone(),
                // One process owns the data dir: what was in flight before this start
                // belongs to a process that is gone.
                takes_over_before: cfg.takes_over_leases.then(|| clock.now()),
            };
            let q = InProcessQueue::start(sender, stores.outbox.clone());
            (Arc::new(q.clone()), Some(q))
        }
        QueueKind::Sqs => {
            let url = cfg
                .queue_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("the SQS queue needs a URL (STARK_EMAIL_QUEUE_URL)"))?;
            (Arc::new(SqsEmailQueue::new(aws_sdk_sqs::Client::new(&aws_config().await), url)), None)
        }
    };
    let ctx = AppContext {
        stores,
        email_queue,
        clock,
        passwords: PasswordHasherService::new(cfg.hash_cost)?,
        keys: secrets.keys,
        otp_pepper: secrets.otp_pepper,
        enumeration_floor: cfg.enumeration_floor,
        translations: translation_service(cfg.translate, cfg.redis_url.as_deref()).await?,
    };
    Ok((ctx, worker))
}

/// `DUE_SHARDS` (1 to 256), the due index's shard count; 32 when unset.
pub fn due_shards_from_env() -> anyhow::Result<u32> {
    use crate::domain::lifecycle::{DUE_SHARDS, MAX_DUE_SHARDS};
    match std::env::var("DUE_SHARDS") {
        Err(_) => Ok(DUE_SHARDS),
        Ok(v) => {
            v.parse().ok().filter(|n| (1..=MAX_DUE_SHARDS).contains(n)).ok_or_else(|| {
                anyhow::anyhow!("DUE_SHARDS must be a whole number from 1 to {MAX_DUE_SHARDS}, not {v:?}")
            })
        }
    }
}

fn required_env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("environment variable {name} is not set"))
}

/// The context on Lambda: DynamoDB (`TABLE_NAME`), SQS (`EMAIL_QUEUE_URL`, optional for
/// functions that send no email), the translation layer (`TRANSLATE_ENABLED=true` for
/// Amazon Translate, `REDIS_URL` for the shared cache; both optional) and the secrets this
/// function was given. Fails when the function lacks something one of its endpoints needs.
pub async fn lambda_context(served: &[crate::http::Endpoint]) -> anyhow::Result<AppContext> {
    let needs = crate::http::router::Needs::of(served);
    let secrets = Secrets::from_env()?;
    anyhow::ensure!(!needs.signing_key || secrets.keys.signer.is_some(), "JWT_PRIVATE_KEY is not set");
    anyhow::ensure!(!needs.verifying_key || secrets.keys.verifier.is_some(), "JWT_PUBLIC_KEY is not set");
    anyhow::ensure!(!needs.otp_pepper || secrets.otp_pepper.is_some(), "OTP_PEPPER is not set");
    anyhow::ensure!(!needs.email_queue || std::env::var("EMAIL_QUEUE_URL").is_ok(), "EMAIL_QUEUE_URL is not set");
    let sdk = aws_config().await;
    let table = required_env("TABLE_NAME")?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table).with_due_shards(due_shards_from_env()?);
    let stores = Stores::from_adapter(Arc::new(store));
    let email_queue: Arc<dyn EmailQueue> = match std::env::var("EMAIL_QUEUE_URL") {
        Ok(url) => Arc::new(SqsEmailQueue::new(aws_sdk_sqs::Client::new(&sdk), url)),
        Err(_) => Arc::new(crate::adapters::NoEmailQueue),
    };
    // Optional both: without them, catalog text is served in its source language.
    let translate = match std::env::var("TRANSLATE_ENABLED").as_deref() {
        Ok("true") => TranslateKind::Aws,
        Ok("false") | Err(_) => TranslateKind::None,
        Ok(other) => anyhow::bail!("TRANSLATE_ENABLED must be true or false, not {other:?}"),
    };
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let translations = translation_service(translate, redis_url.as_deref()).await?;
    Ok(AppContext {
        stores,
        email_queue,
        clock: Arc::new(SystemClock),
        passwords: PasswordHasherService::new(HashCost::PRODUCTION)?,
        keys: secrets.keys,
        otp_pepper: secrets.otp_pepper,
        enumeration_floor: ENUMERATION_FLOOR,
        translations,
    })
}

/// The `email-sender` Lambda's parts: the email log in the table (`TABLE_NAME`), SES v2 with
/// `MAIL_FROM` and the optional `SES_CONFIGURATION_SET`, and the dead-letter queue
/// (`DEAD_LETTER_QUEUE_URL`).
pub async fn sender_from_env() -> anyhow::Result<(crate::app::notify::Sender, Arc<dyn crate::ports::DeadLetters>)> {
    let table = required_env("TABLE_NAME")?;
    let from = required_env("MAIL_FROM")?;
    let dlq = required_env("DEAD_LETTER_QUEUE_URL")?;
    let configuration_set = std::env::var("SES_CONFIGURATION_SET").ok().filter(|s| !s.is_empty());
    let sdk = aws_config().await;
    let log = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table));
    // A From that does not parse is a start-up error, not a failure of every send.
    crate::email::mime::mailbox(&from)?;
    let mailer = crate::adapters::ses::SesMailer::new(aws_sdk_sesv2::Client::new(&sdk), from, configuration_set);
    let sender = crate::app::notify::Sender {
        log,
        mailer: Arc::new(mailer),
        clock: Arc::new(SystemClock),
        takes_over_before: None,
    };
    let dead = crate::adapters::sqs::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), dlq);
    Ok((sender, Arc::new(dead)))
}
