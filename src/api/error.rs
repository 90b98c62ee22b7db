//! `ApiError`: every failure of the HTTP API as a status code and a JSON body; never a panic.

use actix_web::{error::JsonPayloadError, http::StatusCode, HttpResponse, ResponseError};
use parsec_actors::{DhtError, NodeError};

use super::{dto::ErrorResponse, BODY_READ_TIMEOUT, MAX_BODY_BYTES};

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (JSON, base64, CID).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the API accepts.
    #[error("request body exceeds the limit of {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// No such route.
    #[error(
        "no route for {method} {path}; the API has POST /provide, POST /retrieve/{{cid}} and GET /readiness"
    )]
    NotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The route exists with another method.
    #[error("{path} does not accept {method}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The node cannot take the request now (busy, stopping).
    #[error("{0}")]
    Unavailable(String),
    /// The server requires a bearer token and the request has none or another one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not declared as JSON.
    #[error("content type {0} is not accepted: send Content-Type: application/json")]
    UnsupportedMediaType(String),
    /// The client did not send its body in time.
    #[error("the request body did not arrive within {BODY_READ_TIMEOUT:?}")]
    RequestTimeout,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorResponse {
            error: self.to_string(),
        })
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(error: JsonPayloadError) -> Self {
        match error {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge
            }
            JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge,
            JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!(
                "invalid JSON body: {e}; expected {{\"Content\": \"<base64>\"}}"
            )),
            other => ApiError::BadRequest(format!("invalid request body: {other}")),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::Dht(DhtError::Store { .. }) => ApiError::Unavailable(error.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}
