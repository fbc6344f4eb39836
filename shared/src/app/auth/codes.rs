//! One-time codes after signup: resend, verify, forgot-password and reset-password.

use crate::app::{throttle, AppContext};
use crate::domain::throttle::{RetryAfter, SendWindow};
use crate::domain::{mac_matches, otp_mac, Email, OtpCode, OtpPurpose, Password, User, OTP_MAX_WRONG_TRIES};
use crate::ports::{InfraError, OtpRedemption};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("send window exhausted")]
    Cooldown(RetryAfter),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("invalid code")]
    Invalid,
    #[error("expired code")]
    Expired,
    /// The code is void; a new one can be asked for after the send window allows it.
    #[error("too many wrong codes")]
    AttemptsExceeded(RetryAfter),
    #[error("already verified")]
    AlreadyVerified,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Admits a send for `email` through its window. The window is charged whether or not the
/// account exists, so the answer reveals nothing.
async fn admit_send(ctx: &AppContext, purpose: OtpPurpose, email: &Email) -> Result<(), SendError> {
    let now = ctx.clock.now();
    let key = super::send_window_key(purpose, email);
    throttle::update(ctx.stores.throttle.as_ref(), &key, now, |w: &SendWindow| w.expires_at(now), |w| w.admit(now))
        .await?
        .map(|_| ())
        .map_err(SendError::Cooldown)
}

async fn issue_code(ctx: &AppContext, user: &User, purpose: OtpPurpose) -> Result<(), InfraError> {
    let (code, record) = super::new_code(ctx, purpose, &user.email)?;
    let outbox = [super::code_email(ctx, user, purpose, &code, &record)];
    ctx.stores.otps.put_otp(&user.email, purpose, &record, &outbox).await?;
    crate::app::outbox::relay(ctx, &outbox).await;
    Ok(())
}

/// Sends a new verification code to an unverified account; silently nothing otherwise.
pub async fn resend_verification(ctx: &AppContext, email: &Email) -> Result<(), SendError> {
    admit_send(ctx, OtpPurpose::Verification, email).await?;
    with_floor(ctx, async {
        match ctx.stores.users.user_by_email(email).await? {
            Some(user) if !user.email_verified => issue_code(ctx, &user, OtpPurpose::Verification).await,
            _ => Ok(()),
        }
    })
    .await?;
    Ok(())
}

/// Sends a password-reset code when the account exists; silently nothing otherwise.
pub async fn forgot_password(ctx: &AppContext, email: &Email) -> Result<(), SendError> {
    admit_send(ctx, OtpPurpose::PasswordReset, email).await?;
    with_floor(ctx, async {
        match ctx.stores.users.user_by_email(email).await? {
            Some(user) => issue_code(ctx, &user, OtpPurpose::PasswordReset).await,
            None => Ok(()),
        }
    })
    .await?;
    Ok(())
}

/// Runs `work` and returns no sooner than `ctx.enumeration_floor` after it started.
async fn with_floor<T>(ctx: &AppContext, work: impl std::future::Future<Output = T>) -> T {
    let done_at = tokio::time::Instant::now() + ctx.enumeration_floor;
    let out = work.await;
    // A deadline already past would still wait for the timer's next tick (about 1 ms).
    if tokio::time::Instant::now() < done_at {
        tokio::time::sleep_until(done_at).await;
    }
    out
}

/// Checks `code` against the pending one. A try is charged before the comparison, so no
/// burst of parallel guesses gets more than the allowed number of comparisons. On a match
/// returns the code's MAC, to be redeemed conditionally; the last wrong try voids the code.
async fn check_code(ctx: &AppContext, purpose: OtpPurpose, email: &Email, code: &OtpCode) -> Result<String, CodeError> {
    let otps = &ctx.stores.otps;
    let record = otps.take_attempt(email, purpose, OTP_MAX_WRONG_TRIES).await?.ok_or(CodeError::Invalid)?;
    if record.is_expired(ctx.clock.now()) {
        return Err(CodeError::Expired);
    }
    let presented = otp_mac(ctx.pepper()?, purpose, email, code);
    if mac_matches(&presented, &record.code_mac) {
        return Ok(record.code_mac);
    }
    if record.attempts >= OTP_MAX_WRONG_TRIES {
        otps.delete_otp(email, purpose, &record.code_mac).await?;
        let now = ctx.clock.now();
        let window: SendWindow =
            throttle::peek(ctx.stores.throttle.as_ref(), &super::send_window_key(purpose, email), now).await?;
        return Err(CodeError::AttemptsExceeded(window.admit(now).err().unwrap_or(RetryAfter(1))));
    }
    Err(CodeError::Invalid)
}

pub async fn verify_email(ctx: &AppContext, email: &Email, code: &OtpCode) -> Result<User, CodeError> {
    let mut user = ctx.stores.users.user_by_email(email).await?.ok_or(CodeError::Invalid)?;
    if user.email_verified {
        return Err(CodeError::AlreadyVerified);
    }
    let mac = check_code(ctx, OtpPurpose::Verification, email, code).await?;
    let redemption = OtpRedemption::VerifyEmail { user_id: user.id.clone() };
    if !ctx.stores.otps.redeem_otp(email, OtpPurpose::Verification, &mac, &redemption).await? {
        // Consumed by a concurrent request in between.
        return Err(CodeError::Invalid);
    }
    user.email_verified = true;
    Ok(user)
}

/// Sets a new password. Proving receipt of the code also proves the address, so the email
/// becomes verified; every refresh token of the account stops working.
pub async fn reset_password(
    ctx: &AppContext,
    email: &Email,
    code: &OtpCode,
    new_password: &Password,
) -> Result<(), CodeError> {
    let user = ctx.stores.users.user_by_email(email).await?.ok_or(CodeError::Invalid)?;
    let mac = check_code(ctx, OtpPurpose::PasswordReset, email, code).await?;
    let new_hash = ctx.passwords.hash(new_password).await?;
    let redemption = OtpRedemption::ResetPassword { user_id: user.id.clone(), new_hash };
    if !ctx.stores.otps.redeem_otp(email, OtpPurpose::PasswordReset, &mac, &redemption).await? {
        return Err(CodeError::Invalid);
    }
    Ok(())
}
