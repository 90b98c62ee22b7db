//! The pubsub messages a node handles: the typed requests the `/pubsub/...` API forwards, and a
//! [`FleetSupervisor`](crate::FleetSupervisor) will send, as it sends provide and retrieve.
//!
//! Times cross process boundaries here, so they are wall-clock instants of the node's own clock
//! (the monotonic instants of the swarm mapped to it); the caller corrects them with the clock
//! offset it estimated ([`crate::pubsub::clock`]).

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use libp2p::PeerId;
use tracing::Instrument;

use super::NodeActor;
use crate::{
    pubsub::{
        clock::{ClockOffset, WallClock},
        MessageId, TopicPeers,
    },
    NodeError,
};

/// Longest a caller may have a node wait for a delivery.
pub const MAX_DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// Subscribe to `topic`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct SubscribeTopic {
    pub topic: String,
}

/// Leave `topic`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct UnsubscribeTopic {
    pub topic: String,
}

/// Publish a message of `bytes` random bytes starting with `id` on `topic`.
#[derive(Debug, Message)]
#[rtype(result = "Result<PublishReceipt, NodeError>")]
pub struct PublishMessage {
    pub topic: String,
    pub id: MessageId,
    pub bytes: usize,
    /// The message's trace: the node publishes inside it (an HTTP client carries it to the
    /// server).
    pub span: tracing::Span,
}

/// What publishing did (a refusal is an error: no peer was reached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishReceipt {
    /// The node's wall clock just before the message went to gossipsub.
    pub sent_at: DateTime<Utc>,
    /// Subscribed peers the node knew, and its mesh peers of the topic.
    pub topic_peers: u32,
    pub mesh_peers: u32,
    /// The trace the publish was part of, when a server reported through an exporting client.
    pub trace_id: Option<String>,
}

/// Wait up to `wait` for message `id`; answers at its first copy, or at the end of the wait.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<DeliveryReceipt>, NodeError>")]
pub struct AwaitMessage {
    pub id: MessageId,
    pub wait: Duration,
    /// This receiver's span of the message's trace; the node notes the first copy on it.
    pub span: tracing::Span,
}

/// A message a node received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The node's wall clock at the first copy.
    pub received_at: DateTime<Utc>,
    /// Copies so far, the first included.
    pub copies: u32,
    /// Who forwarded the first copy.
    pub from: PeerId,
}

/// How far the node's clock is from the asker's, from `samples` round trips (a node in the
/// asker's process shares its clock: [`ClockOffset::NONE`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<ClockOffset, NodeError>")]
pub struct ProbeClock {
    pub samples: usize,
}

/// The node's view of `topic`: connected subscribers, and its mesh peers there.
#[derive(Debug, Message)]
#[rtype(result = "Result<TopicPeers, NodeError>")]
pub struct ViewTopic {
    pub topic: String,
}

/// Where a node's pubsub requests go.
#[derive(Clone, Debug)]
pub struct PubsubRecipients {
    pub subscribe: Recipient<SubscribeTopic>,
    pub unsubscribe: Recipient<UnsubscribeTopic>,
    pub publish: Recipient<PublishMessage>,
    pub await_message: Recipient<AwaitMessage>,
    pub clock: Recipient<ProbeClock>,
    pub topic: Recipient<ViewTopic>,
}

impl PubsubRecipients {
    /// The recipients of any actor that handles the pubsub messages.
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<SubscribeTopic>
            + Handler<UnsubscribeTopic>
            + Handler<PublishMessage>
            + Handler<AwaitMessage>
            + Handler<ProbeClock>
            + Handler<ViewTopic>,
    {
        Self {
            subscribe: addr.clone().recipient(),
            unsubscribe: addr.clone().recipient(),
            publish: addr.clone().recipient(),
            await_message: addr.clone().recipient(),
            clock: addr.clone().recipient(),
            topic: addr.clone().recipient(),
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Handler<SubscribeTopic> for NodeActor {
    type Result = ResponseFuture<Result<(), NodeError>>;

    fn handle(&mut self, msg: SubscribeTopic, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        Box::pin(async move { Ok(dht.subscribe(&msg.topic).await?) })
    }
}

impl Handler<UnsubscribeTopic> for NodeActor {
    type Result = ResponseFuture<Result<(), NodeError>>;

    fn handle(&mut self, msg: UnsubscribeTopic, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        Box::pin(async move { Ok(dht.unsubscribe(&msg.topic).await?) })
    }
}

impl Handler<PublishMessage> for NodeActor {
    type Result = ResponseFuture<Result<PublishReceipt, NodeError>>;

    fn handle(&mut self, msg: PublishMessage, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        let span = msg.span.clone();
        Box::pin(
            async move {
                let payload = msg.id.payload(msg.bytes, &mut rand::thread_rng());
                let published = dht.publish(&msg.topic, payload).await?;
                tracing::info!(id = %msg.id, topic = %msg.topic, topic_peers = published.topic_peers, "published");
                Ok(PublishReceipt {
                    sent_at: WallClock::process().at(published.sent_at),
                    topic_peers: count(published.topic_peers),
                    mesh_peers: count(published.mesh_peers),
                    trace_id: None,
                })
            }
            .instrument(span),
        )
    }
}

impl Handler<AwaitMessage> for NodeActor {
    type Result = ResponseFuture<Result<Option<DeliveryReceipt>, NodeError>>;

    fn handle(&mut self, msg: AwaitMessage, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + msg.wait.min(MAX_DELIVERY_WAIT);
            let Some(delivery) = dht.delivery_by(msg.id, deadline).await? else {
                msg.span
                    .in_scope(|| tracing::info!("not delivered by the deadline"));
                return Ok(None);
            };
            // The copies so far, not only those counted at the first.
            let copies = dht.delivery(msg.id).await?.map_or(delivery.copies, |d| d.copies);
            msg.span
                .in_scope(|| tracing::info!(from = %delivery.from, copies, "first copy"));
            Ok(Some(DeliveryReceipt {
                received_at: WallClock::process().at(delivery.received_at),
                copies,
                from: delivery.from,
            }))
        })
    }
}

impl Handler<ProbeClock> for NodeActor {
    type Result = Result<ClockOffset, NodeError>;

    fn handle(&mut self, _: ProbeClock, _: &mut Context<Self>) -> Self::Result {
        Ok(ClockOffset::NONE)
    }
}

impl Handler<ViewTopic> for NodeActor {
    type Result = ResponseFuture<Result<TopicPeers, NodeError>>;

    fn handle(&mut self, msg: ViewTopic, _: &mut Context<Self>) -> Self::Result {
        let dht = self.dht().clone();
        Box::pin(async move { Ok(dht.topic_peers(&msg.topic).await?) })
    }
}
