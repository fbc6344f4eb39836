// Shared by the test binaries (included with `#[path]`): AWS SDK clients pointed at the
// moto_server that ./scripts/test started. A missing server is a loud failure, never a skip.

#![allow(dead_code)]

use aws_sdk_dynamodb::config::{Credentials, Region};

pub fn moto_url() -> String {
    std::env::var("STARK_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("STARK_TEST_MOTO_URL is not set: run the tests through ./scripts/test, which starts moto_server")
    })
}

/// The moto_server that serves SES v2 alone (see scripts/services.sh).
pub fn moto_ses_url() -> String {
    std::env::var("STARK_TEST_MOTO_SES_URL").unwrap_or_else(|_| {
        panic!("STARK_TEST_MOTO_SES_URL is not set: run the tests through ./scripts/test, which starts moto_server")
    })
}

/// An SES v2 client on the SES moto_server.
pub async fn ses_client() -> aws_sdk_sesv2::Client {
    let conf = aws_sdk_sesv2::config::Builder::from(&sdk_config().await).endpoint_url(moto_ses_url()).build();
    aws_sdk_sesv2::Client::from_conf(conf)
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "stark-tests"))
        .load()
        .await
}

/// A name no other test uses: moto's reset is global, so tests isolate by name instead.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn dynamo_table() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique("stark-test");
    stark::adapters::dynamodb::DynamoStore::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("cannot create a table on moto at {}: {e:#}", moto_url()));
    (client, table)
}

pub async fn sqs_queue() -> (aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let out = client
        .create_queue()
        .queue_name(unique("stark-test"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create a queue on moto at {}: {e:#}", moto_url()));
    (client, out.queue_url.expect("queue url"))
}
