//! The JSON shapes of the contract's objects (api.md, "Objects").

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::app::AppContext;
use crate::domain::{rfc3339, Payment, Plan, Product, Subscription, TxnKind, WalletTxn};
use crate::i18n::CatalogText;

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

/// Products with their names and descriptions in the request's language: the translation
/// stored on the product, field by field, else the machine translation of the source text
/// (served as it is when translation is off or fails). One call for the whole response, so
/// the Redis tier costs one round trip however many products there are.
pub async fn products(ctx: &AppContext, list: &[Product]) -> Vec<Value> {
    let lang = crate::i18n::current();
    let mut fields = Vec::with_capacity(list.len() * 2);
    for p in list {
        let stored = p.translations.get(lang.as_str());
        fields.push(CatalogText { source: &p.name, stored: stored.and_then(|t| t.name.as_deref()) });
        fields.push(CatalogText { source: &p.description, stored: stored.and_then(|t| t.description.as_deref()) });
    }
    let mut texts = ctx.translations.localize(lang, &fields).await.into_iter();
    list.iter()
        .map(|p| {
            let name = texts.next().unwrap_or_else(|| p.name.clone());
            let description = texts.next().unwrap_or_else(|| p.description.clone());
            json!({
                "product_id": p.product_id,
                "name": name,
                "description": description,
                "plans": p.plans.iter().map(plan).collect::<Vec<_>>(),
            })
        })
        .collect()
}

pub async fn product(ctx: &AppContext, p: &Product) -> Value {
    products(ctx, std::slice::from_ref(p)).await.pop().unwrap_or_default()
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
