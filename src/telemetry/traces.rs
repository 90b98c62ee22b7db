//! Traces: spans go to an OTLP collector (Jaeger, an OpenTelemetry Collector) over HTTP/protobuf
//! when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set; otherwise no
//! exporter exists and tracing costs only the log. The W3C `traceparent` header carries a
//! round's context from the scheduler to the servers.

use std::collections::HashMap;

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt as _, TracerProvider as _},
    Context,
};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The spans exported: parsec's own (rounds, requests, DHT operations), with the DHT query
/// steps (debug events) inside them.
pub(super) const EXPORTED_SPANS: &str = "parsec=info,parsec_actors=info,parsec_actors::dht=debug";

/// A tracer provider exporting to the configured OTLP endpoint, or `None` when none is set.
/// Export errors are the SDK's to log; they never reach the caller.
pub(super) fn provider(default_service: &str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| default_service.to_owned());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build(),
    ))
}

/// The tracer of `provider`, for the tracing layer.
pub(super) fn tracer(provider: &SdkTracerProvider) -> opentelemetry_sdk::trace::Tracer {
    provider.tracer("parsec")
}

/// The headers that carry `span`'s context to another process (`traceparent`), and the span's
/// trace id (32 hex digits) when it is being traced.
pub fn outgoing_headers(span: &tracing::Span) -> (Vec<(String, String)>, Option<String>) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return (Vec::new(), None);
    }
    let mut headers = HashMap::new();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderMap(&mut headers))
    });
    (
        headers.into_iter().collect(),
        Some(span_context.trace_id().to_string()),
    )
}

/// Makes `span` continue the trace whose context `headers` carry, if they carry one.
pub fn continue_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    let parent: Context =
        global::get_text_map_propagator(|propagator| propagator.extract(&RequestHeaders(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

struct HeaderMap<'a>(&'a mut HashMap<String, String>);

impl Injector for HeaderMap<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct RequestHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
