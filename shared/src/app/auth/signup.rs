use crate::app::{throttle, AppContext};
use crate::domain::throttle::SendWindow;
use crate::domain::{Email, OtpPurpose, Password, Role, User, Username};
use crate::ports::{CreateUserError, InfraError};

#[derive(Debug)]
pub struct SignupInput {
    pub email: Email,
    pub username: Username,
    pub password: Password,
    pub locale: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("email taken")]
    EmailTaken,
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Creates an unverified account with its first verification code, then queues the code.
/// The send counts against the resend window, so an immediate resend is refused.
pub async fn signup(ctx: &AppContext, input: SignupInput) -> Result<User, SignupError> {
    let password_hash = ctx.passwords.hash(&input.password).await?;
    let now = ctx.clock.now();
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email: input.email,
        username: input.username,
        role: Role::User,
        email_verified: false,
        locale: input.locale,
        created_at: now,
        password_hash,
        token_generation: 0,
    };
    let (code, record) = super::new_code(ctx, OtpPurpose::Verification, &user.email)?;
    let email = super::code_email(ctx, &user, OtpPurpose::Verification, &code, &record);
    let outbox = [email];
    ctx.stores.users.create_user(&user, &record, &outbox).await.map_err(|e| match e {
        CreateUserError::EmailTaken => SignupError::EmailTaken,
        CreateUserError::UsernameTaken => SignupError::UsernameTaken,
        CreateUserError::Infra(e) => SignupError::Infra(e),
    })?;
    let key = super::send_window_key(OtpPurpose::Verification, &user.email);
    let recorded = throttle::update(
        ctx.stores.throttle.as_ref(),
        &key,
        now,
        |w: &SendWindow| w.expires_at(now),
        |w| Ok::<_, ()>(w.record(now)),
    )
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %crate::logs::chain(&e), "signup send was not recorded in the resend window");
    }
    crate::app::outbox::relay(ctx, &outbox).await;
    Ok(user)
}
