//! Lambda `login`: see README.md, "Functions".
use stark::http::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    stark::lambda::serve_http(&[Endpoint::Login]).await
}
