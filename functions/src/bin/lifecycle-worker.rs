//! Lambda `lifecycle-worker`: see README.md, "Functions".

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stark::lambda::serve_lifecycle_worker().await
}
