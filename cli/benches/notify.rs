//! Email benchmarks: render time per email (every template, every language, in process), and
//! the email sender's throughput for one SQS batch of 10 against moto_server (SES v2 on its
//! own server, the email log in DynamoDB), as `./scripts/bench` runs it.
//! Run with `cargo bench -p stark-cli --bench notify`; results go into BENCHMARKS.md.

#[path = "../../shared/tests/support/aws.rs"]
mod aws;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use stark::app::notify::{handle_batch, QueueMessage, Sender};
use stark::domain::Email;
use stark::i18n::Lang;
use stark::ports::{EmailJob, EmailTemplate};

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn job(template: EmailTemplate, lang: Lang, to: &str) -> EmailJob {
    let vars = [
        ("username", "tony"),
        ("code", "482913"),
        ("ttl_minutes", "10"),
        ("product", "Mark LXXXV Suit Control"),
        ("plan", "Gold (monthly)"),
        ("amount_minor", "4999"),
        ("currency", "USD"),
        ("period_end", "2026-12-26"),
        ("days", "3"),
        ("payment_id", "0193a1b2-0000-7000-8000-0000000000p1"),
    ];
    EmailJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        template,
        to: Email::parse(to).unwrap(),
        locale: lang.as_str().into(),
        vars: vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        not_after: None,
    }
}

fn main() {
    println!("## email benchmarks ({} logical CPUs)\n", std::thread::available_parallelism().map_or(0, |n| n.get()));

    // 1. Render: subject, text and HTML of one email, in process.
    let jobs: Vec<EmailJob> = EmailTemplate::ALL
        .iter()
        .flat_map(|t| Lang::ALL.iter().map(move |l| job(*t, *l, "tony@stark.example")))
        .collect();
    for j in &jobs {
        stark::email::render(j).unwrap(); // warm the template environment and catalogs
    }
    let mut per_email = Vec::new();
    for _ in 0..100 {
        for j in &jobs {
            let t = Instant::now();
            let e = stark::email::render(j).unwrap();
            std::hint::black_box(e);
            per_email.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    per_email.sort_by(f64::total_cmp);
    println!(
        "render one email (8 templates x 6 languages, n={}): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        per_email.len(),
        pct(&per_email, 0.5),
        pct(&per_email, 0.99),
        per_email[per_email.len() - 1]
    );

    // 2. One batch of 10 through the sender against moto.
    if std::env::var("STARK_TEST_MOTO_URL").is_err() || std::env::var("STARK_TEST_MOTO_SES_URL").is_err() {
        println!("sender throughput: not run (STARK_TEST_MOTO_URL / STARK_TEST_MOTO_SES_URL are not set; ./scripts/bench sets them)");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (dynamo, table) = aws::dynamo_table().await;
        let store = Arc::new(stark::adapters::dynamodb::DynamoStore::new(dynamo, table));
        let ses = aws::ses_client().await;
        ses.create_email_identity().email_identity("no-reply@stark.example").send().await.unwrap();
        let (sqs, dlq) = aws::sqs_queue().await;
        let sender = Sender {
            log: store,
            mailer: Arc::new(stark::adapters::ses::SesMailer::new(ses, "no-reply@stark.example", None)),
            clock: Arc::new(stark::clock::SystemClock),
            takes_over_before: None,
        };
        let dead = stark::adapters::sqs::SqsDeadLetters::new(sqs, dlq);
        let mut batches = Vec::new();
        for round in 0..21 {
            let batch: Vec<QueueMessage> = (0..10)
                .map(|i| {
                    let j = job(EmailTemplate::ALL[i % 8], Lang::ALL[i % 6], &format!("b{round}x{i}@stark.example"));
                    QueueMessage { id: format!("m{round}-{i}"), body: serde_json::to_string(&j).unwrap() }
                })
                .collect();
            let t = Instant::now();
            let failed = handle_batch(&sender, &dead, &batch).await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(failed.is_empty(), "{failed:?}");
            if round > 0 {
                batches.push(ms);
            }
        }
        batches.sort_by(f64::total_cmp);
        let p50 = pct(&batches, 0.5);
        println!(
            "email-sender, one SQS batch of 10 (render, claim in DynamoDB, SES v2 send, mark sent; moto; n=20 batches): p50 {p50:.1} ms, p99 {:.1} ms = {:.0} emails/s",
            pct(&batches, 0.99),
            10.0 * 1e3 / p50
        );
    });
}
