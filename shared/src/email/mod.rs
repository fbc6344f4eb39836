//! Rendering email jobs into messages: a subject, a plain-text part written for people, and a
//! dark, Stark-branded HTML part that still reads well when a client drops its CSS (all styles
//! are inline, colours are repeated as `bgcolor`, and the content is plain headings and
//! paragraphs). The words come from the message catalogs in the user's language; the layout
//! is one minijinja template per part (`templates/`), with HTML escaping on.

use std::collections::BTreeMap;
use std::sync::LazyLock;

pub mod mime;

use crate::domain::{Currency, Money};
use crate::i18n::{self, Lang};
use crate::ports::{EmailJob, EmailTemplate, OutgoingEmail};

/// Where people write with questions; every email's footer names it.
pub const SUPPORT_EMAIL: &str = "support@stark.example";

/// Why a job cannot be rendered. Retrying does not help: the message is parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("email variable {0} is missing")]
    MissingVariable(String),
    #[error("email variable {0} is not valid")]
    BadVariable(String),
    #[error("email template failed: {0}")]
    Template(String),
}

/// Whether `name` is a template this build renders.
pub fn is_known_template(name: &str) -> bool {
    serde_json::from_value::<EmailTemplate>(serde_json::Value::from(name)).is_ok()
}

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    // `.html` turns HTML escaping on; the text part is left as written.
    env.add_template("email.html", include_str!("templates/email.html")).expect("email.html parses");
    env.add_template("email.txt", include_str!("templates/email.txt")).expect("email.txt parses");
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
});

/// An amount from minor units, the way the language writes numbers: `1,234.50 USD` in
/// English, `1.234,50 USD` in German and Spanish, `1 234,50 USD` in French.
pub fn format_amount(lang: Lang, money: Money) -> String {
    let (group, decimal) = match lang {
        Lang::De | Lang::Es => (".", ","),
        Lang::Fr => ("\u{202f}", ","),
        Lang::En | Lang::Hi | Lang::Ja => (",", "."),
    };
    let digits = money.currency.minor_digits();
    let per = 10u64.pow(digits);
    let abs = money.amount_minor.unsigned_abs();
    let whole = (abs / per).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push_str(group);
        }
        grouped.push(c);
    }
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    let width = digits as usize;
    format!("{sign}{grouped}{decimal}{:0width$} {}", abs % per, money.currency.as_str())
}

/// The job's variables as the texts use them: `amount` and `balance` come from
/// `amount_minor` and `balance_minor` with `currency`, formatted for the language.
fn variables(job: &EmailJob, lang: Lang) -> Result<BTreeMap<String, String>, RenderError> {
    let mut vars = job.vars.clone();
    for (minor_name, name) in [("amount_minor", "amount"), ("balance_minor", "balance")] {
        let Some(minor) = job.vars.get(minor_name) else { continue };
        let amount_minor = minor.parse::<i64>().map_err(|_| RenderError::BadVariable(minor_name.into()))?;
        let currency = job
            .vars
            .get("currency")
            .and_then(|c| Currency::parse(c))
            .ok_or_else(|| RenderError::BadVariable("currency".into()))?;
        vars.insert(name.into(), format_amount(lang, Money { amount_minor, currency }));
    }
    Ok(vars)
}

/// Every variable the template's English texts use must be there: a missing one is an error,
/// not an email with a hole in it.
fn check_variables(template: &str, vars: &BTreeMap<String, String>) -> Result<(), RenderError> {
    let parts = ["subject", "heading", "p1", "p2"].map(|p| format!("email.{template}.{p}"));
    for key in parts.iter().map(String::as_str).chain(["email.greeting"]) {
        let text = i18n::text_in(Lang::En, key);
        for name in i18n::catalog::placeholders(text).unwrap_or_default() {
            if name != "support_email" && !vars.contains_key(name) {
                return Err(RenderError::MissingVariable(name.to_string()));
            }
        }
    }
    Ok(())
}

/// Which set of texts a job reads: its template's, but a renewal's payment confirmation says
/// that it is a renewal and names the new period.
fn texts_of(job: &EmailJob) -> &'static str {
    match job.template {
        EmailTemplate::PaymentConfirmation if job.vars.get("renewal").is_some_and(|v| v == "true") => "payment_renewal",
        t => t.as_str(),
    }
}

/// Renders `job` in its locale (English when the locale is not one of ours).
pub fn render(job: &EmailJob) -> Result<OutgoingEmail, RenderError> {
    let lang = Lang::parse(&job.locale).unwrap_or(Lang::En);
    let template = texts_of(job);
    let vars = variables(job, lang)?;
    check_variables(template, &vars)?;
    let texts = i18n::email_texts(lang, template, &vars, SUPPORT_EMAIL);
    let code = match job.template {
        EmailTemplate::OtpVerification | EmailTemplate::PasswordReset => vars.get("code").cloned(),
        _ => None,
    };
    // A payment's reference, for the customer's records and for support.
    let reference = vars.get("payment_id").map(|id| i18n::format_in(lang, "email.reference", &[("reference", id)]));
    let ctx = minijinja::context! {
        lang => lang.as_str(),
        subject => &texts.subject,
        heading => &texts.heading,
        greeting => &texts.greeting,
        paragraphs => &texts.paragraphs,
        signature => &texts.signature,
        footer => &texts.footer,
        code => code,
        reference => reference,
    };
    let part = |name: &str| {
        TEMPLATES.get_template(name).and_then(|t| t.render(&ctx)).map_err(|e| RenderError::Template(e.to_string()))
    };
    Ok(OutgoingEmail {
        job_id: job.job_id.clone(),
        template: job.template,
        to: job.to.clone(),
        subject: texts.subject.clone(),
        text: part("email.txt")?,
        html: part("email.html")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_from_minor_units_per_language() {
        let m = Money::usd(123_456_789);
        assert_eq!(format_amount(Lang::En, m), "1,234,567.89 USD");
        assert_eq!(format_amount(Lang::De, m), "1.234.567,89 USD");
        assert_eq!(format_amount(Lang::Fr, m), "1\u{202f}234\u{202f}567,89 USD");
        assert_eq!(format_amount(Lang::Ja, Money::usd(5)), "0.05 USD");
        assert_eq!(format_amount(Lang::Es, Money::usd(4999)), "49,99 USD");
        assert_eq!(format_amount(Lang::En, Money::usd(100_000)), "1,000.00 USD");
    }
}
