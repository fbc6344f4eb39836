//! Adapters: one module per technology. Which ones run is decided by configuration
//! (`config.rs`), never by `cfg` flags.

pub mod amazon_translate;
pub mod aws_errors;
pub mod aws_https;
pub mod cached_catalog;
pub mod dynamodb;
pub mod eml_outbox;
pub mod inprocess_queue;
pub mod memory_cache;
pub mod redis_cache;
pub mod ses;
pub mod sqlite;
pub mod sqs;

use async_trait::async_trait;

/// For a function deployed without a queue: it sends no email, and saying so beats a panic.
#[derive(Debug, Clone, Copy)]
pub struct NoEmailQueue;

#[async_trait]
impl crate::ports::EmailQueue for NoEmailQueue {
    async fn enqueue(&self, _job: &crate::ports::EmailJob) -> Result<(), crate::ports::InfraError> {
        anyhow::bail!("this function was deployed without EMAIL_QUEUE_URL")
    }

    async fn ping(&self) -> Result<(), crate::ports::InfraError> {
        Ok(())
    }
}
