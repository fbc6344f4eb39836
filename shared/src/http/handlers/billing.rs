//! Handlers for trials, purchases, subscriptions and the wallet.

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::views;
use super::with_message;
use crate::app::billing::{self as uc, BillingError, IdempotencyTicket, PurchaseOutcome, PAYMENT_METHOD};
use crate::app::AppContext;
use crate::domain::{Money, PlanId, ProductId, Role};
use crate::http::auth::{authenticate, authenticate_as};
use crate::http::json::{object, take, Fields};
use crate::http::router::PathParams;
use crate::http::{messages, ApiError, ApiRequest, ApiResponse};
use crate::ports::{ClaimOutcome, IdempotencyClaim, IdempotencyCompletion, StoredResponse};

/// Transactions shown with the wallet.
pub const WALLET_TRANSACTIONS: usize = 50;
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// How long an Idempotency-Key is kept.
const IDEMPOTENCY_HOURS: i64 = 24;
/// How long a running request holds its key before a repeat with the same body may take
/// over: the request timeout, the purchase Lambda's 10 s (`template.yaml`'s Globals; a test
/// holds the two together). Lambda ends an invocation by then, so a claim older than that
/// belongs to a request that is gone, and a retry after it runs (or replays) instead of
/// getting 409 `request_in_progress`. Locally a request's handler is not cancelled when its
/// client goes away, so it completes or releases its key itself; only a killed process
/// leaves one for the lease to free. A request that outlives its lease anyway cannot
/// double-charge: its commit is conditional on still holding the claim.
pub const IDEMPOTENCY_LEASE_SECS: i64 = 10;

fn billing_error(e: BillingError) -> ApiError {
    use BillingError::*;
    let (status, code) = match e {
        Unauthorized => return ApiError::unauthorized(),
        EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified"),
        ProductNotFound => (StatusCode::NOT_FOUND, "product_not_found"),
        PlanNotFound => (StatusCode::NOT_FOUND, "plan_not_found"),
        TrialUsed => (StatusCode::CONFLICT, "trial_already_used"),
        AlreadySubscribed => (StatusCode::CONFLICT, "already_subscribed"),
        TrialNotAvailable => (StatusCode::UNPROCESSABLE_ENTITY, "trial_not_available"),
        InsufficientFunds => (StatusCode::PAYMENT_REQUIRED, "insufficient_funds"),
        SubscriptionNotFound => (StatusCode::NOT_FOUND, "subscription_not_found"),
        UserNotFound => (StatusCode::NOT_FOUND, "user_not_found"),
        BalanceLimit => (StatusCode::UNPROCESSABLE_ENTITY, "balance_limit_exceeded"),
        RequestInProgress => (StatusCode::CONFLICT, "request_in_progress"),
        LockTimeout(e) => return ApiError::Internal(e.into()),
        Infra(e) => return ApiError::Internal(e),
    };
    ApiError::client(status, code)
}

pub async fn start_trial(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let product_id = f.required("product_id", ProductId::parse, |_| "field.product_id");
    let plan_id = f.optional("plan_id", PlanId::parse, |_| "field.plan_id");
    f.finish()?;
    let sub =
        uc::start_trial(ctx, &caller.user_id, &take(product_id)?, plan_id.as_ref()).await.map_err(billing_error)?;
    Ok(with_message(
        StatusCode::CREATED,
        "trial_started",
        json!({ "subscription": views::subscription(&sub, ctx.clock.now()) }),
    ))
}

/// The Idempotency-Key header: absent, or 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap, f: &mut Fields<'_>) -> Option<String> {
    let v = headers.get("idempotency-key")?;
    match v.to_str() {
        Ok(s) if !s.is_empty() && s.len() <= IDEMPOTENCY_KEY_MAX => Some(s.to_string()),
        _ => {
            f.problem("Idempotency-Key", "field.idempotency_key");
            None
        }
    }
}

/// JSON with object keys sorted at every level: "the same body" means the same JSON after
/// parsing, whatever the key order or spacing.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn request_hash(endpoint: &str, body: &Value) -> String {
    let mut s = String::from(endpoint);
    s.push('\n');
    canonical(body, &mut s);
    crate::timing::time(crate::timing::Part::Crypto, || hex::encode(Sha256::digest(s.as_bytes())))
}

fn stored(status: StatusCode, key: &str, body: Value) -> StoredResponse {
    StoredResponse { status: status.as_u16(), body, message_key: Some(key.to_string()) }
}

/// The answer to keep and to send for a purchase outcome.
fn purchase_response(outcome: &PurchaseOutcome, now: chrono::DateTime<chrono::Utc>) -> StoredResponse {
    match outcome {
        PurchaseOutcome::Charged { subscription, payment } => stored(
            StatusCode::CREATED,
            "purchase_ok",
            json!({ "subscription": views::subscription(subscription, now), "payment": views::payment(payment) }),
        ),
        PurchaseOutcome::Scheduled { subscription } => stored(
            StatusCode::OK,
            "downgrade_scheduled",
            json!({ "subscription": views::subscription(subscription, now), "payment": null }),
        ),
    }
}

/// A stored answer as an HTTP response, its message in the language of this request.
fn replay(r: &StoredResponse, replayed: bool) -> ApiResponse {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = r.body.clone();
    if let Some(key) = &r.message_key {
        if status.is_success() {
            body["message"] = json!(messages::text(key));
        } else {
            body["error"]["message"] = json!(messages::text(key));
        }
    }
    let mut resp = ApiResponse::json(status, &body);
    if replayed {
        resp.headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

pub async fn purchase(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let product_id = f.required("product_id", ProductId::parse, |_| "field.product_id");
    let plan_id = f.required("plan_id", PlanId::parse, |_| "field.plan_id");
    let method = f.required("payment_method", |s| Ok::<_, ()>(s.to_string()), |_| "field.string");
    let key = idempotency_key(&req.headers, &mut f);
    f.finish()?;
    if take(method)? != PAYMENT_METHOD {
        return Err(ApiError::client_field(
            StatusCode::BAD_REQUEST,
            "unsupported_payment_method",
            "payment_method",
            "field.payment_method",
        ));
    }
    let (product_id, plan_id) = (take(product_id)?, take(plan_id)?);
    let now = ctx.clock.now();
    let ticket = match key {
        None => None,
        Some(key) => {
            let claim = IdempotencyClaim {
                user_id: caller.user_id.clone(),
                key: key.clone(),
                request_hash: request_hash("purchase", &Value::Object(body.clone())),
                token: uuid::Uuid::new_v4().to_string(),
                lock_until: now + chrono::Duration::seconds(IDEMPOTENCY_LEASE_SECS),
                expires_at: now + chrono::Duration::hours(IDEMPOTENCY_HOURS),
            };
            match ctx.stores.idempotency.claim_idempotency(&claim, now).await? {
                ClaimOutcome::Claimed => Some(IdempotencyTicket { key, token: claim.token }),
                ClaimOutcome::Existing(rec) if rec.request_hash != claim.request_hash => {
                    return Err(ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"))
                }
                ClaimOutcome::Existing(rec) => {
                    return match rec.response {
                        Some(r) => Ok(replay(&r, true)),
                        None => Err(ApiError::client(StatusCode::CONFLICT, "request_in_progress")),
                    }
                }
            }
        }
    };
    let respond = move |o: &PurchaseOutcome| purchase_response(o, now);
    let result = uc::purchase(ctx, &caller.user_id, &product_id, &plan_id, ticket.as_ref(), &respond).await;
    match (result, ticket) {
        (Ok(outcome), _) => Ok(replay(&respond(&outcome), false)),
        (Err(e), None) => Err(billing_error(e)),
        (Err(BillingError::RequestInProgress), Some(_)) => Err(billing_error(BillingError::RequestInProgress)),
        (Err(e @ (BillingError::Infra(_) | BillingError::LockTimeout(_))), Some(t)) => {
            // Not an answer (our failure, an outage, lost races): free the key so a retry
            // runs again.
            if let Err(release) = ctx.stores.idempotency.release_idempotency(&caller.user_id, &t.key, &t.token).await {
                tracing::warn!(error = %crate::logs::chain(&release), "idempotency key could not be released");
            }
            Err(billing_error(e))
        }
        (Err(e), Some(t)) => {
            // A refusal (402, 404, 409…) is an outcome: keep it for replays.
            let err = billing_error(e);
            let response = match &err {
                ApiError::Client { status, code, .. } => stored(*status, code, json!({ "error": { "code": code } })),
                _ => return Err(err),
            };
            let done = IdempotencyCompletion { key: t.key, token: t.token, response };
            ctx.stores.idempotency.complete_idempotency(&caller.user_id, &done).await?;
            Err(err)
        }
    }
}

pub async fn my_subscriptions(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let subs = ctx.stores.subscriptions.user_subscriptions(&caller.user_id).await?;
    let now = ctx.clock.now();
    let list: Vec<Value> = subs.iter().map(|s| views::subscription(s, now)).collect();
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "subscriptions": list })))
}

pub async fn cancel(ctx: &AppContext, params: &PathParams, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let id = crate::http::router::param(params, "subscription_id");
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let at_period_end = f.boolean("at_period_end").unwrap_or(true);
    f.finish()?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::client(StatusCode::NOT_FOUND, "subscription_not_found"));
    }
    let sub = uc::cancel(ctx, &caller.user_id, id, at_period_end).await.map_err(billing_error)?;
    let key = if at_period_end { "cancel_at_period_end" } else { "cancel_now" };
    Ok(with_message(StatusCode::OK, key, json!({ "subscription": views::subscription(&sub, ctx.clock.now()) })))
}

pub async fn wallet(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let (balance, txns) = ctx.stores.subscriptions.wallet(&caller.user_id, WALLET_TRANSACTIONS).await?;
    let list: Vec<Value> = txns.iter().map(views::wallet_txn).collect();
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "balance": Money::usd(balance), "transactions": list })))
}

pub async fn credit(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    authenticate_as(ctx, &req.headers, &[Role::Admin])?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = f.required("email", crate::domain::Email::parse, |_| "field.email");
    let amount = f.integer("amount_minor", true, 1..=crate::domain::MAX_CREDIT_MINOR, "field.credit_amount");
    let reference = f.line("reference", false, 1, 200, "field.reference");
    f.finish()?;
    let balance = uc::credit(ctx, &take(email)?, take(amount)?, reference).await.map_err(billing_error)?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "balance": balance })))
}

pub async fn grant_role(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    authenticate_as(ctx, &req.headers, &[Role::Admin])?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = f.required("email", crate::domain::Email::parse, |_| "field.email");
    let role = f.required("role", |s| s.parse::<crate::domain::Role>(), |_| "field.role");
    f.finish()?;
    let not_found = || ApiError::client(StatusCode::NOT_FOUND, "user_not_found");
    let user = ctx.stores.users.user_by_email(&take(email)?).await?.ok_or_else(not_found)?;
    let role = take(role)?;
    if !ctx.stores.users.set_role(&user.id, role).await? {
        return Err(not_found());
    }
    let user = ctx.stores.users.user_by_id(&user.id).await?.ok_or_else(not_found)?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": user.view() })))
}
