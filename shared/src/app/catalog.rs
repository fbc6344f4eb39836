//! The product registry: admins and providers write, a provider only its own products;
//! anyone reads active products.

use std::collections::BTreeMap;

use crate::app::AppContext;
use crate::domain::{Plan, Product, ProductId, ProductStatus, Role, Subscription, TextTranslation};
use crate::ports::{CatalogWriteError, InfraError};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("forbidden")]
    Forbidden,
    #[error("product not found")]
    ProductNotFound,
    #[error("product exists")]
    ProductExists,
    #[error("plan exists")]
    PlanExists,
    #[error("the product has as many plans as it may")]
    TooManyPlans,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
}

impl Caller {
    fn may_write_catalog(&self) -> Result<(), CatalogError> {
        match self.role {
            Role::Admin | Role::Provider => Ok(()),
            Role::User => Err(CatalogError::Forbidden),
        }
    }

    /// Admins manage every product; a provider only those it owns.
    fn may_manage(&self, p: &Product) -> Result<(), CatalogError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Provider if p.owner_id.as_deref() == Some(self.user_id.as_str()) => Ok(()),
            _ => Err(CatalogError::Forbidden),
        }
    }
}

/// What a caller may set when creating a product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub product_id: ProductId,
    pub name: String,
    pub description: String,
    pub translations: BTreeMap<String, TextTranslation>,
    pub plans: Vec<Plan>,
}

/// A partial change (PATCH): each field that is set replaces the stored one; translations
/// replace the stored ones language by language.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub translations: Option<BTreeMap<String, TextTranslation>>,
    pub status: Option<ProductStatus>,
}

impl ProductPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.description.is_none() && self.translations.is_none() && self.status.is_none()
    }

    fn apply(&self, p: &mut Product) {
        if let Some(n) = &self.name {
            p.name = n.clone();
        }
        if let Some(d) = &self.description {
            p.description = d.clone();
        }
        if let Some(t) = &self.translations {
            p.translations.extend(t.clone());
        }
        if let Some(s) = self.status {
            p.status = s;
        }
    }
}

pub fn new_product(n: NewProduct, owner_id: Option<String>, now: chrono::DateTime<chrono::Utc>) -> Product {
    let mut p = Product {
        product_id: n.product_id,
        name: n.name,
        description: n.description,
        translations: n.translations,
        status: ProductStatus::Active,
        owner_id,
        created_at: now,
        updated_at: now,
        version: 1,
        plans: n.plans,
    };
    p.sort_plans();
    p
}

pub async fn create_product(ctx: &AppContext, caller: &Caller, input: NewProduct) -> Result<Product, CatalogError> {
    caller.may_write_catalog()?;
    let owner = (caller.role == Role::Provider).then(|| caller.user_id.clone());
    let product = new_product(input, owner, ctx.clock.now());
    ctx.stores.catalog.create_product(&product).await.map_err(|e| match e {
        CatalogWriteError::Exists => CatalogError::ProductExists,
        CatalogWriteError::NotFound => CatalogError::ProductNotFound,
        CatalogWriteError::Infra(e) => CatalogError::Infra(e),
    })?;
    Ok(product)
}

/// The product in any status, for those who may manage it.
async fn managed_product(ctx: &AppContext, caller: &Caller, id: &ProductId) -> Result<Product, CatalogError> {
    caller.may_write_catalog()?;
    let product = ctx.stores.catalog.product(id).await?.ok_or(CatalogError::ProductNotFound)?;
    caller.may_manage(&product)?;
    Ok(product)
}

pub async fn update_product(
    ctx: &AppContext,
    caller: &Caller,
    id: &ProductId,
    patch: &ProductPatch,
) -> Result<Product, CatalogError> {
    // Compare-and-swap on the product's version; a lost race re-reads and re-applies.
    for _ in 0..5 {
        let mut product = managed_product(ctx, caller, id).await?;
        if patch.is_empty() {
            return Ok(product);
        }
        let expected = product.version;
        patch.apply(&mut product);
        product.updated_at = ctx.clock.now();
        if ctx.stores.catalog.update_product(&product, expected).await? {
            product.version = expected + 1;
            return Ok(product);
        }
    }
    Err(CatalogError::Infra(anyhow::anyhow!("product {id} kept changing during the update")))
}

/// The most plans a product may have (so `stark catalog load` writes a product in one
/// transaction, and a product page stays small).
pub const MAX_PLANS: usize = 50;

pub async fn add_plan(ctx: &AppContext, caller: &Caller, id: &ProductId, plan: Plan) -> Result<Plan, CatalogError> {
    if managed_product(ctx, caller, id).await?.plans.len() >= MAX_PLANS {
        return Err(CatalogError::TooManyPlans);
    }
    ctx.stores.catalog.add_plan(id, &plan).await.map_err(|e| match e {
        CatalogWriteError::Exists => CatalogError::PlanExists,
        CatalogWriteError::NotFound => CatalogError::ProductNotFound,
        CatalogWriteError::Infra(e) => CatalogError::Infra(e),
    })?;
    Ok(plan)
}

/// Every subscription of the product, newest first, for its owner or an admin.
pub async fn subscribers(ctx: &AppContext, caller: &Caller, id: &ProductId) -> Result<Vec<Subscription>, CatalogError> {
    managed_product(ctx, caller, id).await?;
    Ok(ctx.stores.subscriptions.product_subscriptions(id).await?)
}

/// An active product, as anyone may read it.
pub async fn active_product(ctx: &AppContext, id: &ProductId) -> Result<Option<Product>, InfraError> {
    Ok(ctx.stores.catalog.product(id).await?.filter(|p| p.status == ProductStatus::Active))
}

/// An active product for a catalog page: from the product list, which is kept in process
/// memory for a short bound; a product not in it (made by another process since) is read
/// from the store.
pub async fn listed_product(ctx: &AppContext, id: &ProductId) -> Result<Option<Product>, InfraError> {
    match ctx.stores.catalog.list_products().await?.into_iter().find(|p| &p.product_id == id) {
        Some(p) => Ok(Some(p).filter(|p| p.status == ProductStatus::Active)),
        None => active_product(ctx, id).await,
    }
}

/// Every active product, from the product list kept in process memory for a short bound.
pub async fn active_products(ctx: &AppContext) -> Result<Vec<Product>, InfraError> {
    let mut all = ctx.stores.catalog.list_products().await?;
    all.retain(|p| p.status == ProductStatus::Active);
    Ok(all)
}

/// Writes a catalog file's products (ops). Existing products keep their owner and creation
/// time; their fields and the given plans are replaced.
pub async fn load_catalog(ctx: &AppContext, products: Vec<NewProduct>) -> Result<usize, InfraError> {
    let now = ctx.clock.now();
    let count = products.len();
    for n in products {
        let mut product = new_product(n, None, now);
        if let Some(old) = ctx.stores.catalog.product(&product.product_id).await? {
            product.owner_id = old.owner_id;
            product.created_at = old.created_at;
            product.version = old.version + 1;
        }
        ctx.stores.catalog.upsert_product(&product).await?;
    }
    Ok(count)
}

/// Loads `products` when the catalog holds nothing yet (the demo catalog of `stark serve`).
pub async fn seed_if_empty(ctx: &AppContext, products: Vec<NewProduct>) -> Result<bool, InfraError> {
    if !ctx.stores.catalog.list_products().await?.is_empty() {
        return Ok(false);
    }
    load_catalog(ctx, products).await?;
    Ok(true)
}
