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
use crate::ports::{EmailJob, EmailTemplate};

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

/// Queues the email that carries `code`. A queue failure is logged, not returned: the code
/// is stored, and the user can ask for another once the cooldown passes.
async fn send_code(ctx: &AppContext, user: &User, purpose: OtpPurpose, code: &OtpCode) {
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
    };
    if let Err(e) = ctx.email_queue.enqueue(&job).await {
        tracing::error!(job_id = %job.job_id, template = template.as_str(), error = %e, "email job could not be queued");
    }
}
