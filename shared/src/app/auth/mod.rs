//! Authentication use cases: signup, one-time codes, login, sessions.

mod codes;
mod login;
mod session;
mod signup;

pub use codes::{forgot_password, resend_verification, reset_password, verify_email, CodeError, SendError};
pub use login::{login, LoginError};
pub use session::{logout, refresh, Session, SessionError};
pub use signup::{signup, SignupError, SignupInput};

use std::collections::BTreeMap;

use crate::domain::{otp_mac, Email, OtpCode, OtpPurpose, OtpRecord, User, OTP_TTL_MINUTES};
use crate::ports::{EmailJob, EmailTemplate, OutboxEntry};

use super::AppContext;

fn send_window_key(purpose: OtpPurpose, email: &Email) -> String {
    format!("send:{}:{}", purpose.as_str(), email.as_str())
}

/// A fresh code and the record to store for it.
fn new_code(ctx: &AppContext, purpose: OtpPurpose, email: &Email) -> anyhow::Result<(OtpCode, OtpRecord)> {
    let code = OtpCode::generate();
    let mac = otp_mac(ctx.pepper()?, purpose, email, &code);
    Ok((code, OtpRecord::new(mac, ctx.clock.now())))
}

/// The outbox entry of the email that carries `code`. It is written with the code itself and
/// relayed right after; it is useless once the code expires, so it is not sent after that.
fn code_email(ctx: &AppContext, user: &User, purpose: OtpPurpose, code: &OtpCode, record: &OtpRecord) -> OutboxEntry {
    let template = match purpose {
        OtpPurpose::Verification => EmailTemplate::OtpVerification,
        OtpPurpose::PasswordReset => EmailTemplate::PasswordReset,
    };
    let job = EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template,
        to: user.email.clone(),
        locale: user.locale.clone(),
        vars: BTreeMap::from([
            ("code".to_string(), code.reveal().to_string()),
            ("username".to_string(), user.username.as_str().to_string()),
            ("ttl_minutes".to_string(), OTP_TTL_MINUTES.to_string()),
        ]),
        not_after: Some(record.expires_at),
    };
    crate::app::outbox::entry(ctx, job)
}
