//! The RFC 5322 message of an email, built with lettre's message builder: what the `.eml`
//! outbox writes and what SES receives (as a raw message), so both get the same headers.
//!
//! Headers are never formatted by hand. Every value goes through lettre's header encoder,
//! which writes RFC 2047 encoded-words for anything that is not plain printable ASCII
//! (a CR or LF included), so no text from data can start a header line of its own. On top of
//! that, the subject is made one line here (control characters become spaces): a product name
//! with a line break in it, which the API refuses but older data could hold, still reads as
//! one subject.

use chrono::{DateTime, Utc};
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::ports::OutgoingEmail;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MimeError {
    /// The configured From is not an address (a configuration problem).
    #[error("the From address {0:?} is not valid")]
    From(String),
    #[error("the recipient is not a valid address")]
    To,
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// Parses a From such as `Stark Industries <no-reply@stark.example>`.
pub fn mailbox(from: &str) -> Result<Mailbox, MimeError> {
    from.parse::<Mailbox>().map_err(|_| MimeError::From(from.to_string()))
}

/// A header text as one line: control characters (CR and LF among them) become spaces.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A body part with CRLF line ends: 8-bit as the text is when it fits the rules for that
/// (lines under 998 octets, no NUL or bare CR), so people and tests can read the file as it
/// is; otherwise whatever transfer encoding lettre finds best.
fn body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    Body::new_with_encoding(crlf, ContentTransferEncoding::EightBit).unwrap_or_else(Body::new)
}

/// The whole message: From, To, Subject, Date, Message-ID and a multipart/alternative body
/// with the text and the HTML part.
pub fn message(from: &Mailbox, email: &OutgoingEmail, date: DateTime<Utc>) -> Result<Vec<u8>, MimeError> {
    let to: Mailbox = email.to.as_str().parse().map_err(|_| MimeError::To)?;
    let text = SinglePart::builder().header(lettre::message::header::ContentType::TEXT_PLAIN).body(body(&email.text));
    let html = SinglePart::builder().header(lettre::message::header::ContentType::TEXT_HTML).body(body(&email.html));
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&email.subject))
        .date(std::time::SystemTime::from(date))
        .message_id(Some(format!("<{}@stark.local>", one_line(&email.job_id).replace(' ', ""))))
        .multipart(MultiPart::alternative().singlepart(text).singlepart(html))
        .map_err(|e| MimeError::Build(e.to_string()))?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;
    use crate::ports::EmailTemplate;

    fn email(subject: &str) -> OutgoingEmail {
        OutgoingEmail {
            job_id: "job-1".into(),
            template: EmailTemplate::TrialStarted,
            to: Email::parse("pepper@stark.example").unwrap(),
            subject: subject.into(),
            text: "plain".into(),
            html: "<p>rich</p>".into(),
        }
    }

    #[test]
    fn a_line_break_in_the_subject_never_starts_a_header() {
        let from = mailbox("Stark Industries <no-reply@stark.example>").unwrap();
        let raw =
            message(&from, &email("Your Evil\r\nBcc: injected@attacker.test\r\nX-Injected: yes"), Utc::now()).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(!head.contains("\r\nBcc:") && !head.contains("\r\nX-Injected:"), "{head}");
    }

    #[test]
    fn a_bad_from_is_a_configuration_error() {
        assert!(matches!(mailbox("not an address"), Err(MimeError::From(_))));
        assert!(mailbox("no-reply@stark.example").is_ok());
    }
}
