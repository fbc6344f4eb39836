//! The email sender: one job in, at most one email out. Renders the job, takes it in the email
//! log (so a redelivered message sends nothing twice), sends it, and records the outcome.
//! The Lambda `email-sender` runs it per SQS record; `stark serve` per in-process job.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use crate::ports::{Clock, DeadLetters, EmailJob, EmailLog, Mailer, SendClaim, SendFailure};

/// The `email-sender` Lambda's timeout (`template.yaml`; a test holds the two together).
pub const SENDER_TIMEOUT_SECS: i64 = 10;

/// How long a sender holds a job it is sending: the sender's timeout. A job is taken during
/// an invocation, which Lambda ends at the latest one timeout after it started, so once the
/// lease has run out the sender that took it has finished or is dead, and another may send
/// the job without sending it twice. A longer lease would only delay the email of a sender
/// that died (the queue redelivers 60 s later, the visibility timeout, and finds the lease
/// long over); a shorter one could let a redelivery race a slow but live send. `stark serve`
/// uses the same lease and, owning its data dir alone, also takes over at start whatever
/// the process before it held (see [`Sender::takes_over_before`]).
pub const LEASE: Duration = Duration::seconds(SENDER_TIMEOUT_SECS);
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
    /// Leases taken before this time belong to a process that is gone: the local server sets
    /// its start time here, because one process owns the data dir, so what the process
    /// before it held when it died (a SIGKILL mid-send) is sent at the start sweep rather
    /// than a lease later. None on AWS, where many senders run at once.
    pub takes_over_before: Option<DateTime<Utc>>,
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
        // A lease ends `LEASE` after it was taken, so one taken before `takes_over_before`
        // ends before `takes_over_before + LEASE`: treating leases that end by then as run
        // out frees exactly those of the processes before this one.
        let free_until = self.takes_over_before.map_or(now, |t| now.max(t + LEASE));
        match self.log.claim_send(&job.job_id, free_until, now + LEASE, now + KEEP).await {
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
