//! The pubsub extension of the API, under `/pubsub/` so parsec's three endpoints stay exactly
//! parsec's: subscribe, publish, wait for a message, and the server's clock (for the offset a
//! scheduler corrects latencies by). Handlers decode, send one message to the node, encode.

use std::time::Duration;

use crate::telemetry::traces::continue_trace;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use parsec_actors::{
    node::pubsub::{
        AwaitMessage, PublishMessage, PubsubRecipients, SubscribeTopic, UnsubscribeTopic, ViewTopic,
        MAX_DELIVERY_WAIT,
    },
    pubsub::{clock::WallClock, MessageId, MAX_MESSAGE_BYTES, MESSAGE_ID_BYTES},
};
use serde::{Deserialize, Serialize};

use super::{
    auth::Authorized,
    error::ApiError,
    handlers::{read_bounded, require_json},
};

/// Longest topic name accepted.
const MAX_TOPIC_CHARS: usize = 256;

/// `{"topic": "…"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRequest {
    pub topic: String,
}

/// What to publish: the message id (a UUID) and the message's size in bytes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: String,
    /// A UUID.
    pub message_id: String,
    pub size: usize,
}

/// What publishing did; `sent_at_ns` is the server's wall clock (Unix nanoseconds).
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct PublishResponse {
    pub message_id: String,
    pub sent_at_ns: i64,
    pub topic_peers: u32,
    pub mesh_peers: u32,
}

/// Whether the message came by the end of the wait; `received_at_ns` is the server's wall clock
/// at its first copy.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DeliveryResponse {
    pub message_id: String,
    pub delivered: bool,
    pub received_at_ns: Option<i64>,
    pub copies: u32,
    pub first_from: Option<String>,
}

/// The server's wall clock (Unix nanoseconds) while it answered.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ClockResponse {
    pub now_ns: i64,
}

/// The server's view of a topic: connected subscribers, and its mesh peers there.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TopicResponse {
    pub topic: String,
    pub subscribed: usize,
    pub mesh: usize,
}

/// `?wait_ms=…` of `GET /pubsub/messages/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait_ms: u64,
}

fn recipients(pubsub: &web::Data<Option<PubsubRecipients>>) -> Result<&PubsubRecipients, ApiError> {
    pubsub.as_ref().as_ref().ok_or_else(|| {
        ApiError::NotImplemented("this server does not speak gossipsub: start it with --gossipsub".to_owned())
    })
}

pub(super) fn stopped(e: actix::MailboxError) -> ApiError {
    ApiError::Unavailable(format!("node stopped: {e}"))
}

pub(super) fn nanos(at: chrono::DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
    body: web::Payload,
    expected: &str,
) -> Result<T, ApiError> {
    require_json(request, true)?;
    let body = read_bounded(body).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}; expected {expected}")))
}

fn message_id(text: &str) -> Result<MessageId, ApiError> {
    text.parse()
        .map(MessageId)
        .map_err(|e| ApiError::BadRequest(format!("the message id must be a UUID: {e}")))
}

fn check_topic(topic: &str) -> Result<(), ApiError> {
    if topic.is_empty() || topic.chars().count() > MAX_TOPIC_CHARS {
        return Err(ApiError::BadRequest(format!(
            "topic must have 1 to {MAX_TOPIC_CHARS} characters"
        )));
    }
    Ok(())
}

/// The checked topic of a `{"topic": …}` body.
async fn read_topic(request: &HttpRequest, body: web::Payload) -> Result<String, ApiError> {
    let body: TopicRequest = read_json(request, body, r#"{"topic": "<name>"}"#).await?;
    check_topic(&body.topic)?;
    Ok(body.topic)
}

/// `POST /pubsub/subscribe`.
pub(crate) async fn subscribe(
    _: Authorized,
    pubsub: web::Data<Option<PubsubRecipients>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let topic = read_topic(&request, body).await?;
    let subscribing = recipients(&pubsub)?.subscribe.send(SubscribeTopic { topic });
    subscribing.await.map_err(stopped)??;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /pubsub/unsubscribe`.
pub(crate) async fn unsubscribe(
    _: Authorized,
    pubsub: web::Data<Option<PubsubRecipients>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let topic = read_topic(&request, body).await?;
    let leaving = recipients(&pubsub)?.unsubscribe.send(UnsubscribeTopic { topic });
    leaving.await.map_err(stopped)??;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /pubsub/publish`.
pub(crate) async fn publish(
    _: Authorized,
    pubsub: web::Data<Option<PubsubRecipients>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let expected = r#"{"topic": "<name>", "message_id": "<uuid>", "size": <bytes>}"#;
    let body: PublishRequest = read_json(&request, body, expected).await?;
    check_topic(&body.topic)?;
    if body.size > MAX_MESSAGE_BYTES {
        return Err(ApiError::TooLarge(format!(
            "size must be at most {MAX_MESSAGE_BYTES} bytes (gossipsub's transmit limit)"
        )));
    }
    if body.size < MESSAGE_ID_BYTES {
        return Err(ApiError::BadRequest(format!(
            "size must be at least {MESSAGE_ID_BYTES} bytes: a message starts with its id"
        )));
    }
    let id = message_id(&body.message_id)?;
    let span = tracing::info_span!("pubsub.publish", message = %id, topic = %body.topic);
    continue_trace(&span, request.headers());
    let receipt = recipients(&pubsub)?
        .publish
        .send(PublishMessage {
            topic: body.topic,
            id,
            bytes: body.size,
            span,
        })
        .await
        .map_err(stopped)??;
    Ok(HttpResponse::Ok().json(PublishResponse {
        message_id: id.to_string(),
        sent_at_ns: nanos(receipt.sent_at),
        topic_peers: receipt.topic_peers,
        mesh_peers: receipt.mesh_peers,
    }))
}

/// `GET /pubsub/messages/{id}?wait_ms=…`.
pub(crate) async fn message(
    _: Authorized,
    pubsub: web::Data<Option<PubsubRecipients>>,
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = message_id(&id)?;
    let wait = Duration::from_millis(query.wait_ms);
    if wait > MAX_DELIVERY_WAIT {
        return Err(ApiError::BadRequest(format!(
            "wait_ms must be at most {}",
            MAX_DELIVERY_WAIT.as_millis()
        )));
    }
    let waiting = recipients(&pubsub)?.await_message.send(AwaitMessage {
        id,
        wait,
        span: {
            let span = tracing::info_span!("pubsub.await", message = %id);
            continue_trace(&span, request.headers());
            span
        },
    });
    let delivery = tokio::select! {
        delivery = waiting => delivery.map_err(stopped)??,
        () = super::hangup::client_gone(&request) => {
            // Nobody will read the answer: free the connection now rather than at the wait's end.
            tracing::debug!(message = %id, "the client hung up while waiting for a delivery");
            return Err(ApiError::ClientGone);
        }
    };
    Ok(HttpResponse::Ok().json(DeliveryResponse {
        message_id: id.to_string(),
        delivered: delivery.is_some(),
        received_at_ns: delivery.map(|d| nanos(d.received_at)),
        copies: delivery.map_or(0, |d| d.copies),
        first_from: delivery.map(|d| d.from.to_string()),
    }))
}

/// `GET /pubsub/topics/{topic}`.
pub(crate) async fn topic(
    _: Authorized,
    pubsub: web::Data<Option<PubsubRecipients>>,
    topic: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let topic = topic.into_inner();
    check_topic(&topic)?;
    let view = recipients(&pubsub)?
        .topic
        .send(ViewTopic { topic: topic.clone() })
        .await
        .map_err(stopped)??;
    Ok(HttpResponse::Ok().json(TopicResponse {
        topic,
        subscribed: view.subscribed,
        mesh: view.mesh,
    }))
}

/// `GET /pubsub/clock`: open like readiness (it tells nothing but the time). The time is on the
/// timeline of the server's delivery and publish timestamps (the process's one `WallClock`), so
/// the offset a scheduler estimates from it corrects exactly those.
pub(crate) async fn clock() -> HttpResponse {
    let now = WallClock::process().at(tokio::time::Instant::now());
    HttpResponse::Ok().json(ClockResponse { now_ns: nanos(now) })
}
