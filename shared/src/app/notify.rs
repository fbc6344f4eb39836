//! The email sender: one job in, at most one email out. Renders the job, takes it in the email
//! log (so a redelivered message sends nothing twice), sends it, and records the outcome.
//! The Lambda `email-sender` runs it per SQS record; `stark serve` per in-process job.

use chrono::Duration;
use std::sync::Arc;

use crate::ports::{Clock, DeadLetters, EmailJob, EmailLog, Mailer, SendClaim, SendFailure};

/// How long a sender holds a job it is sending: well above one send (the function times out
/// at 10 s), well below the queue's retries (5 receives, 60 s apart).
const LEASE: Duration = Duration::seconds(120);
/// How long the log remembers a job: past any redelivery.
const KEEP: Duration = Duration::days(30);

/// What became of one job.
#[derive(Debug)]
pub enum Delivery {
    Sent {
        message_id: String,
    },
    /// Sent or refused before: this was a redelivery.
    Duplicate,
    /// A one-time code past its expiry: not sent late.
    Expired,
    /// The provider refused the address for good; recorded, not retried.
    Rejected {
        reason: String,
    },
    /// The job itself is wrong (a missing variable): retrying cannot help.
    Undeliverable {
        reason: String,
    },
    /// Worth another try: the queue redelivers it.
    Retry {
        reason: String,
    },
}

#[derive(Clone)]
pub struct Sender {
    pub log: Arc<dyn EmailLog>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
}

impl Sender {
    pub async fn deliver(&self, job: &EmailJob) -> Delivery {
        let now = self.clock.now();
        if job.not_after.is_some_and(|t| t < now) {
            return Delivery::Expired;
        }
        let email = match crate::email::render(job) {
            Ok(e) => e,
            Err(e) => return Delivery::Undeliverable { reason: e.to_string() },
        };
        match self.log.claim_send(&job.job_id, now, now + LEASE, now + KEEP).await {
            Err(e) => return Delivery::Retry { reason: format!("email log: {e:#}") },
            Ok(SendClaim::Sent { .. } | SendClaim::Rejected { .. }) => return Delivery::Duplicate,
            Ok(SendClaim::InFlight) => return Delivery::Retry { reason: "another sender holds this job".into() },
            Ok(SendClaim::Claimed) => {}
        }
        match self.mailer.send(&email).await {
            Ok(message_id) => {
                if let Err(e) = self.log.mark_sent(&job.job_id, &message_id).await {
                    // Sent all the same; a redelivery within the lease still finds it held.
                    tracing::warn!(job_id = %job.job_id, error = %e, "sent email could not be recorded");
                }
                Delivery::Sent { message_id }
            }
            Err(SendFailure::Rejected(reason)) => {
                if let Err(e) = self.log.mark_rejected(&job.job_id, &job.to, &reason).await {
                    tracing::warn!(job_id = %job.job_id, error = %e, "rejection could not be recorded");
                }
                Delivery::Rejected { reason }
            }
            Err(SendFailure::Transient(e)) => {
                if let Err(release) = self.log.release_send(&job.job_id).await {
                    tracing::warn!(job_id = %job.job_id, error = %release, "send claim could not be released");
                }
                Delivery::Retry { reason: format!("{e:#}") }
            }
        }
    }

    /// Delivers one job and logs the outcome (never the variables: they may hold a code).
    pub async fn deliver_logged(&self, job: &EmailJob) -> Delivery {
        let d = self.deliver(job).await;
        let (id, template) = (&job.job_id, job.template.as_str());
        match &d {
            Delivery::Sent { message_id } => tracing::info!(job_id = %id, template, message_id, "email sent"),
            Delivery::Duplicate => tracing::info!(job_id = %id, template, "email already handled; nothing sent"),
            Delivery::Expired => tracing::info!(job_id = %id, template, "email job expired; nothing sent"),
            Delivery::Rejected { reason } => {
                tracing::warn!(job_id = %id, template, reason, "the provider refused this recipient; recorded in the email log, not retried")
            }
            Delivery::Undeliverable { reason } => {
                tracing::error!(job_id = %id, template, reason, "email job cannot be rendered")
            }
            Delivery::Retry { reason } => {
                tracing::warn!(job_id = %id, template, reason, "email send failed; will retry")
            }
        }
        d
    }
}

/// One queue message: its id (to report it failed) and body.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
}

/// Why a message body is not a job, in words for the log and the dead-letter queue.
fn unparseable(body: &str, e: &serde_json::Error) -> String {
    let template = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("template").and_then(|t| t.as_str()).map(str::to_string));
    match template {
        Some(t) if !crate::email::is_known_template(&t) => format!("unknown template {t:?}"),
        // The category and the position only: serde quotes the offending value, and a broken
        // job could carry a code.
        _ => format!("not an email job: {:?} error at line {} column {}", e.classify(), e.line(), e.column()),
    }
}

/// Handles one SQS batch; returns the ids of the messages to retry. A message that can never
/// be sent (unparseable, an unknown template, a missing variable) is parked in the
/// dead-letter queue and not retried; one that failed for a passing reason is retried, and
/// the redrive policy parks it after the last try. The rest of the batch goes on either way.
pub async fn handle_batch(sender: &Sender, dead: &dyn DeadLetters, messages: &[QueueMessage]) -> Vec<String> {
    let outcomes = futures::future::join_all(messages.iter().map(|m| async move {
        let park = |reason: String| async move {
            tracing::error!(message_id = %m.id, reason, "email message parked in the dead-letter queue");
            match dead.park(&m.body, &reason).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(message_id = %m.id, error = %e, "could not park the message; it will be retried");
                    Some(m.id.clone())
                }
            }
        };
        match serde_json::from_str::<EmailJob>(&m.body) {
            Err(e) => park(unparseable(&m.body, &e)).await,
            Ok(job) => match sender.deliver_logged(&job).await {
                Delivery::Retry { .. } => Some(m.id.clone()),
                Delivery::Undeliverable { reason } => park(reason).await,
                _ => None,
            },
        }
    }))
    .await;
    outcomes.into_iter().flatten().collect()
}
