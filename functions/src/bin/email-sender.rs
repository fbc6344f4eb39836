//! Lambda `email-sender`: see README.md, "Functions".

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stark::lambda::serve_email_sender().await
}
