//! Lambda `session`: see README.md, "Functions".
use stark::http::Endpoint;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    stark::lambda::serve_http(&[Endpoint::Refresh, Endpoint::Logout]).await
}
