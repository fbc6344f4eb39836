//! The Lambda side of the HTTP layer: API Gateway events in, the shared `http::handle`, API
//! Gateway responses out. The context is built once, before the first event.

use lambda_http::{service_fn, Body, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;

use crate::http::{self, ApiRequest, Endpoint};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time() // CloudWatch stamps each line.
        .try_init();
}

/// Converts an API Gateway request into the transport-neutral one.
pub fn to_api(event: Request) -> ApiRequest {
    let (parts, body) = event.into_parts();
    let body = match body {
        Body::Empty => bytes::Bytes::new(),
        Body::Text(s) => bytes::Bytes::from(s),
        Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    };
    ApiRequest { method: parts.method, path: parts.uri.path().to_string(), headers: parts.headers, body }
}

/// Runs an HTTP Lambda that serves `served`.
pub async fn serve_http(served: &'static [Endpoint]) -> Result<(), lambda_http::Error> {
    init_tracing();
    let ctx = Arc::new(crate::config::lambda_context(served).await.map_err(|e| {
        tracing::error!(error = %crate::logs::chain(&e), "start-up failed");
        e
    })?);
    lambda_http::run(service_fn(move |event: Request| {
        let ctx = ctx.clone();
        async move {
            let resp = http::handle(&ctx, served, to_api(event)).await;
            let mut out = Response::new(if resp.body.is_empty() {
                Body::Empty
            } else {
                Body::Text(String::from_utf8_lossy(&resp.body).into_owned())
            });
            *out.status_mut() = resp.status;
            *out.headers_mut() = resp.headers;
            Ok::<_, Infallible>(out)
        }
    }))
    .await
}

/// Runs the `email-sender` Lambda: SQS batches in, partial batch failures out
/// (`ReportBatchItemFailures`), so one bad message never fails its batch.
pub async fn serve_email_sender() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    init_tracing();
    let (sender, dead) = crate::config::sender_from_env().await.map_err(|e| {
        tracing::error!(error = %crate::logs::chain(&e), "start-up failed");
        e
    })?;
    let (sender, dead) = (Arc::new(sender), dead);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (sender, dead) = (sender.clone(), dead.clone());
        async move {
            let messages: Vec<crate::app::notify::QueueMessage> = event
                .payload
                .records
                .into_iter()
                .map(|r| crate::app::notify::QueueMessage {
                    id: r.message_id.unwrap_or_default(),
                    body: r.body.unwrap_or_default(),
                })
                .collect();
            let failed = crate::app::notify::handle_batch(&sender, dead.as_ref(), &messages).await;
            let mut resp = SqsBatchResponse::default();
            for id in failed {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                resp.batch_item_failures.push(f);
            }
            Ok::<_, lambda_runtime::Error>(resp)
        }
    }))
    .await
}

/// Runs the `outbox-sweep` Lambda (an EventBridge schedule): sends to the email queue every
/// outbox entry that the relay after its commit could not send.
pub async fn serve_outbox_sweep() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    if std::env::var("EMAIL_QUEUE_URL").is_err() {
        tracing::error!("start-up failed: EMAIL_QUEUE_URL is not set");
        return Err("EMAIL_QUEUE_URL is not set".into());
    }
    let ctx = Arc::new(crate::config::lambda_context(&[]).await.map_err(|e| {
        tracing::error!(error = %crate::logs::chain(&e), "start-up failed");
        e
    })?);
    lambda_runtime::run(lambda_runtime::service_fn(move |_event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let ctx = ctx.clone();
        async move {
            let sent = crate::app::outbox::sweep(&ctx, crate::app::outbox::SWEEP_AGE).await?;
            tracing::info!(sent, "outbox swept");
            Ok::<_, lambda_runtime::Error>(serde_json::json!({ "sent": sent }))
        }
    }))
    .await
}

/// Runs the scheduled `lifecycle` Lambda: records the day's run and sends one message per
/// due-index shard to `LIFECYCLE_QUEUE_URL`. The run's `now` is the schedule's own time (the
/// event's `time`) and its id comes from the event's id, so a retried invocation repeats the
/// same run instead of starting another.
pub async fn serve_lifecycle() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let started = async {
        let url =
            std::env::var("LIFECYCLE_QUEUE_URL").map_err(|_| anyhow::anyhow!("LIFECYCLE_QUEUE_URL is not set"))?;
        let ctx = crate::config::lambda_context(&[]).await?;
        let sqs = aws_sdk_sqs::Client::new(&crate::config::aws_config().await);
        anyhow::Ok((ctx, crate::adapters::sqs::SqsShardQueue::new(sqs, url)))
    };
    let (ctx, queue) = started.await.map_err(|e| {
        tracing::error!(error = %crate::logs::chain(&e), "start-up failed");
        e
    })?;
    let (ctx, queue) = (Arc::new(ctx), Arc::new(queue));
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
        let (ctx, queue) = (ctx.clone(), queue.clone());
        async move {
            let now = event.payload["time"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(|| crate::ports::Clock::now(ctx.clock.as_ref()), |t| t.with_timezone(&chrono::Utc));
            let unique = event.payload["id"].as_str().map_or_else(|| event.context.request_id.clone(), str::to_string);
            let run = crate::app::lifecycle::fan_out(&ctx, queue.as_ref(), now, &unique).await?;
            tracing::info!(run_id = %run.run_id, shards = run.shards, "lifecycle run fanned out");
            Ok::<_, lambda_runtime::Error>(serde_json::json!({ "run_id": run.run_id, "shards": run.shards }))
        }
    }))
    .await
}

/// Runs the `lifecycle-worker` Lambda: each SQS message is one shard of a run. A shard that
/// fails (the table throttles, say) is reported as a batch item failure and retried by SQS;
/// one near the timeout is handed on as a new message; a malformed one is parked at once.
pub async fn serve_lifecycle_worker() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    init_tracing();
    let started = async {
        let url =
            std::env::var("LIFECYCLE_QUEUE_URL").map_err(|_| anyhow::anyhow!("LIFECYCLE_QUEUE_URL is not set"))?;
        let dlq =
            std::env::var("DEAD_LETTER_QUEUE_URL").map_err(|_| anyhow::anyhow!("DEAD_LETTER_QUEUE_URL is not set"))?;
        anyhow::ensure!(std::env::var("EMAIL_QUEUE_URL").is_ok(), "EMAIL_QUEUE_URL is not set");
        let ctx = crate::config::lambda_context(&[]).await?;
        let sqs = aws_sdk_sqs::Client::new(&crate::config::aws_config().await);
        let queue = crate::adapters::sqs::SqsShardQueue::new(sqs.clone(), url);
        anyhow::Ok((ctx, queue, crate::adapters::sqs::SqsDeadLetters::new(sqs, dlq)))
    };
    let (ctx, queue, dead) = started.await.map_err(|e| {
        tracing::error!(error = %crate::logs::chain(&e), "start-up failed");
        e
    })?;
    let parts = Arc::new((ctx, queue, dead));
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let parts = parts.clone();
        async move {
            let (ctx, queue, dead) = (&parts.0, &parts.1, &parts.2);
            // Stop taking pages shortly before the function's timeout (30 s, or a quarter of
            // what is left when that is less), to hand the rest on.
            let now_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let left = std::time::Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
            let margin = std::time::Duration::from_secs(30).min(left / 4);
            let deadline = tokio::time::Instant::now() + left.saturating_sub(margin);
            let mut resp = SqsBatchResponse::default();
            for record in event.payload.records {
                let id = record.message_id.unwrap_or_default();
                let body = record.body.unwrap_or_default();
                match crate::app::lifecycle::work_shard(ctx, queue, dead, &body, Some(deadline)).await {
                    Ok(outcome) => tracing::info!(message_id = %id, ?outcome, "lifecycle shard handled"),
                    Err(e) => {
                        tracing::error!(message_id = %id, error = %crate::logs::chain(&e), "lifecycle shard failed; SQS retries it");
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = id;
                        resp.batch_item_failures.push(f);
                    }
                }
            }
            Ok::<_, lambda_runtime::Error>(resp)
        }
    }))
    .await
}
