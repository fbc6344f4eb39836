//! The local email queue: an in-process channel drained by a worker task that hands each job
//! to the `.eml` outbox. `stark serve` uses it; nothing else needs to be installed.

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::eml_outbox::EmlOutbox;
use crate::ports::{Clock, EmailJob, EmailQueue, InfraError};

#[derive(Clone, Debug)]
pub struct InProcessQueue {
    tx: mpsc::UnboundedSender<EmailJob>,
}

impl InProcessQueue {
    /// Starts the worker on the current runtime. It ends when every sender is dropped.
    pub fn start(outbox: EmlOutbox, clock: Arc<dyn Clock>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<EmailJob>();
        let worker = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
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
        (InProcessQueue { tx }, worker)
    }
}

#[async_trait]
impl EmailQueue for InProcessQueue {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError> {
        self.tx.send(job.clone()).map_err(|_| anyhow::anyhow!("the in-process email worker has stopped"))
    }

    async fn ping(&self) -> Result<(), InfraError> {
        anyhow::ensure!(!self.tx.is_closed(), "the in-process email worker has stopped");
        Ok(())
    }
}
