//! One contract suite per port, run against every adapter of that port: the embedded ones
//! (SQLite, in-process queue) and the AWS ones (DynamoDB and SQS on moto_server).

#[path = "../support/aws.rs"]
mod aws;

/// One test per listed function and store adapter: `sqlite::<name>` and `dynamodb::<name>`,
/// each on a fresh store of its own.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { let f = crate::stores::sqlite().await; super::$name(&f.stores).await } )*
        }
        mod dynamodb {
            $( #[tokio::test] async fn $name() { let f = crate::stores::dynamodb().await; super::$name(&f.stores).await } )*
        }
    };
}

mod commerce;
mod email_queue;
mod lifecycle;
mod stores;
