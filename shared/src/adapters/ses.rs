//! The production mailer: SES v2 `SendEmail` with a raw message, built by `email::mime`
//! exactly as the local `.eml` outbox writes it (so its headers are encoded the same way and
//! tested once), the From address and (optionally) the configuration set from configuration.
//! The destination is given explicitly too, so SES sends to the recipient we meant whatever
//! the headers say.

use async_trait::async_trait;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use aws_sdk_sesv2::Client;

use crate::email::mime;
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

/// The address part of a From such as `Stark Industries <no-reply@stark.example>`.
fn address_of(from: &str) -> &str {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from.trim(),
    }
}

/// Whether an SES error refuses this message's recipient for good (recorded, never retried)
/// rather than the sending side. A malformed or illegal address is `BadRequestException`
/// (`InvalidParameterValue` on the v1-compatible endpoints, moto among them).
/// `MessageRejected` is both: a recipient the sandbox does not allow, or content refused for
/// it, but also a From identity that is not verified; its message names the failing
/// identity, and when that is our From it is a configuration problem. Those, and everything
/// else (throttling, a paused account, a missing configuration set, an outage), are transient:
/// the queue retries, then the dead-letter queue keeps the message until the fix, so no email
/// is written off for a mistake on our side.
pub fn refuses_recipient(code: &str, message: &str, from: &str) -> bool {
    match code {
        "BadRequestException" | "InvalidParameterValue" => true,
        "MessageRejected" => !message.to_ascii_lowercase().contains(&address_of(from).to_ascii_lowercase()),
        _ => false,
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<String, SendFailure> {
        // A From that does not parse is our configuration, retried until it is fixed.
        let from = mime::mailbox(&self.from).map_err(|e| SendFailure::Transient(e.into()))?;
        let raw = mime::message(&from, email, chrono::Utc::now()).map_err(|e| SendFailure::Transient(e.into()))?;
        let message =
            RawMessage::builder().data(Blob::new(raw)).build().map_err(|e| SendFailure::Transient(e.into()))?;
        let res = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(email.to.as_str()).build())
            .content(EmailContent::builder().raw(message).build())
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
                let why = e.as_service_error().and_then(|s| s.message()).unwrap_or_default().to_string();
                if refuses_recipient(&code, &why, &self.from) {
                    Err(SendFailure::Rejected(format!("{code}: {why}")))
                } else {
                    Err(SendFailure::Transient(e.into()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Stark Industries <no-reply@stark.example>";

    #[test]
    fn a_refused_recipient_is_final_and_our_own_misconfiguration_is_not() {
        assert!(refuses_recipient("BadRequestException", "Illegal address", FROM));
        assert!(refuses_recipient("InvalidParameterValue", "Missing domain", FROM));
        // The sandbox refusing an unverified recipient names the recipient.
        let sandbox = "Email address is not verified. The following identities failed the check in region US-EAST-1: pepper@example.com";
        assert!(refuses_recipient("MessageRejected", sandbox, FROM));
        // An unverified From names ours: fix the identity and the retry goes out.
        let unverified = "Email address is not verified. The following identities failed the check in region US-EAST-1: No-Reply@Stark.Example";
        assert!(!refuses_recipient("MessageRejected", unverified, FROM));
        assert!(!refuses_recipient(
            "MessageRejected",
            "Email address not verified no-reply@stark.example",
            "no-reply@stark.example"
        ));
        for transient in
            ["TooManyRequestsException", "SendingPausedException", "NotFoundException", "LimitExceededException", ""]
        {
            assert!(!refuses_recipient(transient, "whatever", FROM), "{transient}");
        }
    }
}
