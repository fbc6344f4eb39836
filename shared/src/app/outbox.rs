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
/// be sent stays for the sweep; nothing is lost. Returns how many were sent and how many the
/// queue refused (the rest were expired codes, dropped).
pub async fn relay(ctx: &AppContext, entries: &[OutboxEntry]) -> (usize, usize) {
    let (mut sent, mut refused) = (0, 0);
    let now = ctx.clock.now();
    for e in entries {
        if e.job.not_after.is_some_and(|t| t < now) {
            // A one-time code past its expiry: sending it now would only confuse.
            tracing::info!(job_id = %e.job.job_id, template = e.job.template.as_str(), "dropping an expired email job");
            if let Err(err) = ctx.stores.outbox.delete_outbox(e).await {
                tracing::warn!(job_id = %e.job.job_id, error = %crate::logs::chain(&err), "expired email job could not be removed");
            }
            continue;
        }
        let durable = match ctx.email_queue.enqueue_entry(e).await {
            Ok(durable) => durable,
            Err(err) => {
                tracing::warn!(job_id = %e.job.job_id, template = e.job.template.as_str(), error = %crate::logs::chain(&err), "email job stays in the outbox: the queue refused it");
                refused += 1;
                continue;
            }
        };
        sent += 1;
        if !durable {
            continue;
        }
        if let Err(err) = ctx.stores.outbox.delete_outbox(e).await {
            // It was sent; the sweep will send it again, and the sender drops the duplicate.
            tracing::warn!(job_id = %e.job.job_id, error = %crate::logs::chain(&err), "sent email job could not be removed from the outbox");
        }
    }
    (sent, refused)
}

/// How old an entry must be before the sweep takes it: older than any relay in flight.
pub const SWEEP_AGE: Duration = Duration::seconds(30);

/// Relays every entry older than `min_age`, in batches: one pass over what is pending now,
/// page after page. An entry handed to a queue that keeps it in the outbox until delivered
/// (the in-process one) is not read again in the same pass, so a slow or failing worker
/// cannot make the sweep spin. Returns how many were handed over.
pub async fn sweep(ctx: &AppContext, min_age: Duration) -> Result<usize, InfraError> {
    let before = ctx.clock.now() - min_age;
    let mut after: Option<OutboxEntry> = None;
    let mut total = 0;
    loop {
        let batch = ctx.stores.outbox.pending_outbox(before, after.as_ref(), 100).await?;
        let Some(last) = batch.last().cloned() else { return Ok(total) };
        let (sent, refused) = relay(ctx, &batch).await;
        total += sent;
        if refused > 0 {
            // The queue is refusing; try again on the next sweep.
            return Ok(total);
        }
        after = Some(last);
    }
}
