//! The transactional outbox: email jobs are written in the same commit as the change that
//! causes them, relayed to the queue right after, and swept later if the relay failed.

use chrono::Duration;

use crate::app::AppContext;
use crate::ports::{EmailJob, InfraError, OutboxEntry};

/// An outbox entry for `job`, stamped now.
pub fn entry(ctx: &AppContext, job: EmailJob) -> OutboxEntry {
    OutboxEntry { created_at: ctx.clock.now(), job }
}

/// Sends committed entries to the queue and removes each one sent. An entry that could not
/// be sent stays for the sweep; nothing is lost.
pub async fn relay(ctx: &AppContext, entries: &[OutboxEntry]) -> usize {
    let mut sent = 0;
    let now = ctx.clock.now();
    for e in entries {
        if e.job.not_after.is_some_and(|t| t < now) {
            // A one-time code past its expiry: sending it now would only confuse.
            tracing::info!(job_id = %e.job.job_id, template = e.job.template.as_str(), "dropping an expired email job");
            if let Err(err) = ctx.stores.outbox.delete_outbox(e).await {
                tracing::warn!(job_id = %e.job.job_id, error = %err, "expired email job could not be removed");
            }
            continue;
        }
        let durable = match ctx.email_queue.enqueue_entry(e).await {
            Ok(durable) => durable,
            Err(err) => {
                tracing::warn!(job_id = %e.job.job_id, template = e.job.template.as_str(), error = %err, "email job stays in the outbox: the queue refused it");
                continue;
            }
        };
        sent += 1;
        if !durable {
            continue;
        }
        if let Err(err) = ctx.stores.outbox.delete_outbox(e).await {
            // It was sent; the sweep will send it again, and the sender drops the duplicate.
            tracing::warn!(job_id = %e.job.job_id, error = %err, "sent email job could not be removed from the outbox");
        }
    }
    sent
}

/// How old an entry must be before the sweep takes it: older than any relay in flight.
pub const SWEEP_AGE: Duration = Duration::seconds(30);

/// Relays every entry older than `min_age`, in batches. Returns how many were sent.
pub async fn sweep(ctx: &AppContext, min_age: Duration) -> Result<usize, InfraError> {
    let before = ctx.clock.now() - min_age;
    let mut total = 0;
    loop {
        let batch = ctx.stores.outbox.pending_outbox(before, 100).await?;
        if batch.is_empty() {
            return Ok(total);
        }
        let sent = relay(ctx, &batch).await;
        total += sent;
        if sent < batch.len() {
            // The queue is refusing; try again on the next sweep.
            return Ok(total);
        }
    }
}
