//! Sessions: a 15-minute access JWT plus an opaque refresh token, rotated on every use.

use chrono::Duration;

use crate::app::AppContext;
use crate::domain::User;
use crate::ports::{InfraError, RefreshTokenRecord, Rotation};
use crate::security::jwt::ACCESS_TOKEN_SECS;
use crate::security::{new_opaque_token, token_hash};

pub const REFRESH_TOKEN_DAYS: i64 = 30;

pub struct Session {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("unauthorized")]
    Unauthorized,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

fn access_token(ctx: &AppContext, user: &User) -> Result<String, InfraError> {
    let signer = ctx.keys.signer.as_ref().ok_or_else(|| anyhow::anyhow!("this function has no signing key"))?;
    Ok(signer.issue(&user.id, user.role, ctx.clock.now()).0)
}

fn refresh_record(ctx: &AppContext, user: &User, family_id: &str) -> (String, RefreshTokenRecord) {
    let token = new_opaque_token();
    let record = RefreshTokenRecord {
        token_hash: token_hash(&token),
        user_id: user.id.clone(),
        family_id: family_id.to_string(),
        generation: user.token_generation,
        rotated: false,
        expires_at: ctx.clock.now() + Duration::days(REFRESH_TOKEN_DAYS),
    };
    (token, record)
}

pub(super) async fn start_session(ctx: &AppContext, user: &User) -> Result<Session, InfraError> {
    let access_token = access_token(ctx, user)?;
    let (refresh_token, record) = refresh_record(ctx, user, &uuid::Uuid::now_v7().to_string());
    ctx.stores.refresh_tokens.create_family(&record).await?;
    Ok(Session { access_token, expires_in: ACCESS_TOKEN_SECS, refresh_token })
}

/// Exchanges a refresh token for a new session. Presenting a token that was already rotated
/// revokes its whole family: someone else holds a copy.
pub async fn refresh(ctx: &AppContext, presented: &str) -> Result<(User, Session), SessionError> {
    let hash = token_hash(presented);
    let record = ctx.stores.refresh_tokens.get_refresh(&hash).await?.ok_or(SessionError::Unauthorized)?;
    if record.expires_at <= ctx.clock.now() {
        return Err(SessionError::Unauthorized);
    }
    let user = ctx.stores.users.user_by_id(&record.user_id).await?.ok_or(SessionError::Unauthorized)?;
    if user.token_generation != record.generation {
        return Err(SessionError::Unauthorized);
    }
    let (refresh_token, next) = refresh_record(ctx, &user, &record.family_id);
    match ctx.stores.refresh_tokens.rotate(&record, &next).await? {
        Rotation::Rotated => {}
        Rotation::ReuseDetected => {
            tracing::warn!(user_id = %user.id, family_id = %record.family_id, "refresh token reuse; family revoked");
            return Err(SessionError::Unauthorized);
        }
        Rotation::FamilyRevoked | Rotation::NotFound => return Err(SessionError::Unauthorized),
    }
    let access_token = access_token(ctx, &user)?;
    Ok((user, Session { access_token, expires_in: ACCESS_TOKEN_SECS, refresh_token }))
}

/// Ends the session the token belongs to. Unknown tokens are ignored: logout always succeeds.
pub async fn logout(ctx: &AppContext, presented: &str) -> Result<(), InfraError> {
    if let Some(record) = ctx.stores.refresh_tokens.get_refresh(&token_hash(presented)).await? {
        ctx.stores.refresh_tokens.revoke_family(&record.family_id).await?;
    }
    Ok(())
}
