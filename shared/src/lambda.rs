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
        tracing::error!(error = %e, "start-up failed");
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
        tracing::error!(error = %e, "start-up failed");
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
        tracing::error!(error = %e, "start-up failed");
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
