//! `stark`: the whole API locally (`serve`) plus ops commands, on the embedded adapters by
//! default or on the AWS ones by configuration.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;

use stark::clock::SystemClock;
use stark::config::{self, LocalConfig, QueueKind, StoreKind, TranslateKind};
use stark::domain::{Email, Role};
use stark::security::password_hash::HashCost;

#[derive(Parser, Debug)]
#[command(name = "stark", version, about = "Stark MultiProduct Platform: local server and operations")]
struct Cli {
    /// Where the SQLite file, the signing keys and the .eml outbox live.
    #[arg(long, global = true, env = "STARK_DATA_DIR", default_value = ".stark")]
    data_dir: PathBuf,
    /// Which store to use.
    #[arg(long, global = true, env = "STARK_STORE", value_enum, default_value_t = Store::Sqlite)]
    store: Store,
    /// The DynamoDB table (with --store dynamodb). Endpoint and credentials come from the
    /// usual AWS variables (AWS_REGION, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    #[arg(long, global = true, env = "STARK_TABLE")]
    table: Option<String>,
    /// Where email jobs go: an in-process worker writing .eml files, or SQS.
    #[arg(long, global = true, env = "STARK_QUEUE", value_enum, default_value_t = Queue::Inprocess)]
    queue: Queue,
    /// The SQS queue URL (with --queue sqs).
    #[arg(long, global = true, env = "STARK_EMAIL_QUEUE_URL")]
    queue_url: Option<String>,
    /// The From address of every email.
    #[arg(long, global = true, env = "STARK_MAIL_FROM", default_value = "Stark Industries <no-reply@stark.example>")]
    mail_from: String,
    /// Machine translation of catalog text: none (served in its source language) or Amazon
    /// Translate at the endpoint the usual AWS variables give.
    #[arg(long, global = true, env = "STARK_TRANSLATE", value_enum, default_value_t = Translate::None)]
    translate: Translate,
    /// Redis for the shared translation cache (redis://host:port); without it, translations
    /// are cached in process only.
    #[arg(long, global = true, env = "STARK_REDIS_URL")]
    redis_url: Option<String>,
    /// Password hashing cost: the contract's argon2id parameters, or cheap ones for load tests.
    #[arg(long, global = true, env = "STARK_ARGON2", value_enum, default_value_t = Argon::Production)]
    argon2: Argon,
    /// How many shards the DynamoDB due index is spread over (with --store dynamodb): the same
    /// number for every process and Lambda of a deployment (their DUE_SHARDS).
    #[arg(long, global = true, env = "STARK_DUE_SHARDS", default_value_t = stark::domain::lifecycle::DUE_SHARDS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(stark::domain::lifecycle::MAX_DUE_SHARDS)))]
    due_shards: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Store {
    Sqlite,
    Dynamodb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Queue {
    Inprocess,
    Sqs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Translate {
    None,
    Aws,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Argon {
    Production,
    Test,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the whole HTTP API.
    Serve {
        #[arg(long, env = "STARK_ADDR", default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// Seconds a client has to send a request's headers (an idle connection is closed
        /// after it too).
        #[arg(long, env = "STARK_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_read_timeout: u64,
        /// Seconds a client has to send a request's body once its headers are in (then 408).
        #[arg(long, env = "STARK_BODY_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        body_read_timeout: u64,
        /// Connections open at once; more wait to be accepted.
        #[arg(long, env = "STARK_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        /// Run the daily lifecycle (renewals, dunning, reminders, expiry) at start and then
        /// every this many seconds; 0 turns it off.
        #[arg(long, env = "STARK_LIFECYCLE_EVERY", default_value_t = 3600)]
        lifecycle_every: u64,
    },
    /// The daily lifecycle.
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
    },
    /// Administrative commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The product catalog.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Key material for a deployment.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
enum LifecycleCommand {
    /// Run the daily sweep once: renew, retry, remind, expire everything due by --now. Exits
    /// once its emails have been written.
    Run {
        /// The time to run at (RFC 3339, e.g. 2026-12-02T03:00:00Z); default: now.
        #[arg(long, value_parser = parse_now)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// Print what would happen and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| "expected an RFC 3339 time such as 2026-12-02T03:00:00Z".to_string())
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
    /// Load products and plans from a JSON file (`{"products": [...]}`, each entry as
    /// POST /api/services/products/ takes it). Existing products are updated; their other
    /// plans are kept.
    Load { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Print a fresh Secrets Manager secret (JSON): jwt_private_key_pem, jwt_public_key_pem
    /// and otp_pepper. Pipe it straight into `aws secretsmanager create-secret`.
    Generate,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Change a user's role.
    GrantRole { email: String, role: RoleArg },
    /// Add money to a user's STARK_PAY wallet, in minor units (cents): 1 to 100000000.
    Credit {
        email: String,
        #[arg(allow_hyphen_values = true)]
        amount_minor: String,
        #[arg(long)]
        reference: Option<String>,
    },
    /// Create the DynamoDB table (with --store dynamodb), for DynamoDB Local or a test
    /// server; on AWS the template creates it.
    CreateTable,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    User,
    Provider,
    Admin,
}

impl Cli {
    fn local_config(&self) -> LocalConfig {
        LocalConfig {
            store: match self.store {
                Store::Sqlite => StoreKind::Sqlite,
                Store::Dynamodb => StoreKind::Dynamodb,
            },
            table: self.table.clone(),
            queue: match self.queue {
                Queue::Inprocess => QueueKind::InProcess,
                Queue::Sqs => QueueKind::Sqs,
            },
            queue_url: self.queue_url.clone(),
            hash_cost: match self.argon2 {
                Argon::Production => HashCost::PRODUCTION,
                Argon::Test => HashCost::TEST,
            },
            mail_from: self.mail_from.clone(),
            translate: match self.translate {
                Translate::None => TranslateKind::None,
                Translate::Aws => TranslateKind::Aws,
            },
            redis_url: self.redis_url.clone(),
            due_shards: self.due_shards,
            takes_over_leases: matches!(self.command, Command::Serve { .. }),
            ..LocalConfig::embedded(self.data_dir.clone())
        }
    }
}

/// The demo catalog `stark serve` loads into an empty store.
const DEMO_CATALOG: &str = include_str!("../../infra/catalog.json");

/// How often `stark serve` sweeps the outbox for emails the relay could not queue.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = cli.local_config();
    match cli.command {
        Command::Serve { addr, header_read_timeout, body_read_timeout, max_connections, lifecycle_every } => {
            let limits = stark::local::ServerLimits {
                header_read_timeout: std::time::Duration::from_secs(header_read_timeout),
                body_read_timeout: std::time::Duration::from_secs(body_read_timeout),
                max_connections: max_connections as usize,
            };
            // Signals first: a SIGTERM that arrives right after start must already stop us cleanly.
            let shutdown = shutdown_signal()?;
            let (ctx, outbox_queue) = config::local_context(&cfg, Arc::new(SystemClock)).await?;
            let ctx = Arc::new(ctx);
            // A store that is down now may come back: serve anyway (health says degraded).
            let demo = stark::http::handlers::catalog::parse_catalog(DEMO_CATALOG)?;
            match stark::app::catalog::seed_if_empty(&ctx, demo).await {
                Ok(true) => {
                    eprintln!("stark serve: the catalog was empty; loaded the demo catalog (infra/catalog.json)")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %stark::logs::chain(&e), "could not check or seed the catalog"),
            }
            // Emails a previous run committed but could not queue go out now, then regularly.
            match stark::app::outbox::sweep(&ctx, chrono::Duration::zero()).await {
                Ok(0) => {}
                Ok(swept) => tracing::info!(swept, "sent emails left in the outbox"),
                Err(e) => tracing::warn!(error = %stark::logs::chain(&e), "outbox sweep failed"),
            }
            let sweeper = tokio::spawn({
                let ctx = ctx.clone();
                async move {
                    loop {
                        tokio::time::sleep(SWEEP_EVERY).await;
                        if let Err(e) = stark::app::outbox::sweep(&ctx, stark::app::outbox::SWEEP_AGE).await {
                            tracing::warn!(error = %stark::logs::chain(&e), "outbox sweep failed");
                        }
                    }
                }
            });
            // The lifecycle on a timer, so the local platform is zero-touch too: at start, then
            // every `lifecycle_every` seconds.
            let lifecycle = (lifecycle_every > 0).then(|| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(lifecycle_every));
                    loop {
                        every.tick().await;
                        let now = stark::ports::Clock::now(ctx.clock.as_ref());
                        let opts = stark::app::lifecycle::RunOptions::default();
                        match stark::app::lifecycle::run_lifecycle(&ctx, now, &opts).await {
                            Ok(run) => {
                                tracing::info!(run_id = %run.run_id, counts = ?run.counts, "lifecycle run finished")
                            }
                            Err(e) => {
                                tracing::warn!(error = %stark::logs::chain(&e), "lifecycle run failed; the next one takes up what is left")
                            }
                        }
                    }
                })
            });
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            // The bound address, not the requested one: with port 0 the OS picks it.
            let bound = listener.local_addr()?;
            tracing::info!(addr = %bound, data_dir = %cfg.data_dir.display(), "stark serve is listening");
            eprintln!("stark serve: listening on http://{bound} (data in {})", cfg.data_dir.display());
            stark::local::serve(ctx.clone(), listener, limits, shutdown).await?;
            sweeper.abort();
            if let Some(l) = lifecycle {
                // A step is one atomic commit: stopping between two loses nothing.
                l.abort();
            }
            if let Err(e) = stark::app::outbox::sweep(&ctx, chrono::Duration::zero()).await {
                tracing::warn!(error = %stark::logs::chain(&e), "final outbox sweep failed; the next start sends what is left");
            }
            // Every request has finished; its emails reach the outbox before the process ends.
            if let Some(queue) = outbox_queue {
                tokio::time::timeout(std::time::Duration::from_secs(10), queue.flush())
                    .await
                    .map_err(|_| anyhow::anyhow!("emails were still being written after 10 s"))??;
            }
            eprintln!("stark serve: stopped");
            Ok(())
        }
        Command::Catalog { command: CatalogCommand::Load { file } } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let products = stark::http::handlers::catalog::parse_catalog(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let (ctx, _) = config::local_context(&cfg, Arc::new(SystemClock)).await?;
            let n = stark::app::catalog::load_catalog(&ctx, products).await?;
            println!("loaded {n} product(s) from {}", file.display());
            Ok(())
        }
        Command::Admin { command: AdminCommand::Credit { email, amount_minor, reference } } => {
            let email = Email::parse(&email).map_err(|_| anyhow::anyhow!("not a valid email address: {email}"))?;
            let amount: i64 =
                amount_minor.parse().ok().filter(|a| (1..=stark::domain::MAX_CREDIT_MINOR).contains(a)).ok_or_else(
                    || anyhow::anyhow!("amount_minor must be a whole number from 1 to 100000000, got {amount_minor}"),
                )?;
            let (ctx, _) = config::local_context(&cfg, Arc::new(SystemClock)).await?;
            let balance = stark::app::billing::credit(&ctx, &email, amount, reference).await.map_err(|e| match e {
                stark::app::billing::BillingError::UserNotFound => anyhow::anyhow!("no user with email {email}"),
                stark::app::billing::BillingError::BalanceLimit => anyhow::anyhow!("the balance would pass its limit"),
                other => anyhow::Error::from(other),
            })?;
            println!("credited {} to {email}; balance {balance}", stark::domain::Money::usd(amount));
            Ok(())
        }
        Command::Lifecycle { command: LifecycleCommand::Run { now, dry_run } } => {
            let (ctx, queue) = config::local_context(&cfg, Arc::new(SystemClock)).await?;
            let now = now.unwrap_or_else(chrono::Utc::now);
            lifecycle_run(&ctx, queue, now, dry_run).await
        }
        Command::Keys { command: KeysCommand::Generate } => {
            println!("{}", stark::security::secrets::new_deployment_secret()?);
            Ok(())
        }
        Command::Admin { command: AdminCommand::CreateTable } => {
            let table = match (cfg.store, cfg.table.as_deref()) {
                (StoreKind::Dynamodb, Some(t)) => t,
                _ => anyhow::bail!("create-table needs --store dynamodb and --table"),
            };
            config::create_dynamo_table(table).await?;
            println!("created table {table}");
            Ok(())
        }
        Command::Admin { command: AdminCommand::GrantRole { email, role } } => {
            let email = Email::parse(&email).map_err(|_| anyhow::anyhow!("not a valid email address: {email}"))?;
            let role = match role {
                RoleArg::User => Role::User,
                RoleArg::Provider => Role::Provider,
                RoleArg::Admin => Role::Admin,
            };
            let stores = config::stores_from(&cfg).await?;
            let user = stores
                .users
                .user_by_email(&email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
            if !stores.users.set_role(&user.id, role).await? {
                anyhow::bail!("no user with email {email}");
            }
            println!("{email} is now {role}");
            Ok(())
        }
    }
}

/// A progress bar over the shards on a terminal (hidden otherwise), and a dry run's listing
/// on stdout.
struct Progress {
    bar: indicatif::ProgressBar,
    totals: std::sync::Mutex<stark::ports::RunCounts>,
}

impl stark::app::lifecycle::RunObserver for Progress {
    fn subscription_done(&self, counts: &stark::ports::RunCounts) {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        t.add(counts);
        self.bar.set_message(format!("{} renewed, {} emails", t.renewed, t.emails));
    }
    fn shard_done(&self, _shard: u32) {
        self.bar.inc(1);
    }
    fn planned(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }
}

async fn lifecycle_run(
    ctx: &stark::app::AppContext,
    queue: Option<stark::adapters::inprocess_queue::InProcessQueue>,
    now: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let shards = ctx.stores.lifecycle.due_shards();
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(u64::from(shards)), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} shards {pos}/{len} [{bar:30}] {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = Progress { bar, totals: Default::default() };
    let opts = stark::app::lifecycle::RunOptions { dry_run, observer: &progress, deadline: None };
    let run = stark::app::lifecycle::run_lifecycle(ctx, now, &opts).await;
    progress.bar.finish_and_clear();
    let run = run?;
    if !dry_run {
        // Emails an earlier, interrupted run committed but did not hand over go out now too.
        stark::app::outbox::sweep(ctx, chrono::Duration::zero()).await?;
        if let Some(queue) = queue {
            queue.flush().await?;
        }
    }
    let c = run.counts;
    println!(
        "{}lifecycle run {} at {}: {} renewed, {} past_due, {} expired, {} canceled, {} reminders, {} low_balance, {} emails{} in {:.2} s",
        if dry_run { "dry run (nothing changed): " } else { "" },
        run.run_id,
        stark::domain::rfc3339(now),
        c.renewed,
        c.past_due,
        c.expired,
        c.canceled,
        c.reminders,
        c.low_balance,
        c.emails,
        if c.left > 0 { format!(", {} left for the next run", c.left) } else { String::new() },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM from a process manager. The SIGTERM handler is installed
/// now, before the server announces itself, not when the future is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| anyhow::anyhow!("cannot listen for SIGTERM: {e}"))?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    })
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One line, not clap's usage block.
            let msg = e.to_string();
            eprintln!("{}", msg.lines().next().unwrap_or("invalid arguments").trim());
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {}", stark::logs::chain(&e));
        std::process::exit(1);
    }
}
