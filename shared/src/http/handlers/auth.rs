//! Handlers for `/api/auth/*`: parse the body into domain types, call the use case, map its
//! error to a code.

use http::StatusCode;
use serde_json::json;

use super::with_message;
use crate::app::auth::{self as uc, CodeError, LoginError, SendError, Session, SessionError, SignupError};
use crate::app::AppContext;
use crate::domain::{Email, InvalidPassword, OtpCode, Password, User, Username};
use crate::http::auth::authenticate;
use crate::http::json::{object, take, Fields};
use crate::http::{ApiError, ApiRequest, ApiResponse};

fn email_field(f: &mut Fields<'_>) -> Option<Email> {
    f.required("email", Email::parse, |_| "field.email")
}

fn password_field(f: &mut Fields<'_>, name: &str) -> Option<Password> {
    f.required(name, Password::parse, |e| match e {
        InvalidPassword::TooShort => "field.password_short",
        InvalidPassword::TooLong => "field.password_long",
    })
}

fn otp_field(f: &mut Fields<'_>) -> Option<OtpCode> {
    f.required("otp", OtpCode::parse, |_| "field.otp")
}

fn token_field(f: &mut Fields<'_>) -> Option<String> {
    f.required("refresh_token", |s| Ok::<_, ()>(s.to_string()), |_| "field.string")
}

fn session_body(key: &str, user: &User, s: &Session) -> ApiResponse {
    with_message(
        StatusCode::OK,
        key,
        json!({
            "access_token": s.access_token,
            "token_type": "Bearer",
            "expires_in": s.expires_in,
            "refresh_token": s.refresh_token,
            "user": user.view(),
        }),
    )
}

fn code_error(e: CodeError) -> ApiError {
    match e {
        CodeError::Invalid => ApiError::client(StatusCode::BAD_REQUEST, "otp_invalid"),
        CodeError::Expired => ApiError::client(StatusCode::BAD_REQUEST, "otp_expired"),
        CodeError::AttemptsExceeded(wait) => ApiError::too_many("otp_attempts_exceeded", wait.0),
        CodeError::AlreadyVerified => ApiError::client(StatusCode::CONFLICT, "already_verified"),
        CodeError::Infra(e) => ApiError::Internal(e),
    }
}

fn send_error(e: SendError, code: &'static str) -> ApiError {
    match e {
        SendError::Cooldown(wait) => ApiError::too_many(code, wait.0),
        SendError::Infra(e) => ApiError::Internal(e),
    }
}

pub async fn signup(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    let password = password_field(&mut f, "password");
    let username = f.required("username", Username::parse, |_| "field.username");
    f.finish()?;
    let input = uc::SignupInput {
        email: take(email)?,
        username: take(username)?,
        password: take(password)?,
        // The language this request was answered in becomes the account's email language.
        locale: crate::i18n::current().as_str().into(),
    };
    let user = uc::signup(ctx, input).await.map_err(|e| match e {
        SignupError::EmailTaken => ApiError::client(StatusCode::CONFLICT, "email_taken"),
        SignupError::UsernameTaken => ApiError::client(StatusCode::CONFLICT, "username_taken"),
        SignupError::Infra(e) => ApiError::Internal(e),
    })?;
    Ok(with_message(StatusCode::CREATED, "signup_ok", json!({ "user": user.view() })))
}

pub async fn verify_otp(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    let otp = otp_field(&mut f);
    f.finish()?;
    let user = uc::verify_email(ctx, &take(email)?, &take(otp)?).await.map_err(code_error)?;
    Ok(with_message(StatusCode::OK, "verify_ok", json!({ "user": user.view() })))
}

pub async fn login(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    // A password outside the length rule cannot be right: it is simply wrong (401, with the
    // same work as any wrong password), not a validation error.
    let password = f.required("password", |s| Ok::<_, ()>(Password::parse(s).ok()), |_| "field.string");
    f.finish()?;
    let (user, session) = uc::login(ctx, &take(email)?, take(password)?.as_ref()).await.map_err(|e| match e {
        LoginError::InvalidCredentials => ApiError::client(StatusCode::UNAUTHORIZED, "invalid_credentials"),
        LoginError::EmailNotVerified => ApiError::client(StatusCode::FORBIDDEN, "email_not_verified"),
        LoginError::Locked(wait) => ApiError::too_many("too_many_attempts", wait.0),
        LoginError::Infra(e) => ApiError::Internal(e),
    })?;
    Ok(session_body("login_ok", &user, &session))
}

pub async fn resend_otp(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    f.finish()?;
    uc::resend_verification(ctx, &take(email)?).await.map_err(|e| send_error(e, "otp_resend_cooldown"))?;
    Ok(with_message(StatusCode::ACCEPTED, "resend_ok", json!({})))
}

pub async fn forgot_password(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    f.finish()?;
    uc::forgot_password(ctx, &take(email)?).await.map_err(|e| send_error(e, "otp_resend_cooldown"))?;
    Ok(with_message(StatusCode::ACCEPTED, "forgot_ok", json!({})))
}

pub async fn reset_password(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let email = email_field(&mut f);
    let otp = otp_field(&mut f);
    let password = password_field(&mut f, "new_password");
    f.finish()?;
    uc::reset_password(ctx, &take(email)?, &take(otp)?, &take(password)?).await.map_err(code_error)?;
    Ok(with_message(StatusCode::OK, "reset_ok", json!({})))
}

pub async fn refresh(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let token = token_field(&mut f);
    f.finish()?;
    let (user, session) = uc::refresh(ctx, &take(token)?).await.map_err(|e| match e {
        SessionError::Unauthorized => ApiError::unauthorized(),
        SessionError::Infra(e) => ApiError::Internal(e),
    })?;
    Ok(session_body("refresh_ok", &user, &session))
}

pub async fn logout(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let body = object(&req.body)?;
    let mut f = Fields::new(&body);
    let token = token_field(&mut f);
    f.finish()?;
    uc::logout(ctx, &take(token)?).await?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

pub async fn me(ctx: &AppContext, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let caller = authenticate(ctx, &req.headers)?;
    let user = ctx.stores.users.user_by_id(&caller.user_id).await?.ok_or_else(ApiError::unauthorized)?;
    Ok(ApiResponse::json(StatusCode::OK, &json!({ "user": user.view() })))
}
