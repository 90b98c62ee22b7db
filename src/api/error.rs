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
        "no route for {method} {path}; the API has POST /provide, POST /retrieve/{{cid}}, GET /readiness and /pubsub/…"
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
    /// The node failed the request: the status says whose failure it was.
    #[error(transparent)]
    Node(NodeError),
    /// The server requires a bearer token and the request has none or another one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The body is not declared as JSON.
    #[error("content type {0} is not accepted: send Content-Type: application/json")]
    UnsupportedMediaType(String),
    /// A value in the request is larger than the API accepts (a message's size).
    #[error("{0}")]
    TooLarge(String),
    /// The server does not offer this (a pubsub request to a server without gossipsub).
    #[error("{0}")]
    NotImplemented(String),
    /// The client did not send its body in time.
    #[error("the request body did not arrive within {BODY_READ_TIMEOUT:?}")]
    RequestTimeout,
    /// The client closed its connection while the request waited: nobody reads the answer, and
    /// the connection is closed.
    #[error("the client closed the connection")]
    ClientGone,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Node(error) => node_status(error),
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            // nginx's "client closed request": logged, never read.
            ApiError::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::ClientGone => {
                response.force_close();
            }
            _ => {}
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
        ApiError::Node(error)
    }
}

/// The status of a request the node could not serve. 503 means "not now, try again" (busy,
/// shutting down, not joined); 500 is this server's own fault; 502 and 504 are failures of a node
/// further on (a remote node behind the client). None of them is a measurement.
fn node_status(error: &NodeError) -> StatusCode {
    match error {
        NodeError::Dht(
            DhtError::Busy { .. }
            | DhtError::Stopped
            | DhtError::Cancelled
            | DhtError::NoKnownPeers
            | DhtError::Pubsub(_),
        ) => StatusCode::SERVICE_UNAVAILABLE,
        NodeError::Dht(DhtError::Store { .. } | DhtError::Setup(_)) | NodeError::InvalidRequest(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        // A second round while one runs, or a round on a `default` peer: the server's state.
        NodeError::Dht(DhtError::DuplicateMessage | DhtError::Reprovide(_)) => StatusCode::CONFLICT,
        NodeError::Dht(DhtError::MessageTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        NodeError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        NodeError::Unavailable(_) | NodeError::Rejected { .. } | NodeError::InvalidResponse(_) => {
            StatusCode::BAD_GATEWAY
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn node_failures_name_whose_failure_it_was() {
        let status = |error: NodeError| ApiError::from(error).status_code().as_u16();
        assert_eq!(status(DhtError::Busy { limit: 1 }.into()), 503);
        assert_eq!(status(DhtError::Cancelled.into()), 503);
        assert_eq!(status(DhtError::NoKnownPeers.into()), 503);
        assert_eq!(status(DhtError::DuplicateMessage.into()), 409);
        let refused = DhtError::Store {
            cid: "Qm".into(),
            reason: "full".into(),
        };
        assert_eq!(status(refused.into()), 500);
        assert_eq!(status(NodeError::Timeout(Duration::from_secs(1))), 504);
        assert_eq!(status(NodeError::Unavailable("refused".into())), 502);
        assert_eq!(status(NodeError::InvalidResponse("not JSON".into())), 502);
    }
}
