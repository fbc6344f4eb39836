//! The email log in the single table: `EMAILJOB#<job_id>` items, kept 30 days (TTL), so a
//! redelivered SQS message sends nothing twice.

use async_trait::async_trait;

use crate::adapters::aws_errors::dynamo;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use chrono::{DateTime, Utc};

use super::{get_s, key, s, ts, ttl, unless_condition_failed, DynamoStore, Item};
use crate::domain::Email;
use crate::ports::{EmailLog, InfraError, SendClaim};

fn log_key(job_id: &str) -> Item {
    key(format!("EMAILJOB#{job_id}"), "EMAILJOB")
}

#[async_trait]
impl EmailLog for DynamoStore {
    async fn claim_send(
        &self,
        job_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        keep_until: DateTime<Utc>,
    ) -> Result<SendClaim, InfraError> {
        let mut item = log_key(job_id);
        item.extend([
            ("state".into(), s("sending")),
            ("lease_until".into(), ts(lease_until)),
            ("keep_until".into(), ts(keep_until)),
            ("ttl".into(), ttl(keep_until)),
        ]);
        let held = self
            .put_or_read(
                item,
                "attribute_not_exists(PK) OR keep_until <= :now OR (#s = :sending AND lease_until <= :now)",
                &[("#s", "state")],
                &[(":now", ts(now)), (":sending", s("sending"))],
            )
            .await?;
        let Some(existing) = held else { return Ok(SendClaim::Claimed) };
        let text = |name: &str| match existing.get(name) {
            Some(AV::S(v)) => v.clone(),
            _ => String::new(),
        };
        Ok(match get_s(&existing, "state")? {
            "sent" => SendClaim::Sent { message_id: text("message_id") },
            "rejected" => SendClaim::Rejected { reason: text("reason") },
            _ => SendClaim::InFlight,
        })
    }

    async fn mark_sent(&self, job_id: &str, message_id: &str) -> Result<(), InfraError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(log_key(job_id)))
            .update_expression("SET #s = :sent, message_id = :m")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":m", s(message_id))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    async fn mark_rejected(&self, job_id: &str, to: &Email, reason: &str) -> Result<(), InfraError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(log_key(job_id)))
            .update_expression("SET #s = :rejected, recipient = :to, reason = :why")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":rejected", s("rejected"))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":why", s(reason))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    async fn release_send(&self, job_id: &str) -> Result<(), InfraError> {
        let req = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(log_key(job_id)))
            .condition_expression("#s = :sending")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":sending", s("sending"));
        unless_condition_failed(req.send().await)?;
        Ok(())
    }
}
