//! Lambda `subscriptions`: see README.md, "Functions".

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    stark::lambda::serve_http(stark::http::router::lambdas::SUBSCRIPTIONS).await
}
