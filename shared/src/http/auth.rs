//! The auth extractor: a handler that needs a caller asks for one and gets 401 otherwise.

use http::HeaderMap;

use super::ApiError;
use crate::app::AppContext;
use crate::domain::Role;

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub role: Role,
}

impl AuthUser {
    pub fn caller(self) -> crate::app::catalog::Caller {
        crate::app::catalog::Caller { user_id: self.user_id, role: self.role }
    }
}

pub fn authenticate(ctx: &AppContext, headers: &HeaderMap) -> Result<AuthUser, ApiError> {
    let value =
        headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(ApiError::unauthorized)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(ApiError::unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized());
    }
    let verifier = ctx
        .keys
        .verifier
        .as_ref()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("this function was deployed without a JWT key")))?;
    let claims = verifier.verify(token.trim(), ctx.clock.now()).map_err(|_| ApiError::unauthorized())?;
    Ok(AuthUser { user_id: claims.sub, role: claims.role })
}

/// A caller with one of `roles`: 401 without a valid token, 403 `forbidden` with another role.
pub fn authenticate_as(ctx: &AppContext, headers: &HeaderMap, roles: &[Role]) -> Result<AuthUser, ApiError> {
    let caller = authenticate(ctx, headers)?;
    if roles.contains(&caller.role) {
        Ok(caller)
    } else {
        Err(ApiError::client(http::StatusCode::FORBIDDEN, "forbidden"))
    }
}
