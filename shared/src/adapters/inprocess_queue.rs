//! The local email queue: an in-process channel drained by a worker task that hands each job
//! to the `.eml` outbox. `stark serve` uses it; nothing else needs to be installed.

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::eml_outbox::EmlOutbox;
use crate::ports::{Clock, EmailJob, EmailQueue, InfraError};

enum Message {
    Job(EmailJob),
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
            Message::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl InProcessQueue {
    /// Starts the worker on the current runtime. It ends when every sender is dropped.
    pub fn start(outbox: EmlOutbox, clock: Arc<dyn Clock>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let job = match message {
                    Message::Job(job) => job,
                    Message::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                let outbox = outbox.clone();
                let now = clock.now();
                let id = job.job_id.clone();
                let res = tokio::task::spawn_blocking(move || outbox.deliver(&job, now)).await;
                match res {
                    Ok(Ok(path)) => tracing::info!(job_id = %id, path = %path.display(), "email written to outbox"),
                    Ok(Err(e)) => tracing::error!(job_id = %id, error = %e, "email could not be written"),
                    Err(e) => tracing::error!(job_id = %id, error = %e, "email worker task failed"),
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

    async fn ping(&self) -> Result<(), InfraError> {
        anyhow::ensure!(!self.tx.is_closed(), "the in-process email worker has stopped");
        Ok(())
    }
}
