//! Handlers for `/api/services/products/*`: the catalog, read by anyone, written by admins
//! and owning providers.

use http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::views;
use crate::app::catalog::{self as uc, CatalogError, NewProduct, ProductPatch};
use crate::app::AppContext;
use crate::domain::{
    Currency, Money, Period, Plan, PlanId, ProductId, ProductStatus, Role, TextTranslation, MAX_PERIOD_DAYS,
    MAX_PRICE_MINOR, MAX_TRIAL_DAYS,
};
use crate::http::auth::authenticate_as;
use crate::http::json::{object, take, Fields};
use crate::http::router::PathParams;
use crate::http::{ApiError, ApiRequest, ApiResponse};

/// Who may write the catalog at all; a provider only its own products (see the use cases).
const CATALOG_WRITERS: &[Role] = &[Role::Admin, Role::Provider];

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
use crate::app::catalog::MAX_PLANS;

fn catalog_error(e: CatalogError) -> ApiError {
    match e {
        CatalogError::Forbidden => ApiError::client(StatusCode::FORBIDDEN, "forbidden"),
        CatalogError::ProductNotFound => ApiError::client(StatusCode::NOT_FOUND, "product_not_found"),
        CatalogError::ProductExists => ApiError::client(StatusCode::CONFLICT, "product_exists"),
        CatalogError::PlanExists => ApiError::client(StatusCode::CONFLICT, "plan_exists"),
        CatalogError::TooManyPlans => ApiError::field("plans", "field.plans"),
        CatalogError::Infra(e) => ApiError::Internal(e),
    }
}

/// The `{product_id}` of the path, or a 400 naming it.
pub fn path_product_id(params: &PathParams) -> Result<ProductId, ApiError> {
    ProductId::parse(crate::http::router::param(params, "product_id"))
        .map_err(|_| ApiError::field("product_id", "field.product_id"))
}

/// A `Plan` object (without computed fields) at `path`.
fn plan_at(f: &mut Fields<'_>, value: &Value, path: &str) -> Option<Plan> {
    let Value::Object(m) = value else {
        f.problem(path, "field.object");
        return None;
    };
    let mut p = Fields::nested(m, &f.path(path));
    let plan = plan_fields(&mut p);
    f.absorb(p);
    plan
}

/// The fields of a plan object.
fn plan_fields(f: &mut Fields<'_>) -> Option<Plan> {
    let plan_id = f.required("plan_id", PlanId::parse, |_| "field.plan_id");
    let name = f.line("name", true, 1, MAX_NAME_CHARS, "field.name");
    let period = f.required(
        "period",
        |s| match s {
            "weekly" | "monthly" | "yearly" | "custom" => Ok(s.to_string()),
            _ => Err(()),
        },
        |_| "field.period",
    );
    let days = f.integer("period_days", false, 1..=i64::from(MAX_PERIOD_DAYS), "field.period_days");
    let period = match period.as_deref() {
        Some("custom") => match days {
            Some(d) => Some(Period::Custom { period_days: d as u32 }),
            None => {
                if f.raw("period_days").is_none() {
                    f.problem("period_days", "field.period_days_required");
                }
                None
            }
        },
        Some(other) if f.raw("period_days").is_some() => {
            let _ = other;
            f.problem("period_days", "field.period_days_forbidden");
            None
        }
        Some("weekly") => Some(Period::Weekly),
        Some("monthly") => Some(Period::Monthly),
        Some("yearly") => Some(Period::Yearly),
        _ => None,
    };
    let price = match f.raw("price") {
        None => {
            f.problem("price", "field.required");
            None
        }
        Some(Value::Object(m)) => {
            let mut pf = Fields::nested(m, &f.path("price"));
            let amount = pf.integer("amount_minor", true, 0..=MAX_PRICE_MINOR, "field.amount_minor");
            let currency = pf.required("currency", |s| Currency::parse(s).ok_or(()), |_| "field.currency");
            f.absorb(pf);
            Some(Money { amount_minor: amount?, currency: currency? })
        }
        Some(_) => {
            f.problem("price", "field.price");
            None
        }
    };
    let trial_days = f.integer("trial_days", false, 0..=i64::from(MAX_TRIAL_DAYS), "field.trial_days").unwrap_or(0);
    Some(Plan { plan_id: plan_id?, name: name?, period: period?, price: price?, trial_days: trial_days as u32 })
}

/// `{"<lang>": {"name"?, "description"?}}` with lang one of the API's languages.
fn translations(f: &mut Fields<'_>) -> Option<BTreeMap<String, TextTranslation>> {
    let value = f.raw("translations")?;
    let Value::Object(m) = value else {
        f.problem("translations", "field.translations");
        return None;
    };
    let mut out = BTreeMap::new();
    for (lang, v) in m {
        let path = format!("translations.{lang}");
        if !crate::i18n::Lang::ALL.iter().any(|l| l.as_str() == lang) {
            f.problem(&path, "field.language");
            continue;
        }
        let Value::Object(fields) = v else {
            f.problem(&path, "field.translations");
            continue;
        };
        let mut t = Fields::nested(fields, &f.path(&path));
        let name = t.line("name", false, 1, MAX_NAME_CHARS, "field.name");
        let description = t.text("description", false, 0, MAX_DESCRIPTION_CHARS, "field.description");
        f.absorb(t);
        out.insert(lang.clone(), TextTranslation { name, description });
    }
    Some(out)
}

/// A product as POST takes it (and as `stark catalog load` reads each entry of its file).
pub fn new_product(body: &Map<String, Value>) -> Result<NewProduct, ApiError> {
    let mut f = Fields::new(body);
    let product_id = f.required("product_id", ProductId::parse, |_| "field.product_id");
    let name = f.line("name", true, 1, MAX_NAME_CHARS, "field.name");
    let description = f.text("description", true, 0, MAX_DESCRIPTION_CHARS, "field.description");
    let translations = translations(&mut f).unwrap_or_default();
    let mut plans = Vec::new();
    match f.raw("plans") {
        None => {}
        Some(Value::Array(items)) if items.len() <= MAX_PLANS => {
            for (i, item) in items.iter().enumerate() {
                if let Some(plan) = plan_at(&mut f, item, &format!("plans[{i}]")) {
                    if plans.iter().any(|p: &Plan| p.plan_id == plan.plan_id) {
                        f.problem(&format!("plans[{i}].plan_id"), "field.plan_duplicate");
                    }
                    plans.push(plan);
                }
            }
        }
        Some(_) => f.problem("plans", "field.plans"),
    }
    f.finish()?;
    Ok(NewProduct {
        product_id: take(product_id)?,
        name: take(name)?,
        description: take(description)?,
        translations,
        plans,
    })
}

/// A catalog file (`{"products": [Product, ...]}`, each entry as POST takes it), checked by
/// the same rules as the API. An error names the entry and the field.
pub fn parse_catalog(text: &str) -> anyhow::Result<Vec<NewProduct>> {
    let doc: Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not JSON: {e}"))?;
    let Some(entries) = doc.get("products").and_then(Value::as_array) else {
        anyhow::bail!("expected an object with a \"products\" array");
    };
    let mut out: Vec<NewProduct> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(body) = entry else { anyhow::bail!("products[{i}]: not an object") };
        let product = new_product(body).map_err(|e| match e {
            ApiError::Validation(fields) => {
                let (field, problem) = fields.iter().next().map(|(f, p)| (f.as_str(), *p)).unwrap_or(("?", ""));
                anyhow::anyhow!("products[{i}].{field}: {}", crate::http::messages::text(problem))
            }
            other => anyhow::anyhow!("products[{i}]: {other:?}"),
        })?;
        if out.iter().any(|p| p.product_id == product.product_id) {
            anyhow::bail!("products[{i}].product_id: {} appears twice", product.product_id);
        }
        out.push(product);
    }
    Ok(out)
}

pub async fn list(ctx: &AppContext) -> Result<ApiResponse, ApiError> {
    let products = uc::active_products(ctx).await?;
    let list = views::products(ctx, &products).await;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "products": list })))
}

pub async fn get(ctx: &AppContext, params: &PathParams) -> Result<ApiResponse, ApiError> {
    let id = path_product_id(params)?;
    let product = uc::listed_product(ctx, &id)
        .await?
        .ok_or_else(|| ApiError::client(StatusCode::NOT_FOUND, "product_not_found"))?;
    Ok(ApiResponse::json(StatusCode::OK, &views::product(ctx, &product).await))
}

pub async fn create(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate_as(ctx, &req.headers, CATALOG_WRITERS)?.caller();
    let input = new_product(&object(&req.body)?)?;
    let product = uc::create_product(ctx, &caller, input).await.map_err(catalog_error)?;
    Ok(ApiResponse::json(StatusCode::CREATED, &views::product(ctx, &product).await))
}

pub async fn update(ctx: &AppContext, params: &PathParams, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate_as(ctx, &req.headers, CATALOG_WRITERS)?.caller();
    let id = path_product_id(params)?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let patch = ProductPatch {
        name: f.line("name", false, 1, MAX_NAME_CHARS, "field.name"),
        description: f.text("description", false, 0, MAX_DESCRIPTION_CHARS, "field.description"),
        translations: translations(&mut f),
        status: f.optional("status", |s| ProductStatus::parse(s).ok_or(()), |_| "field.status"),
    };
    f.finish()?;
    let product = uc::update_product(ctx, &caller, &id, &patch).await.map_err(catalog_error)?;
    Ok(ApiResponse::json(StatusCode::OK, &views::product(ctx, &product).await))
}

pub async fn add_plan(ctx: &AppContext, params: &PathParams, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate_as(ctx, &req.headers, CATALOG_WRITERS)?.caller();
    let id = path_product_id(params)?;
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let plan = plan_fields(&mut f);
    f.finish()?;
    let plan = uc::add_plan(ctx, &caller, &id, take(plan)?).await.map_err(catalog_error)?;
    Ok(ApiResponse::json(StatusCode::CREATED, &views::plan(&plan)))
}

pub async fn subscribers(ctx: &AppContext, params: &PathParams, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate_as(ctx, &req.headers, CATALOG_WRITERS)?.caller();
    let id = path_product_id(params)?;
    let subs = uc::subscribers(ctx, &caller, &id).await.map_err(catalog_error)?;
    let now = ctx.clock.now();
    let list: Vec<Value> = subs
        .iter()
        .map(|s| json!({ "user_id": s.user_id, "email": s.user_email, "subscription": views::subscription(s, now) }))
        .collect();
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "subscribers": list })))
}
