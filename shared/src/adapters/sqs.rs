//! The email queue on Lambda: one SQS message per job, JSON body. The email-sender consumes it.

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use crate::ports::{EmailJob, EmailQueue, InfraError};

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
