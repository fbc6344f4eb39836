//! The whole API suite again, with the DynamoDB store on moto_server behind the real local
//! server: the same rules must hold on the production adapter, not only on SQLite.

#[path = "support/aws.rs"]
mod aws;
#[path = "support/fake_translate.rs"]
mod fake_translate;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "support/parsed_mail.rs"]
mod parsed_mail;
#[path = "support/iam.rs"]
mod iam;
#[path = "support/private_moto.rs"]
mod private_moto;

#[path = "api/billing.rs"]
mod billing;
#[path = "api/catalog.rs"]
mod catalog;
#[path = "api/conventions.rs"]
mod conventions;
#[path = "api/lifecycle.rs"]
mod lifecycle;
#[path = "api/login.rs"]
mod login;
#[path = "api/otp.rs"]
mod otp;
#[path = "api/outage.rs"]
mod outage;
#[path = "api/signup.rs"]
mod signup;
#[path = "api/tokens.rs"]
mod tokens;

const BACKEND: helpers::Backend = helpers::Backend::Dynamodb;
