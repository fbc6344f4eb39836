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
            while let Some(message) = rx.recv().await {
                let (job, entry) = match message {
                    Message::Job(job) => (job, None),
                    Message::Entry(e) => (e.job.clone(), Some(e)),
                    Message::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                let mut delivery = sender.deliver_logged(&job).await;
                if let Delivery::Retry { .. } = delivery {
                    // One more try for a passing failure (a busy disk); what still fails stays
                    // in the outbox for the sweep.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    delivery = sender.deliver_logged(&job).await;
                }
                if let (Some(e), false) = (entry, matches!(delivery, Delivery::Retry { .. })) {
                    if let Err(err) = outbox.delete_outbox(&e).await {
                        tracing::warn!(job_id = %e.job.job_id, error = %err, "handled email job could not be removed from the outbox");
                    }
                }
            }
        });
        InProcessQueue { tx }
    }

    /// Waits until every job queued so far has been written (the worker is FIFO). `stark`
    /// calls it before exiting, so no queued email is lost on shutdown.
    pub async fn flush(&self) -> Result<(), InfraError> {
        let (done, flushed) = oneshot::channel();
        self.tx.send(Message::Flush(done)).map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))?;
        flushed.await.map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))
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

    async fn settle(&self) -> Result<(), InfraError> {
        self.flush().await
    }

    async fn ping(&self) -> Result<(), InfraError> {
        anyhow::ensure!(!self.tx.is_closed(), "the in-process email worker has stopped");
        Ok(())
    }
}
