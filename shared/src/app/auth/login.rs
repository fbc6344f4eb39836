use crate::app::{throttle, AppContext};
use crate::domain::throttle::{LoginFailures, RetryAfter};
use crate::domain::{Email, Password, User};
use crate::ports::InfraError;
use crate::security::password_hash::Verdict;

use super::session::{start_session, Session};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("locked")]
    Locked(RetryAfter),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

fn lockout_key(email: &Email) -> String {
    format!("login:{}", email.as_str())
}

/// Checks the password (against a dummy hash when the account does not exist, so both cost
/// the same), applies the per-email lockout, upgrades an outdated hash, and starts a session.
///
/// The attempt is counted as a failure *before* the password is checked, in one
/// compare-and-swap that also refuses a locked email: a burst of parallel guesses therefore
/// gets no more checks than the lockout allows. A success clears the count afterwards.
///
/// `password` is None when the submitted one breaks the length rule: it cannot be right, so
/// it is a wrong password like any other, counted and checked against the dummy hash at the
/// same cost, and answered `InvalidCredentials`.
pub async fn login(
    ctx: &AppContext,
    email: &Email,
    password: Option<&Password>,
) -> Result<(User, Session), LoginError> {
    let now = ctx.clock.now();
    let key = lockout_key(email);
    let throttle_store = ctx.stores.throttle.as_ref();
    let expires = |f: &LoginFailures| f.expires_at(now);
    let counted = throttle::update(throttle_store, &key, now, expires, |f: LoginFailures| match f.locked(now) {
        Some(wait) => Err(wait),
        None => Ok(f.fail(now)),
    })
    .await?
    .map_err(LoginError::Locked)?;

    let user = ctx.stores.users.user_by_email(email).await?;
    let verdict = match password {
        Some(password) => ctx.passwords.verify(password, user.as_ref().map(|u| &u.password_hash)).await?,
        None => {
            ctx.passwords.verify(&Password::stand_in(), None).await?;
            Verdict::Mismatch
        }
    };
    let (user, needs_rehash) = match (user.filter(|_| password.is_some()), verdict) {
        (Some(user), Verdict::Match { needs_rehash }) => (user, needs_rehash),
        _ => {
            return match counted.value.locked(now) {
                Some(wait) => Err(LoginError::Locked(wait)),
                None => Err(LoginError::InvalidCredentials),
            }
        }
    };
    // Clear the count, starting from the version just written: no read unless another attempt
    // wrote in between.
    throttle::update_from(throttle_store, &key, now, Some(counted), expires, |_| Ok::<_, ()>(LoginFailures::default()))
        .await?
        .ok();
    if !user.email_verified {
        return Err(LoginError::EmailNotVerified);
    }
    if let (true, Some(password)) = (needs_rehash, password) {
        let fresh = ctx.passwords.hash(password).await?;
        // Conditional on the old hash: a password reset that landed meanwhile wins.
        ctx.stores.users.set_password_hash(&user.id, &user.password_hash, &fresh).await?;
    }
    let session = start_session(ctx, &user).await?;
    Ok((user, session))
}
