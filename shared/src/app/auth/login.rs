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
pub async fn login(ctx: &AppContext, email: &Email, password: &Password) -> Result<(User, Session), LoginError> {
    let now = ctx.clock.now();
    let key = lockout_key(email);
    let throttle_store = ctx.stores.throttle.as_ref();
    let failures: LoginFailures = throttle::peek(throttle_store, &key, now).await?;
    if let Some(wait) = failures.locked(now) {
        return Err(LoginError::Locked(wait));
    }
    let user = ctx.stores.users.user_by_email(email).await?;
    let verdict = ctx.passwords.verify(password, user.as_ref().map(|u| &u.password_hash)).await?;
    let (user, needs_rehash) = match (user, verdict) {
        (Some(user), Verdict::Match { needs_rehash }) => (user, needs_rehash),
        _ => {
            let after = throttle::update(throttle_store, &key, now, |f: &LoginFailures| f.expires_at(now), |f| {
                Ok::<_, ()>(f.fail(now))
            })
            .await?;
            return match after.ok().and_then(|f| f.locked(now)) {
                Some(wait) => Err(LoginError::Locked(wait)),
                None => Err(LoginError::InvalidCredentials),
            };
        }
    };
    if failures.consecutive > 0 {
        throttle::update(throttle_store, &key, now, |f: &LoginFailures| f.expires_at(now), |_| {
            Ok::<_, ()>(LoginFailures::default())
        })
        .await?
        .ok();
    }
    if !user.email_verified {
        return Err(LoginError::EmailNotVerified);
    }
    if needs_rehash {
        let fresh = ctx.passwords.hash(password).await?;
        ctx.stores.users.set_password_hash(&user.id, &fresh).await?;
    }
    let session = start_session(ctx, &user).await?;
    Ok((user, session))
}
