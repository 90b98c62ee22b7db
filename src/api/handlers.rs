//! Request handlers: decode, send one message to the node, encode the answer. No domain logic.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use parsec_actors::{
    CheckReadiness, ContentId, NodeRecipients, Operation, OperationReport, ProvideContent, RetrieveContent,
};

use crate::telemetry::{metrics::ServerMetrics, traces::continue_trace};

use super::{
    auth::Authorized,
    dto::{OperationResponse, ProvideRequest, ReadinessResponse},
    error::ApiError,
    BODY_READ_TIMEOUT, MAX_BODY_BYTES, MAX_SCHEDULER_ID_BYTES, SCHEDULER_ID_HEADER,
};

/// `POST /provide`.
pub(crate) async fn provide(
    _: Authorized,
    node: web::Data<NodeRecipients>,
    metrics: web::Data<Option<ServerMetrics>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Only JSON: a web page can send a plain-text or form POST here without the browser asking.
    require_json(&request, true)?;
    let body = read_bounded(body).await?;
    let body: ProvideRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body: {e}; expected {{\"Content\": \"<base64>\"}}"
        ))
    })?;
    let content = body
        .content
        .decode()
        .map_err(|e| ApiError::BadRequest(format!("Content is not valid standard base64: {e}")))?;
    let scheduler = scheduler_id(&request)?;
    let cid = ContentId::for_content(&content);
    let span = tracing::info_span!(
        "provide",
        %cid,
        scheduler = scheduler.as_deref(),
        record_peers = tracing::field::Empty
    );
    continue_trace(&span, request.headers());
    let report = node
        .provide
        .send(ProvideContent {
            content,
            scheduler: scheduler.clone(),
            span,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("node stopped: {e}")))??;
    record(&metrics, Operation::Provide, &report, scheduler.as_deref());
    Ok(HttpResponse::Ok().json(OperationResponse::from(report)))
}

/// `POST /retrieve/{cid}`. The body is a relic (`{}`): it is read, bounded, and ignored.
pub(crate) async fn retrieve(
    _: Authorized,
    node: web::Data<NodeRecipients>,
    metrics: web::Data<Option<ServerMetrics>>,
    request: HttpRequest,
    cid: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    require_json(&request, false)?;
    read_bounded(body).await?;
    let cid: ContentId = cid.parse().map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let scheduler = scheduler_id(&request)?;
    let span = tracing::info_span!("retrieve", %cid, scheduler = scheduler.as_deref());
    continue_trace(&span, request.headers());
    let report = node
        .retrieve
        .send(RetrieveContent {
            cid,
            scheduler: scheduler.clone(),
            span,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("node stopped: {e}")))??;
    record(&metrics, Operation::Retrieval, &report, scheduler.as_deref());
    Ok(HttpResponse::Ok().json(OperationResponse::from(report)))
}

fn record(
    metrics: &Option<ServerMetrics>,
    operation: Operation,
    report: &OperationReport,
    scheduler: Option<&str>,
) {
    if let Some(metrics) = metrics {
        metrics.record_operation(operation, report, scheduler);
    }
}

/// `GET /readiness`: 200 when the routing table is non-empty, 503 otherwise.
pub(crate) async fn readiness(node: web::Data<NodeRecipients>) -> HttpResponse {
    match node.readiness.send(CheckReadiness).await {
        Ok(Ok(readiness)) => {
            let body = ReadinessResponse {
                ready: readiness.ready,
                routing_table_size: readiness.routing_table_size,
                peer_id: readiness.peer_id,
            };
            if readiness.ready {
                HttpResponse::Ok().json(body)
            } else {
                HttpResponse::ServiceUnavailable().json(body)
            }
        }
        Ok(Err(e)) => {
            HttpResponse::ServiceUnavailable().json(super::dto::ErrorResponse { error: e.to_string() })
        }
        Err(e) => HttpResponse::ServiceUnavailable().json(super::dto::ErrorResponse {
            error: format!("node stopped: {e}"),
        }),
    }
}

/// Any path the API does not have.
pub(crate) async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: request.method().to_string(),
        path: request.path().to_owned(),
    })
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.path().to_owned(),
    })
}

/// The `x-scheduler-id` header, when present and readable; 400 when longer than
/// [`MAX_SCHEDULER_ID_BYTES`].
pub(crate) fn scheduler_id(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(SCHEDULER_ID_HEADER) else {
        return Ok(None);
    };
    if value.len() > MAX_SCHEDULER_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{SCHEDULER_ID_HEADER} is {} bytes; at most {MAX_SCHEDULER_ID_BYTES} are accepted (a scheduler's id is a \
             number or a UUID)",
            value.len()
        )));
    }
    Ok(value.to_str().ok().map(str::to_owned))
}

/// Answers 415 unless the request says its body is JSON (`application/json` or `…+json`). With
/// `required` false, a request that names no content type passes (the retrieval body is ignored).
pub(super) fn require_json(request: &HttpRequest, required: bool) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return if required {
            Err(ApiError::UnsupportedMediaType("none".to_owned()))
        } else {
            Ok(())
        };
    };
    let text = value.to_str().unwrap_or_default();
    let is_json = text
        .parse::<actix_web::mime::Mime>()
        .is_ok_and(|m| m.subtype() == actix_web::mime::JSON || m.suffix() == Some(actix_web::mime::JSON));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.chars().take(100).collect()))
    }
}

/// Reads a body up to the size limit, within [`BODY_READ_TIMEOUT`]: a client that sends headers
/// and then trickles its body does not hold a connection (and a worker's attention) for ever.
pub(super) async fn read_bounded(mut body: web::Payload) -> Result<bytes::Bytes, ApiError> {
    let read = async {
        let mut buffer = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| match e {
                actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge,
                other => ApiError::BadRequest(format!("could not read the request body: {other}")),
            })?;
            if buffer.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}
