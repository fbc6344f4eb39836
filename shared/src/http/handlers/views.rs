//! The JSON shapes of the contract's objects (api.md, "Objects").

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::{rfc3339, Payment, Plan, Product, Subscription, TxnKind, WalletTxn};

pub fn plan(p: &Plan) -> Value {
    json!({
        "plan_id": p.plan_id,
        "name": p.name,
        "period": p.period.name(),
        "period_days": p.period.custom_days(),
        "price": p.price,
        "trial_days": p.trial_days,
    })
}

/// The product with its name and description in `lang`: a stored translation field by
/// field, else the source text.
pub fn product(p: &Product, lang: &str) -> Value {
    let t = p.translations.get(lang);
    json!({
        "product_id": p.product_id,
        "name": t.and_then(|t| t.name.as_deref()).unwrap_or(&p.name),
        "description": t.and_then(|t| t.description.as_deref()).unwrap_or(&p.description),
        "plans": p.plans.iter().map(plan).collect::<Vec<_>>(),
    })
}

pub fn subscription(s: &Subscription, now: DateTime<Utc>) -> Value {
    json!({
        "subscription_id": s.subscription_id,
        "product_id": s.product_id,
        "plan_id": s.plan_id,
        "status": s.status.as_str(),
        "current_period_start": rfc3339(s.current_period_start),
        "current_period_end": rfc3339(s.current_period_end),
        "auto_renew": s.auto_renew,
        "days_remaining": s.days_remaining(now),
        "scheduled_plan_id": s.scheduled_plan_id,
    })
}

pub fn payment(p: &Payment) -> Value {
    json!({
        "payment_id": p.payment_id,
        "amount_minor": p.amount.amount_minor,
        "currency": p.amount.currency,
        "method": p.method,
        "created_at": rfc3339(p.created_at),
    })
}

pub fn wallet_txn(t: &WalletTxn) -> Value {
    json!({
        "transaction_id": t.transaction_id,
        "type": match t.kind { TxnKind::Credit => "credit", TxnKind::Debit => "debit" },
        "amount": t.amount,
        "reference": t.reference,
        "created_at": rfc3339(t.created_at),
    })
}
