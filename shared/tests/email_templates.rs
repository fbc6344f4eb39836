//! The rendered emails: every template in every language, as snapshots
//! (`shared/tests/snapshots/`; review changes with `cargo insta review`, or accept them with
//! `INSTA_UPDATE=always`), plus the rules no snapshot shows at a glance.

#[path = "support/parsed_mail.rs"]
mod parsed_mail;

use std::collections::BTreeMap;

use stark::domain::Email;
use stark::email::{render, RenderError, SUPPORT_EMAIL};
use stark::i18n::Lang;
use stark::ports::{EmailJob, EmailTemplate};

/// Every variable any email uses, fixed so the snapshots are stable.
fn job(template: EmailTemplate, lang: Lang) -> EmailJob {
    let vars = [
        ("username", "tony"),
        ("code", "482913"),
        ("ttl_minutes", "10"),
        ("product", "Mark LXXXV Suit Control"),
        ("plan", "Gold (monthly)"),
        ("amount_minor", "123499"),
        ("currency", "USD"),
        ("period_end", "2026-12-26"),
        ("days", "3"),
        ("payment_id", "0193a1b2-0000-7000-8000-0000000000p1"),
        ("period_start", "2026-11-26"),
        ("balance_minor", "500"),
    ];
    EmailJob {
        job_id: "0193a1b2-0000-7000-8000-000000000001".into(),
        template,
        to: Email::parse("tony@stark.example").unwrap(),
        locale: lang.as_str().into(),
        vars: vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        not_after: None,
    }
}

#[test]
fn every_email_in_every_language() {
    for template in EmailTemplate::ALL {
        for lang in Lang::ALL {
            let email = render(&job(template, lang)).unwrap_or_else(|e| panic!("{template:?} {lang:?}: {e}"));
            let name = format!("{}__{}", template.as_str(), lang.as_str());
            insta::assert_snapshot!(
                name,
                format!(
                    "Subject: {}\n\n----- text -----\n{}\n----- html -----\n{}",
                    email.subject, email.text, email.html
                )
            );
        }
    }
}

/// A renewal's payment confirmation: the same template, with texts that say it is a renewal.
fn renewal(lang: Lang) -> EmailJob {
    let mut j = job(EmailTemplate::PaymentConfirmation, lang);
    j.vars.insert("renewal".into(), "true".into());
    j
}

#[test]
fn a_renewal_says_so_and_names_the_new_period_in_every_language() {
    for lang in Lang::ALL {
        let email = render(&renewal(lang)).unwrap();
        let purchase = render(&job(EmailTemplate::PaymentConfirmation, lang)).unwrap();
        assert_ne!(email.subject, purchase.subject, "{lang:?}");
        for part in [&email.text, &email.html] {
            assert!(part.contains("2026-11-26") && part.contains("2026-12-26"), "{lang:?}: {part}");
            assert!(part.contains("0193a1b2-0000-7000-8000-0000000000p1"), "{lang:?}: the payment reference");
        }
        insta::assert_snapshot!(
            format!("payment_confirmation_renewal__{}", lang.as_str()),
            format!("Subject: {}\n\n----- text -----\n{}\n----- html -----\n{}", email.subject, email.text, email.html)
        );
    }
    let low = render(&job(EmailTemplate::RenewalLowBalance, Lang::En)).unwrap();
    assert!(
        low.text.contains("1,234.99 USD") && low.text.contains("5.00 USD") && low.text.contains("2026-12-26"),
        "{}",
        low.text
    );
}

#[test]
fn each_part_carries_what_every_email_must() {
    let jobs = EmailTemplate::ALL.into_iter().flat_map(|t| Lang::ALL.map(move |l| (t, l, job(t, l))));
    let renewals = Lang::ALL.map(|l| (EmailTemplate::PaymentConfirmation, l, renewal(l)));
    for (template, lang, j) in jobs.chain(renewals) {
        {
            let e = render(&j).unwrap();
            let what = format!("{template:?} in {lang:?}");
            assert!(!e.subject.trim().is_empty() && !e.subject.contains('{'), "{what}: subject {:?}", e.subject);
            for part in [&e.text, &e.html] {
                assert!(part.contains(SUPPORT_EMAIL), "{what}: no support footer");
                assert!(part.contains("tony"), "{what}: no greeting by name");
                for name in [
                    "username",
                    "code",
                    "product",
                    "plan",
                    "amount",
                    "balance",
                    "period_start",
                    "period_end",
                    "days",
                    "support_email",
                ] {
                    assert!(!part.contains(&format!("{{{name}}}")), "{what}: {{{name}}} left unfilled");
                }
            }
            assert!(!e.text.contains('<'), "{what}: the text part is not stripped HTML");
            assert!(e.html.contains(&format!("<html lang=\"{}\"", lang.as_str())), "{what}");
            // Dark branding, inline (so it survives clients that strip <style>), with the
            // colours repeated as attributes.
            assert!(e.html.contains("bgcolor=\"#0b0d12\"") && !e.html.contains("<style"), "{what}");
        }
    }
}

#[test]
fn amounts_are_formatted_from_minor_units_in_the_users_language() {
    let en = render(&job(EmailTemplate::PaymentConfirmation, Lang::En)).unwrap();
    assert!(en.text.contains("1,234.99 USD"), "{}", en.text);
    let de = render(&job(EmailTemplate::PaymentConfirmation, Lang::De)).unwrap();
    assert!(de.text.contains("1.234,99 USD"), "{}", de.text);
    let fr = render(&job(EmailTemplate::PaymentFailed, Lang::Fr)).unwrap();
    assert!(fr.text.contains("1\u{202f}234,99 USD"), "{}", fr.text);
}

#[test]
fn codes_stand_out_and_values_are_escaped_in_html() {
    let mut j = job(EmailTemplate::OtpVerification, Lang::Ja);
    j.vars.insert("username".into(), "<script>alert(1)</script>".into());
    let e = render(&j).unwrap();
    assert!(!e.html.contains("<script>"), "{}", e.html);
    assert!(e.html.contains("&lt;script&gt;"));
    assert!(e.text.contains("<script>alert(1)</script>"), "the text part is plain text, not HTML");
    assert!(e.html.contains("<strong>482913</strong>"), "the code in its own box");
    assert!(e.text.contains("\n    482913\n"), "the code on a line of its own");
    // Only the code emails show a code box.
    assert!(!render(&job(EmailTemplate::TrialStarted, Lang::En)).unwrap().html.contains("<strong>482913</strong>"));
}

#[test]
fn a_missing_variable_or_an_unknown_locale() {
    let mut j = job(EmailTemplate::OtpVerification, Lang::En);
    j.vars.remove("code");
    assert_eq!(render(&j).unwrap_err(), RenderError::MissingVariable("code".into()));
    let mut j = job(EmailTemplate::PaymentConfirmation, Lang::En);
    j.vars.insert("amount_minor".into(), "12.5".into());
    assert_eq!(render(&j).unwrap_err(), RenderError::BadVariable("amount_minor".into()));
    let mut j = job(EmailTemplate::TrialStarted, Lang::En);
    j.locale = "tlh".into();
    let e = render(&j).unwrap();
    assert_eq!(
        e.subject,
        render(&job(EmailTemplate::TrialStarted, Lang::En)).unwrap().subject,
        "English for an unknown locale"
    );
}

/// Text that tries to end a header line and start its own headers, in every way a line can
/// break (CRLF, bare LF, bare CR, NEL, a NUL and a folded continuation), plus a MIME
/// boundary and some HTML.
const HOSTILE: &str = "Evil\r\nBcc: injected@attacker.test\r\nX-Injected: yes\nCc: lf@attacker.test\rX-Cr: yes\u{85}X-Nel: yes\u{0}\r\n continued\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\r\n<b>body</b>";

/// The headers every email has, and no others.
const HEADERS: [&str; 7] = ["Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To"];

fn hostile_job(template: EmailTemplate, lang: Lang) -> EmailJob {
    let mut j = job(template, lang);
    for (name, value) in j.vars.iter_mut() {
        // The amounts are numbers the renderer parses (a bad one is refused, below).
        if !["amount_minor", "balance_minor", "currency"].contains(&name.as_str()) {
            *value = HOSTILE.to_string();
        }
    }
    j
}

#[test]
fn hostile_text_in_every_variable_never_becomes_a_header_in_any_email_or_language() {
    let from = stark::email::mime::mailbox("Stark Industries <no-reply@stark.example>").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock: std::sync::Arc<dyn stark::ports::Clock> = std::sync::Arc::new(stark::clock::SystemClock);
    let outbox =
        stark::adapters::eml_outbox::EmlOutbox::new(dir.path(), "Stark Industries <no-reply@stark.example>", clock)
            .unwrap();
    for template in EmailTemplate::ALL {
        for lang in Lang::ALL {
            let what = format!("{template:?} in {lang:?}");
            let email = render(&hostile_job(template, lang)).unwrap_or_else(|e| panic!("{what}: {e}"));
            // What SES gets (the raw message) and what the `.eml` outbox writes.
            let raw = stark::email::mime::message(&from, &email, chrono::Utc::now()).unwrap();
            let file = std::fs::read(outbox.write(&email).unwrap()).unwrap();
            for bytes in [raw, file] {
                let head = String::from_utf8_lossy(&bytes[..bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap()])
                    .into_owned();
                for line in head.split("\r\n") {
                    assert!(!line.contains('\r') && !line.contains('\n'), "{what}: a bare line break in {line:?}");
                    assert!(line.is_ascii(), "{what}: an unencoded header line {line:?}");
                }
                let mail = parsed_mail::parse(&bytes);
                let mut names = mail.header_names.clone();
                names.sort();
                assert_eq!(names, HEADERS, "{what}: exactly the headers we meant\n{head}");
                assert_eq!(mail.recipients, ["tony@stark.example"], "{what}");
                assert_eq!(mail.from, "no-reply@stark.example", "{what}");
                assert!(!mail.subject.contains(['\r', '\n', '\0']), "{what}: {:?}", mail.subject);
                // The subject we meant, as one line (a long one is folded, and unfolding may
                // merge the spaces at a fold).
                let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
                assert_eq!(words(&mail.subject), words(&stark::email::mime::one_line(&email.subject)), "{what}");
                // The words are all there, as text, in both parts.
                assert!(mail.text.contains("Bcc: injected@attacker.test"), "{what}");
                assert!(!mail.html.contains("<b>body</b>") && mail.html.contains("&lt;b&gt;body&lt;"), "{what}");
            }
        }
    }
}

#[test]
fn a_hostile_amount_is_refused_not_rendered() {
    for template in [EmailTemplate::PaymentConfirmation, EmailTemplate::PaymentFailed] {
        let mut j = job(template, Lang::En);
        j.vars.insert("amount_minor".into(), HOSTILE.into());
        assert_eq!(render(&j).unwrap_err(), RenderError::BadVariable("amount_minor".into()));
        let mut j = job(template, Lang::En);
        j.vars.insert("currency".into(), HOSTILE.into());
        assert_eq!(render(&j).unwrap_err(), RenderError::BadVariable("currency".into()));
    }
}
