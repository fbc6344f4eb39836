//! Lambda `lifecycle`: see README.md, "Functions".

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    stark::lambda::serve_lifecycle().await
}
