//! The email sender: one job in, at most one email out. Renders the job, takes it in the email
//! log (so a redelivered message sends nothing twice), sends it, and records the outcome.
//! The Lambda `email-sender` runs it per SQS record; `stark serve` per in-process job.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use std::collections::HashMap;
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
/// Emails of one batch being sent at once.
const SENDS_AT_ONCE: usize = 4;
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
        let mut d = self.deliver_batch(std::slice::from_ref(job)).await;
        d.pop().unwrap_or(Delivery::Retry { reason: "the sender answered nothing".into() })
    }

    /// Delivers a batch: each job as `deliver` would, with the email log's claims and sent
    /// marks written once for the lot (the local worker's path). Answers in the jobs' order.
    pub async fn deliver_batch(&self, jobs: &[EmailJob]) -> Vec<Delivery> {
        let now = self.clock.now();
        let mut out: Vec<Option<Delivery>> = jobs.iter().map(|_| None).collect();
        let mut ready = Vec::with_capacity(jobs.len());
        // A job that is in the batch twice (a sweep met a relay) is sent for its first.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut repeats = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            if let Some(&first) = first_of.get(job.job_id.as_str()) {
                repeats.push((i, first));
                continue;
            }
            first_of.insert(&job.job_id, i);
            if job.not_after.is_some_and(|t| t < now) {
                out[i] = Some(Delivery::Expired);
                continue;
            }
            match crate::email::render(job) {
                Ok(e) => ready.push((i, e)),
                Err(e) => out[i] = Some(Delivery::Undeliverable { reason: e.to_string() }),
            }
        }
        // A lease ends `LEASE` after it was taken, so one taken before `takes_over_before`
        // ends before `takes_over_before + LEASE`: treating leases that end by then as run
        // out frees exactly those of the processes before this one.
        let free_until = self.takes_over_before.map_or(now, |t| now.max(t + LEASE));
        let ids: Vec<&str> = ready.iter().map(|(i, _)| jobs[*i].job_id.as_str()).collect();
        let claims = match self.log.claim_sends(&ids, free_until, now + LEASE, now + KEEP).await {
            Ok(c) if c.len() == ready.len() => c,
            Ok(_) => return finish(out, "the email log answered a different number of claims"),
            Err(e) => return finish(out, &format!("email log: {e:#}")),
        };
        let mut claimed = Vec::with_capacity(ready.len());
        for ((i, email), claim) in ready.into_iter().zip(claims) {
            match claim {
                SendClaim::Claimed => claimed.push((i, email)),
                SendClaim::Sent { .. } | SendClaim::Rejected { .. } => out[i] = Some(Delivery::Duplicate),
                SendClaim::InFlight => {
                    out[i] = Some(Delivery::Retry { reason: "another sender holds this job".into() })
                }
            }
        }
        // A few sends at a time: overlapped, without a thread per email of the batch.
        let sends: Vec<_> = claimed
            .iter()
            .map(|(i, email)| async move {
                let job = &jobs[*i];
                let d = match self.mailer.send(email).await {
                    Ok(message_id) => Delivery::Sent { message_id },
                    Err(SendFailure::Rejected(reason)) => {
                        if let Err(e) = self.log.mark_rejected(&job.job_id, &job.to, &reason).await {
                            tracing::warn!(job_id = %job.job_id, error = %crate::logs::chain(&e), "rejection could not be recorded");
                        }
                        Delivery::Rejected { reason }
                    }
                    Err(SendFailure::Transient(e)) => {
                        if let Err(release) = self.log.release_send(&job.job_id).await {
                            tracing::warn!(job_id = %job.job_id, error = %crate::logs::chain(&release), "send claim could not be released");
                        }
                        Delivery::Retry { reason: format!("{e:#}") }
                    }
                };
                (*i, d)
            })
            .collect();
        let sent: Vec<(usize, Delivery)> = futures::stream::iter(sends).buffer_unordered(SENDS_AT_ONCE).collect().await;
        let marks: Vec<(&str, &str)> = sent
            .iter()
            .filter_map(|(i, d)| match d {
                Delivery::Sent { message_id } => Some((jobs[*i].job_id.as_str(), message_id.as_str())),
                _ => None,
            })
            .collect();
        if !marks.is_empty() {
            if let Err(e) = self.log.mark_sent_many(&marks).await {
                // Sent all the same; a redelivery within the lease still finds them held.
                tracing::warn!(jobs = marks.len(), error = %crate::logs::chain(&e), "sent emails could not be recorded");
            }
        }
        for (i, d) in sent {
            out[i] = Some(d);
        }
        for (i, first) in repeats {
            out[i] = Some(match &out[first] {
                Some(Delivery::Retry { reason }) => Delivery::Retry { reason: reason.clone() },
                _ => Delivery::Duplicate,
            });
        }
        finish(out, "not handled")
    }

    /// `deliver_batch`, each outcome logged as `deliver_logged` logs it.
    pub async fn deliver_batch_logged(&self, jobs: &[EmailJob]) -> Vec<Delivery> {
        let deliveries = self.deliver_batch(jobs).await;
        for (job, d) in jobs.iter().zip(&deliveries) {
            log_delivery(job, d);
        }
        deliveries
    }

    /// Delivers one job and logs the outcome (never the variables: they may hold a code).
    pub async fn deliver_logged(&self, job: &EmailJob) -> Delivery {
        let d = self.deliver(job).await;
        log_delivery(job, &d);
        d
    }
}

/// Every job still without an outcome gets `Retry` with `reason`.
fn finish(out: Vec<Option<Delivery>>, reason: &str) -> Vec<Delivery> {
    out.into_iter().map(|d| d.unwrap_or_else(|| Delivery::Retry { reason: reason.to_string() })).collect()
}

/// Logs one outcome (never the variables: they may hold a code).
fn log_delivery(job: &EmailJob, d: &Delivery) {
    let (id, template) = (&job.job_id, job.template.as_str());
    match d {
        Delivery::Sent { message_id } => tracing::info!(job_id = %id, template, message_id, "email sent"),
        Delivery::Duplicate => tracing::info!(job_id = %id, template, "email already handled; nothing sent"),
        Delivery::Expired => tracing::info!(job_id = %id, template, "email job expired; nothing sent"),
        Delivery::Rejected { reason } => {
            tracing::warn!(job_id = %id, template, reason, "the provider refused this recipient; recorded in the email log, not retried")
        }
        Delivery::Undeliverable { reason } => {
            tracing::error!(job_id = %id, template, reason, "email job cannot be rendered")
        }
        Delivery::Retry { reason } => tracing::warn!(job_id = %id, template, reason, "email send failed; will retry"),
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
                    tracing::error!(message_id = %m.id, error = %crate::logs::chain(&e), "could not park the message; it will be retried");
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
