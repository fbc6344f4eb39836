//! The email-queue contract: a job goes in and comes out whole, once, in order. Each adapter
//! is drained the way its consumer drains it: SQS by ReceiveMessage, the in-process queue by
//! its worker writing the `.eml` outbox.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stark::adapters::eml_outbox::EmlOutbox;
use stark::adapters::inprocess_queue::InProcessQueue;
use stark::adapters::sqlite::SqliteStore;
use stark::adapters::sqs::SqsEmailQueue;
use stark::app::notify::Sender;
use stark::clock::SystemClock;
use stark::domain::Email;
use stark::ports::{EmailJob, EmailQueue, EmailTemplate};

use crate::aws;

fn job(n: u32) -> EmailJob {
    EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::OtpVerification,
        to: Email::parse(&format!("user{n}@stark.example")).unwrap(),
        locale: "en".into(),
        vars: BTreeMap::from([
            ("code".into(), format!("{:06}", 100_000 + n)),
            ("username".into(), format!("user{n}")),
            ("ttl_minutes".into(), "10".into()),
        ]),
        not_after: None,
    }
}

#[tokio::test]
async fn sqs_delivers_jobs_intact() {
    let (client, url) = aws::sqs_queue().await;
    let q = SqsEmailQueue::new(client.clone(), url.clone());
    q.ping().await.unwrap();
    let sent: Vec<EmailJob> = (0..3).map(job).collect();
    for j in &sent {
        q.enqueue(j).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..10 {
        let out = client.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
        for m in out.messages() {
            got.push(serde_json::from_str::<EmailJob>(m.body().unwrap()).unwrap());
            client.delete_message().queue_url(&url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
        if got.len() >= sent.len() {
            break;
        }
    }
    got.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    assert_eq!(got, sent);
}

#[tokio::test]
async fn sqs_ping_fails_for_a_missing_queue() {
    let (client, url) = aws::sqs_queue().await;
    let q = SqsEmailQueue::new(client, format!("{url}-missing"));
    assert!(q.ping().await.is_err());
}

/// The in-process queue with its worker: the sender over a SQLite email log and the `.eml`
/// outbox in `dir` (the store lives in a subfolder).
fn in_process(dir: &std::path::Path) -> (InProcessQueue, stark::app::Stores) {
    let store = Arc::new(SqliteStore::open(&dir.join("db").join("stark.db")).unwrap());
    let stores = stark::app::Stores::from_adapter(store);
    let clock: Arc<dyn stark::ports::Clock> = Arc::new(SystemClock);
    let outbox = EmlOutbox::new(dir, "Stark <no-reply@stark.example>", clock.clone()).unwrap();
    let sender = Sender { log: stores.email_log.clone(), mailer: Arc::new(outbox), clock, takes_over_before: None };
    (InProcessQueue::start(sender, stores.outbox.clone()), stores)
}

fn emls(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn in_process_queue_sends_a_redelivered_job_once_and_clears_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let (q, stores) = in_process(dir.path());
    let entry = stark::ports::OutboxEntry { created_at: chrono::Utc::now(), job: job(7) };
    stores
        .subscriptions
        .commit(&stark::ports::Commit { outbox: vec![entry.clone()], ..Default::default() })
        .await
        .unwrap();
    // The queue is not durable: it keeps the entry in the outbox until its worker is done.
    assert!(!q.enqueue_entry(&entry).await.unwrap());
    q.enqueue(&entry.job).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), q.flush()).await.unwrap().unwrap();
    assert_eq!(emls(dir.path()).len(), 1, "a redelivered job is written once");
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    assert!(stores.outbox.pending_outbox(far, None, 10).await.unwrap().is_empty(), "handled, so removed");
}

#[tokio::test]
async fn in_process_queue_writes_a_flood_in_batches_and_answers_each_flush_after_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let (q, stores) = in_process(dir.path());
    // More than one batch of the worker (64), from the outbox, with a flush halfway.
    let entries: Vec<stark::ports::OutboxEntry> =
        (0..150).map(|n| stark::ports::OutboxEntry { created_at: chrono::Utc::now(), job: job(n) }).collect();
    stores.subscriptions.commit(&stark::ports::Commit { outbox: entries.clone(), ..Default::default() }).await.unwrap();
    for e in &entries[..100] {
        q.enqueue_entry(e).await.unwrap();
    }
    let halfway = q.flush();
    for e in &entries[100..] {
        q.enqueue_entry(e).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), halfway).await.unwrap().unwrap();
    let written = emls(dir.path());
    assert!(written.len() >= 100, "the flush answered after the 100 before it were written: {}", written.len());
    tokio::time::timeout(Duration::from_secs(30), q.flush()).await.unwrap().unwrap();
    let written = emls(dir.path());
    assert_eq!(written.len(), entries.len(), "each written once");
    for e in &entries {
        assert!(written.iter().any(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&e.job.job_id)));
    }
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    assert!(stores.outbox.pending_outbox(far, None, 1000).await.unwrap().is_empty(), "all handled, so removed");
    // Sent once: a second delivery of every job writes nothing (the email log knows them).
    for path in written {
        std::fs::remove_file(path).unwrap();
    }
    for e in &entries {
        q.enqueue(&e.job).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), q.flush()).await.unwrap().unwrap();
    assert_eq!(emls(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn in_process_queue_delivers_jobs_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _stores) = in_process(dir.path());
    q.ping().await.unwrap();
    let sent: Vec<EmailJob> = (0..3).map(job).collect();
    for j in &sent {
        q.enqueue(j).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), q.flush()).await.unwrap().unwrap();
    let files = emls(dir.path());
    assert_eq!(files.len(), sent.len());
    for (path, j) in files.iter().zip(&sent) {
        let eml = std::fs::read_to_string(path).unwrap();
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with(&j.job_id));
        assert!(eml.contains(&format!("To: {}\r\n", j.to)));
        assert!(eml.contains(&format!("Message-ID: <{}@stark.local>", j.job_id)));
        assert!(eml.contains("Content-Type: multipart/alternative"));
        assert!(eml.contains(&format!("Your verification code is {}.", j.vars["code"])));
    }
}
