//! The texts of one email in one language, from the catalogs' `email.*` keys, with the job's
//! variables filled in. Rendering (HTML, plain text, branding) is the mailer's business.

use std::collections::BTreeMap;

use super::{format_in, Lang};

/// The texts of every email the platform sends (api.md, "Emails"), one set per kind of
/// message: each has `email.<name>.subject`, `.heading`, `.p1` and `.p2` in every catalog.
/// `payment_renewal` is the `payment_confirmation` of a renewal.
pub const TEMPLATES: [&str; 10] = [
    "otp_verification",
    "password_reset",
    "payment_confirmation",
    "trial_started",
    "expiry_reminder",
    "payment_failed",
    "subscription_expired",
    "subscription_canceled",
    "renewal_low_balance",
    "payment_renewal",
];

/// The localized parts of an email, in reading order: greeting, heading, paragraphs,
/// signature, then the support footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTexts {
    pub subject: String,
    pub greeting: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub signature: String,
    pub footer: String,
}

/// The texts of `template` (one of [`TEMPLATES`], e.g. `EmailTemplate::as_str()`) in `lang`,
/// with `vars` (`username`, `code`, `ttl_minutes`, `product`, `plan`, `amount`,
/// `period_end`, `days`, ...) filled in and `support_email` in the footer. Values are
/// inserted as they are: escaping for HTML is the renderer's job.
pub fn email_texts(lang: Lang, template: &str, vars: &BTreeMap<String, String>, support_email: &str) -> EmailTexts {
    let mut args: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    args.push(("support_email", support_email));
    let part = |name: &str| format_in(lang, &format!("email.{template}.{name}"), &args);
    EmailTexts {
        subject: part("subject"),
        greeting: format_in(lang, "email.greeting", &args),
        heading: part("heading"),
        paragraphs: vec![part("p1"), part("p2")],
        signature: format_in(lang, "email.signature", &args),
        footer: format_in(lang, "email.footer", &args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("username", "tony"),
            ("code", "123456"),
            ("ttl_minutes", "10"),
            ("product", "STARK-MK85"),
            ("plan", "MONTHLY_GOLD"),
            ("amount", "$19.99"),
            ("period_end", "2026-12-26"),
            ("days", "3"),
            ("period_start", "2026-11-26"),
            ("balance", "$5.00"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn every_email_has_every_part_in_every_language_with_nothing_left_unfilled() {
        let keys = super::super::catalog::keys();
        for template in TEMPLATES {
            for part in ["subject", "heading", "p1", "p2"] {
                let key = format!("email.{template}.{part}");
                assert!(keys.contains(&key.as_str()), "{key} is missing from en.txt");
            }
            for lang in Lang::ALL {
                let t = email_texts(lang, template, &vars(), "support@stark.example");
                let all =
                    [&t.subject, &t.greeting, &t.heading, &t.paragraphs[0], &t.paragraphs[1], &t.signature, &t.footer];
                for text in all {
                    assert!(!text.contains('{') && !text.is_empty(), "{lang} {template}: {text:?}");
                }
                assert!(t.greeting.contains("tony"));
                assert!(t.footer.contains("support@stark.example"));
            }
        }
    }

    #[test]
    fn the_code_reaches_the_otp_email_in_every_language() {
        for lang in Lang::ALL {
            let t = email_texts(lang, "otp_verification", &vars(), "help@stark.example");
            assert!(t.paragraphs[0].contains("123456"), "{lang}");
            assert!(t.paragraphs[1].contains("10"), "{lang}");
        }
    }
}
