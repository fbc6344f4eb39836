mod auth;
pub mod billing;
pub mod catalog;
mod health;
mod views;

use http::StatusCode;

use super::router::{Endpoint, PathParams};
use super::{messages, ApiError, ApiRequest, ApiResponse};
use crate::app::AppContext;

/// A success body with its localized `message`.
fn with_message(status: StatusCode, key: &str, mut body: serde_json::Value) -> ApiResponse {
    body["message"] = serde_json::json!(messages::text(key));
    ApiResponse::json(status, &body)
}

pub async fn dispatch(
    ctx: &AppContext,
    endpoint: Endpoint,
    params: &PathParams,
    req: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    match endpoint {
        Endpoint::Health => health::health(ctx).await,
        Endpoint::Signup => auth::signup(ctx, req).await,
        Endpoint::VerifyOtp => auth::verify_otp(ctx, req).await,
        Endpoint::Login => auth::login(ctx, req).await,
        Endpoint::ResendOtp => auth::resend_otp(ctx, req).await,
        Endpoint::Refresh => auth::refresh(ctx, req).await,
        Endpoint::Logout => auth::logout(ctx, req).await,
        Endpoint::Me => auth::me(ctx, req).await,
        Endpoint::ForgotPassword => auth::forgot_password(ctx, req).await,
        Endpoint::ResetPassword => auth::reset_password(ctx, req).await,
        Endpoint::ListProducts => catalog::list(ctx).await,
        Endpoint::GetProduct => catalog::get(ctx, params).await,
        Endpoint::CreateProduct => catalog::create(ctx, req).await,
        Endpoint::UpdateProduct => catalog::update(ctx, params, req).await,
        Endpoint::AddPlan => catalog::add_plan(ctx, params, req).await,
        Endpoint::Subscribers => catalog::subscribers(ctx, params, req).await,
        Endpoint::StartTrial => billing::start_trial(ctx, req).await,
        Endpoint::Purchase => billing::purchase(ctx, req).await,
        Endpoint::MySubscriptions => billing::my_subscriptions(ctx, req).await,
        Endpoint::CancelSubscription => billing::cancel(ctx, params, req).await,
        Endpoint::Wallet => billing::wallet(ctx, req).await,
        Endpoint::GrantRole => billing::grant_role(ctx, req).await,
        Endpoint::CreditWallet => billing::credit(ctx, req).await,
    }
}
