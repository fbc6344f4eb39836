//! The local mailer: writes each email as an RFC 5322 `.eml` file (multipart/alternative,
//! text and HTML) into `<data-dir>/outbox/`. This is the only local home of a one-time code.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

use crate::ports::{EmailJob, EmailTemplate};

#[derive(Debug, Clone)]
pub struct EmlOutbox {
    dir: PathBuf,
    from: String,
}

/// Subject, plain text and HTML for a job. Interim English templates; the notifications
/// work replaces them with the localized, branded ones.
pub fn render(job: &EmailJob) -> anyhow::Result<(String, String, String)> {
    let var = |k: &str| job.vars.get(k).cloned().ok_or_else(|| anyhow::anyhow!("email variable {k} is missing"));
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
                format!("It lasts {} days, until {}.", var("days")?, var("trial_end")?),
            ],
        ),
    };
    let text = format!("{}\n\n-- \nStark Industries support: support@stark.example\n", lines.join("\n\n"));
    let html = format!(
        "<!doctype html><html><body style=\"background:#0b0d12;color:#e8e8ea;font-family:sans-serif\">{}<hr><p>Stark Industries support: support@stark.example</p></body></html>",
        lines.iter().map(|l| format!("<p>{}</p>", html_escape(l))).collect::<String>()
    );
    Ok((subject, text, html))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl EmlOutbox {
    pub fn new(dir: &Path, from: impl Into<String>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create outbox {}: {e}", dir.display()))?;
        Ok(EmlOutbox { dir: dir.to_path_buf(), from: from.into() })
    }

    /// Writes the job's email; the file name starts with the job id, so a job delivered
    /// twice overwrites its own file instead of sending twice.
    pub fn deliver(&self, job: &EmailJob, now: DateTime<Utc>) -> anyhow::Result<PathBuf> {
        let (subject, text, html) = render(job)?;
        let boundary = format!("=_stark_{}", job.job_id);
        let eml = format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@stark.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n--{boundary}--\r\n",
            from = self.from,
            to = job.to,
            date = now.to_rfc2822(),
            id = job.job_id,
            text = text.replace('\n', "\r\n"),
        );
        let name = format!("{}-{}.eml", job.job_id, job.template.as_str());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(name);
        // Write then rename, so a reader never sees half a message.
        std::fs::write(&tmp, eml)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
