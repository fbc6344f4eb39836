//! The rendered emails: every template in every language, as snapshots
//! (`shared/tests/snapshots/`; review changes with `cargo insta review`, or accept them with
//! `INSTA_UPDATE=always`), plus the rules no snapshot shows at a glance.

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
    assert!(low.text.contains("1,234.99 USD") && low.text.contains("5.00 USD") && low.text.contains("2026-12-26"), "{}", low.text);
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
                for name in
                    ["username", "code", "product", "plan", "amount", "balance", "period_start", "period_end", "days", "support_email"]
                {
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
