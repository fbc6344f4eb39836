mod auth;
mod health;

use super::router::{Endpoint, PathParams};
use super::{ApiError, ApiRequest, ApiResponse};
use crate::app::AppContext;

pub async fn dispatch(
    ctx: &AppContext,
    endpoint: Endpoint,
    _params: &PathParams,
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
    }
}
