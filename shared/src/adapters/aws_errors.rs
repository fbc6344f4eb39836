//! Telling an AWS dependency's failure from our own bug. A request that could not reach the
//! service (connect error, I/O, timeout), a response that did not parse, throttling, and a
//! 5xx (`InternalServerError`, `ServiceUnavailable`) are the dependency's: the caller answers
//! 503 and the request may succeed later. Anything else (a validation error, a missing table,
//! a request we built wrong) is ours and stays a plain error, a 500. The SDK has already
//! retried the retryable ones by the time we see them.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::{InfraError, Unavailable};

/// Error codes that mean "busy or down, try later", whatever the service.
const UNAVAILABLE_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "LimitExceededException",
];

/// Whether an SDK error is the service's (or the network's) failure rather than ours.
pub fn is_dependency_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => e.code().is_some_and(|c| UNAVAILABLE_CODES.contains(&c)),
        _ => false,
    }
}

/// An SDK error as an `InfraError`, marked [`Unavailable`] when it is the dependency's.
pub fn aws_error<E>(
    dependency: &'static str,
    e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> InfraError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let server_side = e.raw_response().is_some_and(|r| r.status().is_server_error());
    if server_side || is_dependency_failure(&e) {
        Unavailable::error(dependency, e)
    } else {
        e.into()
    }
}

/// The DynamoDB flavour, for `map_err`.
pub fn dynamo<E>(e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> InfraError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_error("DynamoDB", e)
}
