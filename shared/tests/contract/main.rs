//! One contract suite per port, run against every adapter of that port: the embedded ones
//! (SQLite, in-process queue) and the AWS ones (DynamoDB and SQS on moto_server).

#[path = "../support/aws.rs"]
mod aws;

mod commerce;
mod email_queue;
mod stores;
