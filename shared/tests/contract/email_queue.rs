//! The email-queue contract: a job goes in and comes out whole, once, in order. Each adapter
//! is drained the way its consumer drains it: SQS by ReceiveMessage, the in-process queue by
//! its worker writing the `.eml` outbox.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stark::adapters::eml_outbox::EmlOutbox;
use stark::adapters::inprocess_queue::InProcessQueue;
use stark::adapters::sqs::SqsEmailQueue;
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

#[tokio::test]
async fn in_process_queue_delivers_jobs_intact() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = EmlOutbox::new(dir.path(), "Stark <no-reply@stark.example>").unwrap();
    let q = InProcessQueue::start(outbox, Arc::new(SystemClock));
    q.ping().await.unwrap();
    let sent: Vec<EmailJob> = (0..3).map(job).collect();
    for j in &sent {
        q.enqueue(j).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), q.flush()).await.unwrap().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
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
