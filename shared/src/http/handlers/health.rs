use http::StatusCode;
use serde_json::json;

use crate::app::AppContext;
use crate::http::{ApiError, ApiResponse};

/// 200 when every dependency this process needs answers, 503 `degraded` otherwise. The
/// shared translation cache, when there is one, is reported too but never degrades the
/// answer: a response without it is slower, not wrong.
pub async fn health(ctx: &AppContext) -> Result<ApiResponse, ApiError> {
    let timeout = std::time::Duration::from_secs(2);
    let check = |r: Result<Result<(), anyhow::Error>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::logs::chain(&e), "health check failed");
            "down"
        }
        Err(_) => "timeout",
    };
    let (store, queue) = tokio::join!(
        tokio::time::timeout(timeout, ctx.stores.ping.ping()),
        tokio::time::timeout(timeout, ctx.email_queue.ping()),
    );
    let (store, queue) = (check(store), check(queue));
    let ok = store == "ok" && queue == "ok";
    let mut dependencies = json!({ "store": store, "email_queue": queue });
    // Shown, not required: without it catalog text comes from Translate or as written.
    if let Some(cache) = ctx.translations.check_cache().await {
        dependencies["translation_cache"] = json!(check(Ok(cache)));
    }
    let body = json!({ "status": if ok { "ok" } else { "degraded" }, "dependencies": dependencies });
    Ok(ApiResponse::json(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body))
}
