//! The production mailer: SES v2 `SendEmail`, a simple message with an HTML and a text part,
//! the From address and (optionally) the configuration set from configuration.

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, MessageTag};
use aws_sdk_sesv2::Client;

use crate::ports::{Mailer, OutgoingEmail, SendFailure};

#[derive(Clone, Debug)]
pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, from: impl Into<String>, configuration_set: Option<String>) -> Self {
        SesMailer { client, from: from.into(), configuration_set }
    }
}

fn utf8(text: &str) -> Result<Content, SendFailure> {
    Content::builder().data(text).charset("UTF-8").build().map_err(|e| SendFailure::Transient(e.into()))
}

/// SES errors that will not go away by retrying this message: the message or its address
/// was refused (`InvalidParameterValue` is how the v1-compatible endpoints, moto among them,
/// refuse an address). Everything else (throttling, a paused account, a missing
/// configuration set, an outage) is transient: the queue retries, then the dead-letter queue
/// keeps it.
const REJECTIONS: [&str; 3] = ["MessageRejected", "BadRequestException", "InvalidParameterValue"];

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendFailure> {
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(Body::builder().text(utf8(&email.text)?).html(utf8(&email.html)?).build())
            .build();
        let res = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .email_tags(
                MessageTag::builder()
                    .name("template")
                    .value(email.template.as_str())
                    .build()
                    .map_err(|e| SendFailure::Transient(e.into()))?,
            )
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.message_id.unwrap_or_default()),
            Err(e) => {
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or_default().to_string();
                if REJECTIONS.contains(&code.as_str()) {
                    let why = e.as_service_error().and_then(|s| s.message()).unwrap_or_default();
                    Err(SendFailure::Rejected(format!("{code}: {why}")))
                } else {
                    Err(SendFailure::Transient(e.into()))
                }
            }
        }
    }
}
