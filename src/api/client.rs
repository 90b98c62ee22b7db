//! `RemoteNode`: a parsec server reached over its HTTP API (ours or another implementation's),
//! as an actor that handles the node messages, so a fleet mixes it with in-process nodes.
//!
//! Responses are validated: a non-2xx status or a body that is not a parsec response is a
//! [`NodeError`], never a measurement.

use std::time::Duration;

use actix::prelude::*;
use awc::error::SendRequestError;
use parsec_actors::{
    node::pubsub::{
        AwaitMessage, DeliveryReceipt, ProbeClock, PublishMessage, PublishReceipt, SubscribeTopic,
        UnsubscribeTopic, ViewTopic,
    },
    node::reprovide::{ReprovideContent, ReprovideReport},
    pubsub::{
        clock::{self, ClockOffset, ClockSample},
        TopicPeers,
    },
    CheckReadiness, NodeError, Operation, OperationReport, ProvideContent, Readiness, RetrieveContent,
};

use crate::telemetry::traces::outgoing_headers;

use super::{
    auth::ApiToken,
    dto::{Content, OperationResponse, ProvideRequest},
    pubsub::{ClockResponse, DeliveryResponse, PublishRequest, PublishResponse, TopicResponse},
    reprovide::{ReprovideRequest, ReprovideResponse},
    MAX_BODY_BYTES, SCHEDULER_ID_HEADER,
};

/// How long each kind of request may take before the node counts as unresponsive.
#[derive(Clone, Copy, Debug)]
pub struct ClientTimeouts {
    /// Provides: above the server's own 3-minute deadline, so its answer arrives.
    pub provide: Duration,
    /// Retrievals: above the server's retrieval deadline.
    pub retrieve: Duration,
    /// Readiness checks.
    pub readiness: Duration,
    /// Reprovide rounds (the request lasts the round).
    pub reprovide: Duration,
}

/// How long a reprovide round may take by default: a classic round of 10⁵ CIDs takes about 20
/// minutes on a 2-core machine.
pub const DEFAULT_REPROVIDE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            provide: parsec_actors::config::DEFAULT_PROVIDE_TIMEOUT + Duration::from_secs(10),
            retrieve: parsec_actors::config::DEFAULT_RETRIEVE_TIMEOUT + Duration::from_secs(10),
            readiness: Duration::from_secs(5),
            reprovide: DEFAULT_REPROVIDE_TIMEOUT,
        }
    }
}

/// A remote parsec server; see the module docs.
pub struct RemoteNode {
    base_url: String,
    client: awc::Client,
    timeouts: ClientTimeouts,
    token: Option<ApiToken>,
}

impl RemoteNode {
    /// A client for the server at `base_url` (`http://host:port`). Needs an actix `System`.
    pub fn new(base_url: impl Into<String>, timeouts: ClientTimeouts) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            client: awc::Client::default(),
            timeouts,
            token: None,
        }
    }

    /// Sends `token` as `Authorization: Bearer` with provide and retrieve requests.
    pub fn with_token(mut self, token: Option<ApiToken>) -> Self {
        self.token = token;
        self
    }
}

impl std::fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNode")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Actor for RemoteNode {
    type Context = Context<Self>;
}

fn send_error(error: SendRequestError, timeout: Duration) -> NodeError {
    match error {
        SendRequestError::Timeout => NodeError::Timeout(timeout),
        other => NodeError::Unavailable(other.to_string()),
    }
}

/// The body of a successful answer (bounded), or the refusal with its status and the start of
/// its body.
async fn success_body(
    response: &mut awc::ClientResponse<
        impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Result<bytes::Bytes, NodeError> {
    let body = response
        .body()
        .limit(MAX_BODY_BYTES)
        .await
        .map_err(|e| NodeError::InvalidResponse(format!("reading body: {e}")))?;
    if !response.status().is_success() {
        return Err(NodeError::Rejected {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        });
    }
    Ok(body)
}

/// Reads a parsec operation response, or says why it is not one.
async fn operation_report(
    response: &mut awc::ClientResponse<
        impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
    operation: Operation,
) -> Result<OperationReport, NodeError> {
    let body = success_body(response).await?;
    let parsed: OperationResponse =
        serde_json::from_slice(&body).map_err(|e| NodeError::InvalidResponse(e.to_string()))?;
    parsed
        .into_report(operation.step())
        .map_err(NodeError::InvalidResponse)
}

impl RemoteNode {
    /// POSTs `body` to `path` and reads the parsec report of `operation`.
    fn operation<B: serde::Serialize + 'static>(
        &self,
        path: String,
        body: B,
        scheduler: Option<&str>,
        span: &tracing::Span,
        operation: Operation,
        timeout: Duration,
    ) -> ResponseFuture<Result<OperationReport, NodeError>> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .timeout(timeout);
        if let Some(scheduler) = scheduler {
            request = request.insert_header((SCHEDULER_ID_HEADER, scheduler));
        }
        if let Some(token) = &self.token {
            request = request.insert_header((awc::http::header::AUTHORIZATION, token.header_value()));
        }
        let (request, trace_id) = with_trace(request, span);
        Box::pin(async move {
            let mut response = request
                .send_json(&body)
                .await
                .map_err(|e| send_error(e, timeout))?;
            let mut report = operation_report(&mut response, operation).await?;
            report.trace_id = trace_id;
            Ok(report)
        })
    }
}

impl Handler<ProvideContent> for RemoteNode {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: ProvideContent, _: &mut Context<Self>) -> Self::Result {
        let body = ProvideRequest {
            content: Content::encode(&msg.content),
        };
        let body = match serde_json::to_value(&body) {
            Ok(body) => body,
            Err(e) => {
                return Box::pin(futures::future::ready(Err(NodeError::InvalidRequest(
                    e.to_string(),
                ))))
            }
        };
        let timeout = self.timeouts.provide;
        self.operation(
            "/provide".to_owned(),
            body,
            msg.scheduler.as_deref(),
            &msg.span,
            Operation::Provide,
            timeout,
        )
    }
}

impl Handler<RetrieveContent> for RemoteNode {
    type Result = ResponseFuture<Result<OperationReport, NodeError>>;

    fn handle(&mut self, msg: RetrieveContent, _: &mut Context<Self>) -> Self::Result {
        let path = format!("/retrieve/{}", msg.cid);
        let timeout = self.timeouts.retrieve;
        // parsec's scheduler sends an empty object; servers ignore it.
        self.operation(
            path,
            serde_json::json!({}),
            msg.scheduler.as_deref(),
            &msg.span,
            Operation::Retrieval,
            timeout,
        )
    }
}

/// Whether the server at `base_url` says it is ready, asked as the scheduler asks, on an actix
/// `System` of its own (`parsec health`, a container health check).
pub fn check_readiness(base_url: String, timeout: Duration) -> Result<Readiness, String> {
    let timeouts = ClientTimeouts {
        readiness: timeout,
        ..ClientTimeouts::default()
    };
    System::new().block_on(async move {
        let node = RemoteNode::new(base_url, timeouts).start();
        match node.send(CheckReadiness).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Asks a process's telemetry port for `GET {base_url}/healthz` (liveness) on a System of its
/// own: `Ok` with the body when it answers 200, else why not.
pub fn check_liveness(base_url: String, timeout: Duration) -> Result<String, String> {
    System::new().block_on(async move {
        let request = awc::Client::default()
            .get(format!("{base_url}/healthz"))
            .timeout(timeout);
        let mut response = request
            .send()
            .await
            .map_err(|e| send_error(e, timeout).to_string())?;
        let body = response.body().limit(4096).await.map_err(|e| e.to_string())?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if response.status().is_success() {
            Ok(body)
        } else {
            Err(format!("answered {}: {body}", response.status()))
        }
    })
}

impl Handler<CheckReadiness> for RemoteNode {
    type Result = ResponseFuture<Result<Readiness, NodeError>>;

    fn handle(&mut self, _: CheckReadiness, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.timeouts.readiness;
        let request = self
            .client
            .get(format!("{}/readiness", self.base_url))
            .timeout(timeout);
        Box::pin(async move {
            let mut response = request.send().await.map_err(|e| send_error(e, timeout))?;
            // Only the status is the contract; our servers add the routing-table size and peer id.
            let body = response.json::<super::dto::ReadinessResponse>().await.ok();
            Ok(Readiness {
                ready: response.status().is_success(),
                routing_table_size: body.as_ref().map_or(0, |b| b.routing_table_size),
                peer_id: body.and_then(|b| b.peer_id),
            })
        })
    }
}

// Pubsub: the `/pubsub/...` extension, as typed node messages (see `parsec_actors::node::pubsub`).

/// Reads a JSON answer of `/pubsub/...`, or the refusal with its status and message.
async fn pubsub_answer<T: serde::de::DeserializeOwned>(
    response: &mut awc::ClientResponse<
        impl futures::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Result<Option<T>, NodeError> {
    let body = success_body(response).await?;
    if body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| NodeError::InvalidResponse(e.to_string()))
}

fn nanos_to_time(nanos: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(nanos)
}

/// `request` carrying `span`'s trace context, so that the server's spans continue the caller's
/// trace; and that trace's id (`None` when no trace is exported).
fn with_trace(mut request: awc::ClientRequest, span: &tracing::Span) -> (awc::ClientRequest, Option<String>) {
    let (headers, trace_id) = outgoing_headers(span);
    for header in headers {
        request = request.insert_header(header);
    }
    (request, trace_id)
}

impl RemoteNode {
    fn pubsub_request(&self, request: awc::ClientRequest, timeout: Duration) -> awc::ClientRequest {
        let request = request.timeout(timeout);
        match &self.token {
            Some(token) => request.insert_header((awc::http::header::AUTHORIZATION, token.header_value())),
            None => request,
        }
    }

    fn post_topic(&self, path: &str, topic: String) -> ResponseFuture<Result<(), NodeError>> {
        let timeout = self.timeouts.readiness;
        let request = self.pubsub_request(self.client.post(format!("{}{path}", self.base_url)), timeout);
        Box::pin(async move {
            let mut response = request
                .send_json(&serde_json::json!({ "topic": topic }))
                .await
                .map_err(|e| send_error(e, timeout))?;
            pubsub_answer::<serde_json::Value>(&mut response).await.map(drop)
        })
    }
}

impl Handler<SubscribeTopic> for RemoteNode {
    type Result = ResponseFuture<Result<(), NodeError>>;

    fn handle(&mut self, msg: SubscribeTopic, _: &mut Context<Self>) -> Self::Result {
        self.post_topic("/pubsub/subscribe", msg.topic)
    }
}

impl Handler<UnsubscribeTopic> for RemoteNode {
    type Result = ResponseFuture<Result<(), NodeError>>;

    fn handle(&mut self, msg: UnsubscribeTopic, _: &mut Context<Self>) -> Self::Result {
        self.post_topic("/pubsub/unsubscribe", msg.topic)
    }
}

impl Handler<ReprovideContent> for RemoteNode {
    type Result = ResponseFuture<Result<ReprovideReport, NodeError>>;

    fn handle(&mut self, msg: ReprovideContent, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.timeouts.reprovide;
        let request = self.pubsub_request(self.client.post(format!("{}/reprovide", self.base_url)), timeout);
        let (request, _) = with_trace(request, &msg.span);
        let body = ReprovideRequest {
            cids: msg.cids,
            strategy: msg.strategy.name().to_owned(),
            workers: msg.workers,
            sample: msg.sample,
            seed: msg.seed,
        };
        Box::pin(async move {
            let mut response = request
                .send_json(&body)
                .await
                .map_err(|e| send_error(e, timeout))?;
            let answer: ReprovideResponse = pubsub_answer(&mut response)
                .await?
                .ok_or_else(|| NodeError::InvalidResponse("an empty reprovide answer".to_owned()))?;
            answer.try_into()
        })
    }
}

impl Handler<PublishMessage> for RemoteNode {
    type Result = ResponseFuture<Result<PublishReceipt, NodeError>>;

    fn handle(&mut self, msg: PublishMessage, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.timeouts.readiness;
        let request = self.pubsub_request(
            self.client.post(format!("{}/pubsub/publish", self.base_url)),
            timeout,
        );
        let (request, trace_id) = with_trace(request, &msg.span);
        let body = PublishRequest {
            topic: msg.topic,
            message_id: msg.id.to_string(),
            size: msg.bytes,
        };
        Box::pin(async move {
            let mut response = request
                .send_json(&body)
                .await
                .map_err(|e| send_error(e, timeout))?;
            let answer: PublishResponse = pubsub_answer(&mut response)
                .await?
                .ok_or_else(|| NodeError::InvalidResponse("an empty publish answer".to_owned()))?;
            Ok(PublishReceipt {
                sent_at: nanos_to_time(answer.sent_at_ns),
                topic_peers: answer.topic_peers,
                mesh_peers: answer.mesh_peers,
                trace_id,
            })
        })
    }
}

impl Handler<AwaitMessage> for RemoteNode {
    type Result = ResponseFuture<Result<Option<DeliveryReceipt>, NodeError>>;

    fn handle(&mut self, msg: AwaitMessage, _: &mut Context<Self>) -> Self::Result {
        // The server answers by the end of the wait; the request may take that and a round trip.
        let timeout = msg.wait + self.timeouts.readiness;
        let url = format!(
            "{}/pubsub/messages/{}?wait_ms={}",
            self.base_url,
            msg.id,
            msg.wait.as_millis()
        );
        let (request, _) = with_trace(self.pubsub_request(self.client.get(url), timeout), &msg.span);
        Box::pin(async move {
            let mut response = request.send().await.map_err(|e| send_error(e, timeout))?;
            let answer: DeliveryResponse = pubsub_answer(&mut response)
                .await?
                .ok_or_else(|| NodeError::InvalidResponse("an empty delivery answer".to_owned()))?;
            let (Some(received), Some(from)) = (answer.received_at_ns, answer.first_from) else {
                return Ok(None);
            };
            let from = from
                .parse()
                .map_err(|e| NodeError::InvalidResponse(format!("first_from {from:?}: {e}")))?;
            Ok(Some(DeliveryReceipt {
                received_at: nanos_to_time(received),
                copies: answer.copies,
                from,
            }))
        })
    }
}

impl Handler<ProbeClock> for RemoteNode {
    type Result = ResponseFuture<Result<ClockOffset, NodeError>>;

    fn handle(&mut self, msg: ProbeClock, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.timeouts.readiness;
        let client = self.client.clone();
        let url = format!("{}/pubsub/clock", self.base_url);
        Box::pin(async move {
            let mut samples = Vec::with_capacity(msg.samples);
            for _ in 0..msg.samples.max(1) {
                let sent = chrono::Utc::now();
                let mut response = client
                    .get(&url)
                    .timeout(timeout)
                    .send()
                    .await
                    .map_err(|e| send_error(e, timeout))?;
                let answer: ClockResponse = pubsub_answer(&mut response)
                    .await?
                    .ok_or_else(|| NodeError::InvalidResponse("an empty clock answer".to_owned()))?;
                let received = chrono::Utc::now();
                samples.push(ClockSample {
                    sent,
                    server: nanos_to_time(answer.now_ns),
                    received,
                });
            }
            clock::estimate(&samples).ok_or_else(|| {
                NodeError::InvalidResponse("the clock went backwards in every exchange".to_owned())
            })
        })
    }
}

impl Handler<ViewTopic> for RemoteNode {
    type Result = ResponseFuture<Result<TopicPeers, NodeError>>;

    fn handle(&mut self, msg: ViewTopic, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.timeouts.readiness;
        let url = format!("{}/pubsub/topics/{}", self.base_url, msg.topic);
        let request = self.pubsub_request(self.client.get(url), timeout);
        Box::pin(async move {
            let mut response = request.send().await.map_err(|e| send_error(e, timeout))?;
            let answer: TopicResponse = pubsub_answer(&mut response)
                .await?
                .ok_or_else(|| NodeError::InvalidResponse("an empty topic answer".to_owned()))?;
            Ok(TopicPeers {
                subscribed: answer.subscribed,
                mesh: answer.mesh,
            })
        })
    }
}
