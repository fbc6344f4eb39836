//! The email log on SQLite: which jobs were sent, so a redelivery sends nothing twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{ts, Cached, SqliteStore};
use crate::domain::Email;
use crate::ports::{EmailLog, InfraError, SendClaim};

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS email_log (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    keep_until TEXT NOT NULL,
    message_id TEXT,
    recipient TEXT,
    reason TEXT
);
"#;

/// Takes one job in `tx` (see `EmailLog::claim_send`).
fn claim(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    keep_until: DateTime<Utc>,
) -> rusqlite::Result<SendClaim> {
    let row: Option<(String, String, String, Option<String>, Option<String>)> = tx
        .row("SELECT state, lease_until, keep_until, message_id, reason FROM email_log WHERE job_id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let now_s = ts(now);
    if let Some((state, lease, keep, message_id, reason)) = row {
        if keep > now_s {
            match state.as_str() {
                "sent" => return Ok(SendClaim::Sent { message_id: message_id.unwrap_or_default() }),
                "rejected" => return Ok(SendClaim::Rejected { reason: reason.unwrap_or_default() }),
                _ if lease > now_s => return Ok(SendClaim::InFlight),
                _ => {}
            }
        }
    }
    tx.exec(
        "INSERT OR REPLACE INTO email_log (job_id, state, lease_until, keep_until) VALUES (?1, 'sending', ?2, ?3)",
        params![id, ts(lease_until), ts(keep_until)],
    )?;
    Ok(SendClaim::Claimed)
}

#[async_trait]
impl EmailLog for SqliteStore {
    async fn claim_send(
        &self,
        job_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<SendClaim, InfraError> {
        let claims = self.claim_sends(&[job_id], now, lease_until, keep_until).await?;
        claims.into_iter().next().ok_or_else(|| anyhow::anyhow!("the email log answered no claim"))
    }

    async fn claim_sends(
        &self,
        job_ids: &[&str],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<Vec<SendClaim>, InfraError> {
        let ids: Vec<String> = job_ids.iter().map(|id| id.to_string()).collect();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claims = ids
                .iter()
                .map(|id| claim(&tx, id, now, lease_until, keep_until))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            tx.commit()?;
            Ok(claims)
        })
        .await
    }

    async fn mark_sent_many(&self, sent: &[(&str, &str)]) -> Result<(), InfraError> {
        let sent: Vec<(String, String)> = sent.iter().map(|(id, m)| (id.to_string(), m.to_string())).collect();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, mid) in &sent {
                tx.exec("UPDATE email_log SET state = 'sent', message_id = ?2 WHERE job_id = ?1", params![id, mid])?;
            }
            tx.commit()
        })
        .await
    }

    async fn mark_sent(&self, job_id: &str, message_id: &str) -> Result<(), InfraError> {
        self.mark_sent_many(&[(job_id, message_id)]).await
    }

    async fn mark_rejected(&self, job_id: &str, to: &Email, reason: &str) -> Result<(), InfraError> {
        let (id, to, reason) = (job_id.to_string(), to.as_str().to_string(), reason.to_string());
        self.run(move |c| {
            c.exec(
                "UPDATE email_log SET state = 'rejected', recipient = ?2, reason = ?3 WHERE job_id = ?1",
                params![id, to, reason],
            )
            .map(|_| ())
        })
        .await
    }

    async fn release_send(&self, job_id: &str) -> Result<(), InfraError> {
        let id = job_id.to_string();
        self.run(move |c| c.exec("DELETE FROM email_log WHERE job_id = ?1 AND state = 'sending'", [id]).map(|_| ()))
            .await
    }
}
