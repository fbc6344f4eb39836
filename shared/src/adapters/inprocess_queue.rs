//! The local email queue: an in-process channel drained by a worker task that runs the same
//! sender as the `email-sender` Lambda (render, dedupe, send) with the `.eml` outbox as its
//! mailer. `stark serve` uses it; nothing else needs to be installed.

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use crate::app::notify::{Delivery, Sender};
use crate::ports::{EmailJob, EmailQueue, InfraError, OutboxEntry, OutboxStore};
use std::sync::Arc;

enum Message {
    Job(EmailJob),
    /// An outbox entry: removed from the outbox once handled.
    Entry(OutboxEntry),
    /// Answered once every job queued before it has been handled.
    Flush(oneshot::Sender<()>),
}

/// Jobs the worker handles at once: one email-log write and one outbox write for the lot.
const BATCH: usize = 64;

/// Sends a batch; what failed for a passing reason (a busy disk) gets one more try, and what
/// still fails stays in the outbox for the sweep. Entries handled for good leave the outbox.
async fn handle(sender: &Sender, outbox: &dyn OutboxStore, jobs: &[EmailJob], entries: Vec<Option<OutboxEntry>>) {
    let mut deliveries = sender.deliver_batch_logged(jobs).await;
    let again: Vec<usize> = (0..jobs.len()).filter(|&i| matches!(deliveries[i], Delivery::Retry { .. })).collect();
    if !again.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let retried: Vec<EmailJob> = again.iter().map(|&i| jobs[i].clone()).collect();
        for (i, d) in again.into_iter().zip(sender.deliver_batch_logged(&retried).await) {
            deliveries[i] = d;
        }
    }
    let done: Vec<OutboxEntry> = entries
        .into_iter()
        .zip(&deliveries)
        .filter_map(|(e, d)| e.filter(|_| !matches!(d, Delivery::Retry { .. })))
        .collect();
    if !done.is_empty() {
        if let Err(err) = outbox.delete_outbox_many(&done).await {
            tracing::warn!(jobs = done.len(), error = %crate::logs::chain(&err), "handled email jobs could not be removed from the outbox");
        }
    }
}

#[derive(Clone, Debug)]
pub struct InProcessQueue {
    tx: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Job(job) => job.fmt(f),
            Message::Entry(e) => e.job.fmt(f),
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl InProcessQueue {
    /// Starts the worker on the current runtime. It ends when every sender is dropped.
    pub fn start(sender: Sender, outbox: Arc<dyn OutboxStore>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // What has queued up while the last batch was handled, up to a flush: FIFO,
                // so a flush is answered once everything before it is handled.
                let mut batch = vec![first];
                while batch.len() < BATCH && !matches!(batch.last(), Some(Message::Flush(_))) {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let mut jobs = Vec::with_capacity(batch.len());
                let mut entries = Vec::with_capacity(batch.len());
                let mut flushes = Vec::new();
                for m in batch {
                    match m {
                        Message::Job(job) => {
                            jobs.push(job);
                            entries.push(None);
                        }
                        Message::Entry(e) => {
                            jobs.push(e.job.clone());
                            entries.push(Some(e));
                        }
                        Message::Flush(done) => flushes.push(done),
                    }
                }
                if !jobs.is_empty() {
                    handle(&sender, outbox.as_ref(), &jobs, entries).await;
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        InProcessQueue { tx }
    }

    /// Waits until every job queued before this call has been handled (the worker is FIFO).
    /// `stark` calls it before exiting, so no queued email is lost on shutdown.
    pub fn flush(&self) -> impl std::future::Future<Output = Result<(), InfraError>> + Send + 'static {
        // Queued now, not when first polled: "before this call" is exact.
        let (done, flushed) = oneshot::channel();
        let queued = self.tx.send(Message::Flush(done));
        async move {
            queued.map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))?;
            flushed.await.map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))
        }
    }
}

#[async_trait]
impl EmailQueue for InProcessQueue {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError> {
        self.tx.send(Message::Job(job.clone())).map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))
    }

    /// Not durable: the entry leaves the outbox only once the worker has handled it, so a
    /// crash loses nothing (the next start's sweep sends it; the email log drops a repeat).
    async fn enqueue_entry(&self, entry: &OutboxEntry) -> Result<bool, InfraError> {
        self.tx
            .send(Message::Entry(entry.clone()))
            .map(|()| false)
            .map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))
    }

    fn settle(&self) -> futures::future::BoxFuture<'static, Result<(), InfraError>> {
        Box::pin(self.flush())
    }

    async fn ping(&self) -> Result<(), InfraError> {
        anyhow::ensure!(!self.tx.is_closed(), "the in-process email worker has stopped");
        Ok(())
    }
}
