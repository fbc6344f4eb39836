//! The email queue on Lambda: one SQS message per job, JSON body. The email-sender consumes it.

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use crate::ports::{DeadLetters, EmailJob, EmailQueue, InfraError};

#[derive(Clone, Debug)]
pub struct SqsEmailQueue {
    client: Client,
    queue_url: String,
}

impl SqsEmailQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsEmailQueue { client, queue_url: queue_url.into() }
    }
}

#[async_trait]
impl EmailQueue for SqsEmailQueue {
    async fn enqueue(&self, job: &EmailJob) -> Result<(), InfraError> {
        self.client.send_message().queue_url(&self.queue_url).message_body(serde_json::to_string(job)?).send().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), InfraError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
        Ok(())
    }
}

/// The lifecycle queue: one message per shard of a run, sent ten to a request.
#[derive(Clone, Debug)]
pub struct SqsShardQueue {
    client: Client,
    queue_url: String,
}

impl SqsShardQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsShardQueue { client, queue_url: queue_url.into() }
    }
}

#[async_trait]
impl crate::ports::ShardQueue for SqsShardQueue {
    async fn send_shards(&self, messages: &[crate::ports::ShardMessage]) -> Result<(), InfraError> {
        for batch in messages.chunks(10) {
            let mut req = self.client.send_message_batch().queue_url(&self.queue_url);
            for (i, m) in batch.iter().enumerate() {
                req = req.entries(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(serde_json::to_string(m)?)
                        .build()?,
                );
            }
            let out = req.send().await?;
            // A partly refused batch is a failure: the schedule's retry sends the run again,
            // and shards that were already sent repeat harmlessly (each step is idempotent).
            if let Some(f) = out.failed.first() {
                anyhow::bail!("SQS refused {} of the lifecycle's shard messages: {}", out.failed.len(), f.code);
            }
        }
        Ok(())
    }
}

/// The dead-letter queue, for messages the sender can never send (unparseable, an unknown
/// template, a missing variable): parked at once with the reason as a message attribute,
/// instead of being received and failed until the redrive policy moves them.
#[derive(Clone, Debug)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetters { client, queue_url: queue_url.into() }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn park(&self, body: &str, reason: &str) -> Result<(), InfraError> {
        let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason.chars().take(1000).collect::<String>())
            .build()?;
        // SQS refuses an empty body.
        let body = if body.is_empty() { "(empty)" } else { body };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("reason", reason)
            .send()
            .await?;
        Ok(())
    }
}
