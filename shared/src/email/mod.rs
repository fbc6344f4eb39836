//! Rendering email jobs into messages: subject, plain text and HTML.

use crate::ports::{EmailJob, EmailTemplate, OutgoingEmail};

/// Why a job cannot be rendered. Retrying does not help: the message is parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("email variable {0} is missing")]
    MissingVariable(String),
}

/// Whether `name` is a template this build renders.
pub fn is_known_template(name: &str) -> bool {
    serde_json::from_value::<EmailTemplate>(serde_json::Value::from(name)).is_ok()
}

/// The interim English renderer (the localized, branded templates replace it).
pub fn render(job: &EmailJob) -> Result<OutgoingEmail, RenderError> {
    let var = |k: &str| job.vars.get(k).cloned().ok_or_else(|| RenderError::MissingVariable(k.to_string()));
    let (subject, lines) = match job.template {
        EmailTemplate::OtpVerification => (
            "Verify your Stark account".to_string(),
            vec![
                format!("Hello {},", var("username")?),
                format!("Your verification code is {}.", var("code")?),
                format!("It expires in {} minutes.", var("ttl_minutes")?),
            ],
        ),
        EmailTemplate::PasswordReset => (
            "Reset your Stark password".to_string(),
            vec![
                format!("Hello {},", var("username")?),
                format!("Your password reset code is {}.", var("code")?),
                format!("It expires in {} minutes. If you did not ask for it, ignore this email.", var("ttl_minutes")?),
            ],
        ),
        EmailTemplate::PaymentConfirmation => (
            format!("Payment received: {}", var("product")?),
            vec![
                format!("Hello {},", var("username")?),
                format!("We received your payment of {} for {} ({}).", var("amount")?, var("product")?, var("plan")?),
                format!(
                    "Your subscription runs until {}. Payment reference: {}.",
                    var("period_end")?,
                    var("payment_id")?
                ),
            ],
        ),
        EmailTemplate::TrialStarted => (
            format!("Your {} trial has started", var("product")?),
            vec![
                format!("Hello {},", var("username")?),
                format!("Your free trial of {} ({}) has started.", var("product")?, var("plan")?),
                format!("It lasts {} days, until {}.", var("days")?, var("period_end")?),
            ],
        ),
    };
    let text = format!("{}\n\n-- \nStark Industries support: support@stark.example\n", lines.join("\n\n"));
    let html = format!(
        "<!doctype html><html><body style=\"background:#0b0d12;color:#e8e8ea;font-family:sans-serif\">{}<hr><p>Stark Industries support: support@stark.example</p></body></html>",
        lines.iter().map(|l| format!("<p>{}</p>", html_escape(l))).collect::<String>()
    );
    Ok(OutgoingEmail { job_id: job.job_id.clone(), template: job.template, to: job.to.clone(), subject, text, html })
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
