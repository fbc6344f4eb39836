// Shared by the test binaries (included with `#[path]`): emails read back the way a mail
// client reads them, with a real MIME parser (mail-parser), from an `.eml` file or from what
// moto's SES kept of a raw message.

#![allow(dead_code)]

use serde_json::Value;

/// One email as a parser sees it.
#[derive(Debug, Clone)]
pub struct ParsedMail {
    /// Every top-level header name, in order, as written.
    pub header_names: Vec<String>,
    pub subject: String,
    pub from: String,
    /// Every To, Cc and Bcc address.
    pub recipients: Vec<String>,
    pub text: String,
    pub html: String,
}

/// Parses an RFC 5322 message; panics when it does not parse.
pub fn parse(raw: &[u8]) -> ParsedMail {
    let msg = mail_parser::MessageParser::default().parse(raw).expect("the message parses");
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| a.clone().into_list().iter().filter_map(|x| x.address().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut recipients = addresses(msg.to());
    recipients.extend(addresses(msg.cc()));
    recipients.extend(addresses(msg.bcc()));
    ParsedMail {
        header_names: msg.headers().iter().map(|h| h.name().to_string()).collect(),
        subject: msg.subject().unwrap_or_default().to_string(),
        from: addresses(msg.from()).join(","),
        recipients,
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
    }
}

/// The messages moto's SES v2 sent to `to`, oldest first, from its `/moto-api/data.json`.
pub fn ses_sent_to(data: &Value, to: &str) -> Vec<ParsedMail> {
    data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["destinations"].as_array().is_some_and(|a| a.iter().any(|x| x == to)))
        .map(|m| parse(m["raw_data"].as_str().unwrap_or_default().as_bytes()))
        .collect()
}
