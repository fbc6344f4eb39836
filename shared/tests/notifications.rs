//! The email pipeline against moto_server: outbox → SQS → email-sender → SES v2, with the
//! email log in DynamoDB. Each test uses its own table, queues and recipient addresses, since
//! moto's state is shared by every test of the run.

#[path = "support/aws.rs"]
mod aws;
#[path = "support/parsed_mail.rs"]
mod parsed_mail;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use stark::adapters::dynamodb::DynamoStore;
use stark::adapters::eml_outbox::EmlOutbox;
use stark::adapters::ses::SesMailer;
use stark::adapters::sqs::{SqsDeadLetters, SqsEmailQueue};
use stark::app::notify::{handle_batch, QueueMessage, Sender};
use stark::app::{AppContext, Stores};
use stark::clock::SystemClock;
use stark::domain::Email;
use stark::ports::*;

const FROM: &str = "no-reply@stark.example";

/// An SES identity on moto for the From address (SES v2 refuses an unverified sender).
async fn ses() -> aws_sdk_sesv2::Client {
    let client = aws::ses_client().await;
    client.create_email_identity().email_identity(FROM).send().await.expect("create the SES identity on moto");
    client
}

/// The messages moto's SES holds for `to` (moto keeps the HTML body only).
async fn sent_to(to: &str) -> Vec<parsed_mail::ParsedMail> {
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", aws::moto_ses_url())).await.unwrap().json().await.unwrap();
    parsed_mail::ses_sent_to(&data, to)
}

fn address() -> String {
    format!("{}@stark.example", aws::unique("to"))
}

fn job(to: &str, code: &str) -> EmailJob {
    EmailJob {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::OtpVerification,
        to: Email::parse(to).unwrap(),
        locale: "en".into(),
        vars: BTreeMap::from([
            ("code".to_string(), code.to_string()),
            ("username".to_string(), "tony".to_string()),
            ("ttl_minutes".to_string(), "10".to_string()),
        ]),
        not_after: None,
    }
}

struct Pipeline {
    sender: Sender,
    dead: SqsDeadLetters,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    store: Arc<DynamoStore>,
}

async fn pipeline(from: &str) -> Pipeline {
    let (dynamo, table) = aws::dynamo_table().await;
    let store = Arc::new(DynamoStore::new(dynamo, table));
    let (sqs, queue_url) = aws::sqs_queue().await;
    let (_, dlq_url) = aws::sqs_queue().await;
    let mailer = SesMailer::new(ses().await, from, None);
    let sender =
        Sender { log: store.clone(), mailer: Arc::new(mailer), clock: Arc::new(SystemClock), takes_over_before: None };
    let dead = SqsDeadLetters::new(sqs.clone(), dlq_url.clone());
    Pipeline { sender, dead, sqs, queue_url, dlq_url, store }
}

impl Pipeline {
    async fn receive(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages.unwrap_or_default()
    }

    fn as_batch(messages: &[aws_sdk_sqs::types::Message]) -> Vec<QueueMessage> {
        messages
            .iter()
            .map(|m| QueueMessage { id: m.message_id.clone().unwrap(), body: m.body.clone().unwrap() })
            .collect()
    }
}

#[tokio::test]
async fn a_job_goes_from_sqs_to_ses_once_even_when_redelivered() {
    let p = pipeline(FROM).await;
    let to = address();
    let j = job(&to, "482913");
    SqsEmailQueue::new(p.sqs.clone(), p.queue_url.clone()).enqueue(&j).await.unwrap();
    let received = p.receive(&p.queue_url).await;
    assert_eq!(received.len(), 1);
    let batch = Pipeline::as_batch(&received);
    assert!(handle_batch(&p.sender, &p.dead, &batch).await.is_empty());
    let sent = sent_to(&to).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].from, FROM);
    assert_eq!(sent[0].subject, "Your Stark verification code");
    let html = sent[0].html.as_str();
    assert!(html.contains("482913"), "{html}");
    // SQS delivers at least once: the same message again sends nothing.
    assert!(handle_batch(&p.sender, &p.dead, &batch).await.is_empty());
    assert_eq!(sent_to(&to).await.len(), 1);
}

#[tokio::test]
async fn one_bad_message_does_not_fail_its_batch() {
    let p = pipeline(FROM).await;
    let (to_ok, to_busy, to_broken) = (address(), address(), address());
    let ok = job(&to_ok, "111111");
    let busy = job(&to_busy, "222222");
    let mut broken = job(&to_broken, "333333");
    broken.vars.remove("code");
    // Another sender holds `busy` right now.
    let now = chrono::Utc::now();
    let claim = p
        .store
        .claim_send(&busy.job_id, now, now + chrono::Duration::minutes(2), now + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(claim, SendClaim::Claimed);
    let batch = vec![
        QueueMessage { id: "m-ok".into(), body: serde_json::to_string(&ok).unwrap() },
        QueueMessage { id: "m-busy".into(), body: serde_json::to_string(&busy).unwrap() },
        QueueMessage { id: "m-poison".into(), body: "{ this is not json".into() },
        QueueMessage {
            id: "m-unknown".into(),
            body: r#"{"job_id":"x","template":"birthday_card","to":"a@b.example","locale":"en","vars":{}}"#.into(),
        },
        QueueMessage { id: "m-broken".into(), body: serde_json::to_string(&broken).unwrap() },
    ];
    let failed = handle_batch(&p.sender, &p.dead, &batch).await;
    assert_eq!(failed, ["m-busy"], "only the message worth retrying is reported failed");
    assert_eq!(sent_to(&to_ok).await.len(), 1, "the rest of the batch went on");
    assert!(sent_to(&to_busy).await.is_empty());
    assert!(sent_to(&to_broken).await.is_empty());
    // The three that can never be sent are parked in the dead-letter queue with their reason.
    let parked = p.receive(&p.dlq_url).await;
    let mut reasons: Vec<String> =
        parked.iter().map(|m| m.message_attributes.as_ref().unwrap()["reason"].string_value.clone().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "email variable code is missing"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "unknown template \"birthday_card\""), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("not an email job")), "{reasons:?}");
    assert!(parked.iter().any(|m| m.body.as_deref() == Some("{ this is not json")), "the body is kept as it came");
}

#[tokio::test]
async fn a_sender_ses_refuses_is_retried_until_the_configuration_is_fixed() {
    // moto refuses a From identity it does not know, as SES refuses an unverified one: our
    // misconfiguration, not the recipient's address, so the job must not be written off.
    let from = format!("{}@unverified.example", aws::unique("from"));
    let p = pipeline(&from).await;
    let to = address();
    let j = job(&to, "444444");
    let batch = vec![QueueMessage { id: "m1".into(), body: serde_json::to_string(&j).unwrap() }];
    assert_eq!(handle_batch(&p.sender, &p.dead, &batch).await, ["m1"], "retried by the queue");
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::days(1);
    assert_eq!(
        p.store.claim_send(&j.job_id, now, now, later).await.unwrap(),
        SendClaim::Claimed,
        "not on record as sent or refused"
    );
    p.store.release_send(&j.job_id).await.unwrap();
    // The identity is verified: the redelivery goes out.
    ses().await.create_email_identity().email_identity(&from).send().await.unwrap();
    assert!(handle_batch(&p.sender, &p.dead, &batch).await.is_empty());
    assert_eq!(sent_to(&to).await.len(), 1);
}

#[tokio::test]
async fn the_outbox_sweep_sends_once_what_an_sqs_outage_held_back() {
    let p = pipeline(FROM).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = stark::security::secrets::Secrets::load_or_create(dir.path()).unwrap();
    let stores = Stores::from_adapter(p.store.clone());
    // SQS is unreachable: nothing listens on port 9.
    let down = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws::sdk_config().await).endpoint_url("http://127.0.0.1:9").build(),
    );
    let context = |queue: SqsEmailQueue| AppContext {
        stores: stores.clone(),
        email_queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        passwords: stark::security::password_hash::PasswordHasherService::new(
            stark::security::password_hash::HashCost::TEST,
        )
        .unwrap(),
        keys: stark::security::secrets::Secrets::load_or_create(dir.path()).unwrap().keys,
        otp_pepper: Some(stark::security::secrets::OtpPepper::new(vec![7; 32]).unwrap()),
        enumeration_floor: std::time::Duration::ZERO,
        translations: Arc::new(stark::i18n::TranslationService::source_only()),
    };
    let _ = secrets;
    let outage = context(SqsEmailQueue::new(down, p.queue_url.clone()));
    let to = address();
    let input = stark::app::auth::SignupInput {
        email: Email::parse(&to).unwrap(),
        username: stark::domain::Username::parse(&format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]))
            .unwrap(),
        password: stark::domain::Password::parse("I-am-Iron-Man").unwrap(),
        locale: "en".into(),
    };
    stark::app::auth::signup(&outage, input).await.expect("the signup succeeds with SQS down");
    let far = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(stores.outbox.pending_outbox(far, None, 10).await.unwrap().len(), 1, "the email waits in the outbox");
    // A sweep during the outage sends nothing and loses nothing.
    assert_eq!(stark::app::outbox::sweep(&outage, chrono::Duration::zero()).await.unwrap(), 0);
    assert_eq!(stores.outbox.pending_outbox(far, None, 10).await.unwrap().len(), 1);

    // SQS is back.
    let back = context(SqsEmailQueue::new(p.sqs.clone(), p.queue_url.clone()));
    assert_eq!(stark::app::outbox::sweep(&back, chrono::Duration::zero()).await.unwrap(), 1);
    assert_eq!(stark::app::outbox::sweep(&back, chrono::Duration::zero()).await.unwrap(), 0, "sent once");
    let received = p.receive(&p.queue_url).await;
    assert_eq!(received.len(), 1);
    assert!(handle_batch(&p.sender, &p.dead, &Pipeline::as_batch(&received)).await.is_empty());
    let sent = sent_to(&to).await;
    assert_eq!(sent.len(), 1, "exactly one email");
    assert!(sent[0].html.contains("verification code"));
}

/// The mailer contract, on both adapters: a sent email comes back with its id, its subject,
/// its recipient and its HTML.
#[tokio::test]
async fn mailers_deliver_subject_recipient_and_body() {
    let to = address();
    let email = OutgoingEmail {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::TrialStarted,
        to: Email::parse(&to).unwrap(),
        subject: "Réacteur Arc — essai".into(),
        text: "plain words".into(),
        html: "<p>rich words</p>".into(),
    };
    let ses = SesMailer::new(ses().await, FROM, None);
    let id = ses.send(&email).await.unwrap();
    assert!(!id.is_empty());
    let sent = sent_to(&to).await;
    assert_eq!(
        (sent[0].subject.as_str(), sent[0].html.as_str(), sent[0].text.as_str()),
        ("Réacteur Arc — essai", "<p>rich words</p>", "plain words")
    );

    let dir = tempfile::tempdir().unwrap();
    let eml = EmlOutbox::new(dir.path(), format!("Stark <{FROM}>"), Arc::new(SystemClock)).unwrap();
    let name = eml.send(&email).await.unwrap();
    assert!(name.starts_with(&email.job_id) && name.ends_with("trial_started.eml"), "{name}");
    let text = std::fs::read_to_string(dir.path().join(&name)).unwrap();
    assert!(text.contains(&format!("\r\nTo: {to}\r\n")));
    assert!(text.contains("\r\nSubject: =?utf-8?b?"), "a non-ASCII subject is encoded");
    let parsed = parsed_mail::parse(text.as_bytes());
    assert_eq!(
        (parsed.subject.as_str(), parsed.html.as_str(), parsed.text.as_str()),
        ("Réacteur Arc — essai", "<p>rich words</p>", "plain words")
    );
}

/// What SES receives is the same lettre-built message as the `.eml`: hostile text in a
/// subject never becomes a header of its own, and SES sends to the one recipient we meant.
#[tokio::test]
async fn ses_gets_exactly_the_headers_we_meant() {
    let to = address();
    let email = OutgoingEmail {
        job_id: uuid::Uuid::now_v7().to_string(),
        template: EmailTemplate::TrialStarted,
        to: Email::parse(&to).unwrap(),
        subject: "Your Evil\r\nBcc: injected@attacker.test\r\nX-Injected: yes".into(),
        text: "plain words".into(),
        html: "<p>rich words</p>".into(),
    };
    SesMailer::new(ses().await, FROM, None).send(&email).await.unwrap();
    let sent = sent_to(&to).await;
    assert_eq!(sent.len(), 1);
    let mut names = sent[0].header_names.clone();
    names.sort();
    assert_eq!(names, ["Content-Type", "Date", "From", "MIME-Version", "Message-ID", "Subject", "To"]);
    assert_eq!(sent[0].recipients, std::slice::from_ref(&to));
    assert_eq!(sent[0].subject, "Your Evil  Bcc: injected@attacker.test  X-Injected: yes");
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", aws::moto_ses_url())).await.unwrap().json().await.unwrap();
    let injected = parsed_mail::ses_sent_to(&data, "injected@attacker.test");
    assert!(injected.is_empty(), "nothing went to the injected Bcc");
}
