//! One pubsub round among peers of this process: a publisher sends messages on a topic, and every
//! receiver reports when each first arrived and how many copies it got. Publisher and receivers
//! share this process's monotonic clock, so a latency is a difference of two instants.

use std::time::Duration;

use futures::{stream, StreamExt};
use libp2p::PeerId;
use rand::RngCore;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    pubsub::{Delivery, MessageId, Published},
    DhtError, DhtHandle,
};

/// Receivers asked at once.
const RECEIVER_CONCURRENCY: usize = 256;

/// What a round publishes and how long it waits.
#[derive(Clone, Debug)]
pub struct PublishPlan {
    /// The topics; message `i` goes to topic `i % topics.len()` (receivers subscribe to all).
    pub topics: Vec<String>,
    /// Messages published, one after the other.
    pub messages: usize,
    /// Size of each message (its 16-byte id included).
    pub message_bytes: usize,
    /// How long after the first publish a message may still arrive; later is lost.
    pub deadline: Duration,
    /// How long after the last delivery copies are still counted (duplicates trail the first).
    pub linger: Duration,
}

/// What one receiver got of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The receiver.
    pub peer: PeerId,
    /// From the publisher's send to the first copy here (`None`: not by the deadline).
    pub latency: Option<Duration>,
    /// Copies received (0 when it never arrived).
    pub copies: u32,
    /// The peer that forwarded the first copy (the publisher itself: one hop).
    pub from: Option<PeerId>,
}

/// One published message and its receipts.
#[derive(Clone, Debug)]
pub struct MessageReport {
    /// The message.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// What publishing did, or why gossipsub refused it (then nobody was waited for).
    pub published: Result<Published, String>,
    /// One per receiver, in the receivers' order.
    pub receipts: Vec<Receipt>,
    /// The message's trace: a `pubsub.message` span from the send to the end of the round, with
    /// a `pubsub.delivery` child per receiver (its `delivered` event at the first copy).
    pub span: tracing::Span,
}

/// What a round measured.
#[derive(Clone, Debug)]
pub struct PublishReport {
    /// Per message, in publishing order.
    pub messages: Vec<MessageReport>,
    /// From the first send to the last first delivery (the whole deadline if something was lost).
    pub duration: Duration,
}

impl PublishReport {
    /// Receipts of published messages: (delivered, expected).
    pub fn delivered(&self) -> (usize, usize) {
        let receipts = self
            .messages
            .iter()
            .filter(|m| m.published.is_ok())
            .flat_map(|m| &m.receipts);
        receipts.fold((0, 0), |(delivered, expected), r| {
            (delivered + usize::from(r.latency.is_some()), expected + 1)
        })
    }
}

/// Publishes `plan.messages` messages from `publisher` and collects what each of `receivers`
/// (subscribed to the topic) got.
pub async fn publish_and_collect(
    publisher: &DhtHandle,
    receivers: &[DhtHandle],
    plan: &PublishPlan,
    rng: &mut impl RngCore,
) -> Result<PublishReport, DhtError> {
    if plan.topics.is_empty() {
        return Err(DhtError::Pubsub("a round needs a topic".to_owned()));
    }
    let sent = publish_all(publisher, plan, rng).await?;
    let first_sent = sent
        .iter()
        .find_map(|m| m.published.as_ref().ok().map(|p| p.sent_at))
        .unwrap_or_else(Instant::now);
    // The published messages: id, send instant, trace.
    let awaited: Vec<Awaited> = sent
        .iter()
        .filter_map(|m| m.published.as_ref().ok().map(|p| (m.id, p.sent_at, &m.span)))
        .collect();
    let arrivals = first_arrivals(receivers, &awaited, first_sent + plan.deadline).await?;
    let last_arrival = arrivals.iter().flatten().flatten().max().copied();
    let complete = arrivals.iter().flatten().all(Option::is_some);
    tokio::time::sleep(plan.linger).await;
    // Copies, counted once the duplicates had time to come.
    let copies = copies(receivers, &awaited).await?;
    let messages = reports(sent, receivers, &arrivals, &copies);
    let duration = match last_arrival {
        Some(last) if complete => last.saturating_duration_since(first_sent),
        _ => plan.deadline,
    };
    Ok(PublishReport { messages, duration })
}

/// A message published: its id, send instant and trace.
type Awaited<'a> = (MessageId, Instant, &'a tracing::Span);

/// Publishes the plan's messages one after the other; a message gossipsub refused is reported, not
/// an error.
async fn publish_all(
    publisher: &DhtHandle,
    plan: &PublishPlan,
    rng: &mut impl RngCore,
) -> Result<Vec<MessageReport>, DhtError> {
    let mut sent = Vec::with_capacity(plan.messages);
    for index in 0..plan.messages {
        let id = MessageId::new();
        let topic = &plan.topics[index % plan.topics.len()];
        let payload = id.payload(plan.message_bytes, rng);
        let span =
            tracing::info_span!("pubsub.message", message = %id, %topic, publisher = %publisher.peer_id());
        let published = match publisher.publish(topic, payload).instrument(span.clone()).await {
            Ok(published) => Ok(published),
            Err(DhtError::Pubsub(reason)) => {
                span.in_scope(|| tracing::info!(%reason, "not published"));
                Err(reason)
            }
            Err(e) => return Err(e),
        };
        sent.push(MessageReport {
            id,
            topic: topic.clone(),
            published,
            receipts: Vec::new(),
            span,
        });
    }
    Ok(sent)
}

/// First arrivals, per receiver and awaited message, each receiver waiting for the messages in
/// order until the deadline. A receiver asked late (behind one that waited out the deadline)
/// still reports in time what came in time.
async fn first_arrivals(
    receivers: &[DhtHandle],
    awaited: &[Awaited<'_>],
    deadline: Instant,
) -> Result<Vec<Vec<Option<Instant>>>, DhtError> {
    stream::iter(receivers)
        .map(|receiver| async move {
            let mut arrived = Vec::with_capacity(awaited.len());
            for (id, sent_at, message_span) in awaited {
                let span = tracing::info_span!(parent: *message_span, "pubsub.delivery", receiver = %receiver.peer_id());
                let delivery = receiver
                    .delivery_by(*id, deadline)
                    .instrument(span.clone())
                    .await?;
                arrived.push(match delivery {
                    Some(delivery) => {
                        let latency = delivery.received_at.saturating_duration_since(*sent_at);
                        span.in_scope(|| tracing::info!(latency_s = latency.as_secs_f64(), from = %delivery.from, "delivered"));
                        Some(delivery.received_at)
                    }
                    None => {
                        span.in_scope(|| tracing::info!("not delivered by the deadline"));
                        None
                    }
                });
            }
            Ok(arrived)
        })
        .buffered(RECEIVER_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// What each receiver holds of each awaited message now.
async fn copies(
    receivers: &[DhtHandle],
    awaited: &[Awaited<'_>],
) -> Result<Vec<Vec<Option<Delivery>>>, DhtError> {
    stream::iter(receivers)
        .map(|receiver| async move {
            let mut deliveries = Vec::with_capacity(awaited.len());
            for (id, _, _) in awaited {
                deliveries.push(receiver.delivery(*id).await?);
            }
            Ok::<_, DhtError>(deliveries)
        })
        .buffered(RECEIVER_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The sent messages with their receipts: per published message, one per receiver, from its first
/// arrival (by the deadline) and its copies.
fn reports(
    mut sent: Vec<MessageReport>,
    receivers: &[DhtHandle],
    arrivals: &[Vec<Option<Instant>>],
    copies: &[Vec<Option<Delivery>>],
) -> Vec<MessageReport> {
    let published = sent
        .iter_mut()
        .filter_map(|m| Some((*m.published.as_ref().ok()?, &mut m.receipts)));
    for (column, (published, receipts)) in published.enumerate() {
        *receipts = receivers
            .iter()
            .zip(copies)
            .zip(arrivals)
            .map(|((receiver, deliveries), arrived)| {
                let delivery = deliveries[column];
                Receipt {
                    peer: receiver.peer_id(),
                    // Arrived by the deadline; a copy counted later is still a loss.
                    latency: arrived[column].map(|at| at.saturating_duration_since(published.sent_at)),
                    copies: delivery.map_or(0, |d| d.copies),
                    from: delivery.map(|d| d.from),
                }
            })
            .collect();
    }
    sent
}
