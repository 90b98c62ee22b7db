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
    MAX_BODY_BYTES, SCHEDULER_ID_HEADER,
};

/// `POST /provide`.
pub(crate) async fn provide(
    _: Authorized,
    node: web::Data<NodeRecipients>,
    metrics: web::Data<Option<ServerMetrics>>,
    request: HttpRequest,
    body: web::Json<ProvideRequest>,
) -> Result<HttpResponse, ApiError> {
    let content = body
        .into_inner()
        .content
        .decode()
        .map_err(|e| ApiError::BadRequest(format!("Content is not valid standard base64: {e}")))?;
    let scheduler = scheduler_id(&request);
    let cid = ContentId::for_content(&content);
    let span = tracing::info_span!("provide", %cid, scheduler = scheduler.as_deref());
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
    drain_bounded(body).await?;
    let cid: ContentId = cid.parse().map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let scheduler = scheduler_id(&request);
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

/// The `x-scheduler-id` header, when present and readable.
pub(crate) fn scheduler_id(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get(SCHEDULER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads and discards a body, failing once it exceeds the limit.
async fn drain_bounded(mut body: web::Payload) -> Result<(), ApiError> {
    let mut total = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge,
            other => ApiError::BadRequest(format!("could not read the request body: {other}")),
        })?;
        total += chunk.len();
        if total > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    Ok(())
}
