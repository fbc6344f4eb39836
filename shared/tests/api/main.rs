//! API tests through the real local server, one test binary for all of them, on the
//! embedded SQLite store. `tests/api_dynamodb.rs` runs the same suite on DynamoDB.

#[path = "../support/aws.rs"]
mod aws;
#[path = "../support/fake_translate.rs"]
mod fake_translate;
mod helpers;
#[path = "../support/iam.rs"]
mod iam;
#[path = "../support/parsed_mail.rs"]
mod parsed_mail;
#[path = "../support/private_moto.rs"]
mod private_moto;

mod billing;
mod catalog;
mod conventions;
mod language;
mod lifecycle;
mod limits;
mod login;
mod otp;
mod outage;
mod signup;
mod tokens;

const BACKEND: helpers::Backend = helpers::Backend::Sqlite;
