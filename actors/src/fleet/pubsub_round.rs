//! One pubsub round over a fleet's members, as [`RunPubsubRound`] asks: every ready member that
//! speaks pubsub subscribes to the topic, each one's clock is probed, one member publishes the
//! round's messages and every other one reports when each first arrived. Latencies cross two
//! clocks, so each is corrected by both offsets, and the rows keep the bound of that correction.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::FleetMember;
use crate::{
    node::pubsub::{
        AwaitMessage, DeliveryReceipt, ProbeClock, PublishMessage, PublishReceipt, PubsubRecipients,
        SubscribeTopic, ViewTopic,
    },
    pubsub::{
        clock::{delivery_latency, ClockOffset},
        mesh::{MeshState, MeshWatch, MESH_POLL},
        DeliveryTally, MessageId,
    },
    Measurement, NodeError, NodeId, Operation, PubsubDetails, RecordMeasurement, RoundId, RUST_LIBP2P,
};

/// What a pubsub round publishes and how long it waits.
#[derive(Clone, Debug)]
pub struct PubsubRoundConfig {
    pub topic: String,
    /// Messages the publisher sends, one after the other.
    pub messages: usize,
    pub message_bytes: usize,
    /// After the first send, later copies count as lost.
    pub deadline: Duration,
    /// Round trips each member's clock offset is estimated from.
    pub clock_samples: usize,
    /// How long the publisher may take to have a mesh peer in the topic (the first round's
    /// subscriptions need a heartbeat or two); publishing earlier reaches only whom it knows.
    pub mesh_wait: Duration,
}

impl Default for PubsubRoundConfig {
    fn default() -> Self {
        Self {
            topic: "parsec-pubsub".to_owned(),
            messages: 10,
            message_bytes: 1024,
            deadline: Duration::from_secs(10),
            clock_samples: 8,
            mesh_wait: Duration::from_secs(10),
        }
    }
}

/// What happened in one pubsub round.
#[derive(Clone, Debug, Default)]
pub struct PubsubRoundSummary {
    pub round: Option<RoundId>,
    pub publisher: Option<NodeId>,
    /// Messages published, and refused (no peer reached).
    pub published: usize,
    pub refused: usize,
    /// Every receiver's first copy of every published message (corrected latencies; a copy
    /// the clocks put before its send is a clock error, its row says `clock error: …`).
    pub deliveries: DeliveryTally,
    /// Requests that produced no answer (not measurements).
    pub failures: Vec<(NodeId, NodeError)>,
    pub not_ready: Vec<(NodeId, String)>,
    pub ready_nodes: usize,
}

/// A member taking part, with its clock.
struct Participant<'a> {
    member: &'a FleetMember,
    pubsub: &'a PubsubRecipients,
    clock: ClockOffset,
    fleet: String,
}

/// A message the publisher was asked to send: its receipt, or why gossipsub refused it, and the
/// root span of its trace.
struct Sent {
    id: MessageId,
    result: Result<PublishReceipt, String>,
    span: tracing::Span,
}

/// A receiver's first copy of one message, if it came by the deadline, and the receiver's span of
/// the message's trace.
type Arrival = (Option<DeliveryReceipt>, tracing::Span);

/// Runs the round over `members` (ready, speaking pubsub); `publisher` indexes them.
pub(super) async fn run(
    members: &[FleetMember],
    publisher: usize,
    config: &PubsubRoundConfig,
    default_fleet: &str,
    recorder: &actix::Recipient<RecordMeasurement>,
    summary: &mut PubsubRoundSummary,
) {
    let round = RoundId::new();
    summary.round = Some(round);
    summary.publisher = Some(members[publisher].id);
    let Some((participants, publisher)) = prepare(members, publisher, config, default_fleet, summary).await
    else {
        return;
    };
    let publishing = &participants[publisher];
    let span = tracing::info_span!("pubsub round", %round, publisher = %publishing.member.id);
    let _entered = span.enter();
    if let Err((id, e)) = await_mesh(&participants, &config.topic, config.mesh_wait).await {
        summary.failures.push((id, e));
        return;
    }
    let started = Instant::now();
    let sent = publish(publishing, round, config, summary).await;
    let receivers: Vec<&Participant> = participants
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != publisher)
        .map(|(_, p)| p)
        .collect();
    let arrivals = await_arrivals(&receivers, &sent, started + config.deadline).await;
    let rows = RoundRows {
        round,
        config,
        publishing,
        receivers: &receivers,
    }
    .rows(&sent, &arrivals, summary);
    for (receiver, arrived) in receivers.iter().zip(arrivals) {
        if let Err(e) = arrived {
            summary.failures.push((receiver.member.id, e));
        }
    }
    // Awaited, as the DHT round's rows are: `do_send` would queue past the recorder's bounded
    // mailbox.
    for measurement in rows {
        if let Err(e) = recorder.send(RecordMeasurement(measurement)).await {
            tracing::error!(error = %e, "measurement recorder is gone; row lost");
        }
    }
}

/// Subscribes every member to the topic and probes its clock; those that failed are in the
/// summary's failures. `None` if the publisher is one of them; else the participants and the
/// publisher's place among them.
async fn prepare<'a>(
    members: &'a [FleetMember],
    publisher: usize,
    config: &PubsubRoundConfig,
    default_fleet: &str,
    summary: &mut PubsubRoundSummary,
) -> Option<(Vec<Participant<'a>>, usize)> {
    let prepared = join_all(members.iter().map(|member| async move {
        let pubsub = member.pubsub.as_ref().expect("members speak pubsub");
        let topic = config.topic.clone();
        pubsub
            .subscribe
            .send(SubscribeTopic { topic })
            .await
            .map_err(unavailable)??;
        let samples = config.clock_samples;
        let clock = pubsub
            .clock
            .send(ProbeClock { samples })
            .await
            .map_err(unavailable)??;
        Ok::<_, NodeError>((pubsub, clock))
    }))
    .await;
    let mut participants = Vec::new();
    let mut publisher_index = None;
    for (index, (member, prepared)) in members.iter().zip(prepared).enumerate() {
        match prepared {
            Ok((pubsub, clock)) => {
                if index == publisher {
                    publisher_index = Some(participants.len());
                }
                participants.push(Participant {
                    member,
                    pubsub,
                    clock,
                    fleet: member.fleet_or(default_fleet).to_owned(),
                });
            }
            Err(e) => summary.failures.push((member.id, e)),
        }
    }
    Some((participants, publisher_index?))
}

/// Publishes the round's messages one after the other. A message gossipsub refused (nobody
/// subscribed known) is a measurement; a publisher that stopped answering ends the publishing
/// (a failure in the summary).
async fn publish(
    publisher: &Participant<'_>,
    round: RoundId,
    config: &PubsubRoundConfig,
    summary: &mut PubsubRoundSummary,
) -> Vec<Sent> {
    let mut sent = Vec::with_capacity(config.messages);
    for _ in 0..config.messages {
        let id = MessageId::new();
        // One trace per message: a root span, continued by the publishing server, with a child
        // per receiver.
        let span = tracing::info_span!(
            parent: None,
            "pubsub.message",
            message = %id,
            topic = %config.topic,
            %round,
            publisher = %publisher.member.id
        );
        let request = PublishMessage {
            topic: config.topic.clone(),
            id,
            bytes: config.message_bytes,
            span: span.clone(),
        };
        let result = match publisher.pubsub.publish.send(request).await.map_err(unavailable) {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(NodeError::Rejected { status: 503, body }))
            | Ok(Err(NodeError::Dht(crate::DhtError::Pubsub(body)))) => {
                span.in_scope(|| tracing::info!(reason = %body, "not published"));
                Err(body)
            }
            Ok(Err(e)) | Err(e) => {
                summary.failures.push((publisher.member.id, e));
                break;
            }
        };
        sent.push(Sent { id, result, span });
    }
    sent
}

/// Every receiver waits for each published message in turn, until the deadline: per receiver,
/// its arrivals in the order of `sent`'s published messages, or why it stopped answering.
async fn await_arrivals(
    receivers: &[&Participant<'_>],
    sent: &[Sent],
    deadline: Instant,
) -> Vec<Result<Vec<Arrival>, NodeError>> {
    let published: Vec<&Sent> = sent.iter().filter(|s| s.result.is_ok()).collect();
    join_all(receivers.iter().map(|receiver| {
        let published = &published;
        async move {
            let mut arrived = Vec::with_capacity(published.len());
            for message in published {
                let span = tracing::info_span!(
                    parent: &message.span,
                    "pubsub.delivery",
                    receiver = %receiver.member.id,
                    server = %receiver.member.name
                );
                let wait = deadline.saturating_duration_since(Instant::now());
                let request = AwaitMessage {
                    id: message.id,
                    wait,
                    span: span.clone(),
                };
                match receiver
                    .pubsub
                    .await_message
                    .send(request)
                    .await
                    .map_err(unavailable)
                {
                    Ok(Ok(delivery)) => arrived.push((delivery, span)),
                    Ok(Err(e)) | Err(e) => return Err(e),
                }
            }
            Ok(arrived)
        }
    }))
    .await
}

/// How one receiver's copy of one message counts.
enum Reach {
    Delivered(Duration),
    /// It came, but the corrected clocks put it before its send beyond their bounds.
    Unmeasurable,
    Missing,
}

/// The rows of one round: a publish per message, a delivery per receiver that answered.
struct RoundRows<'a> {
    round: RoundId,
    config: &'a PubsubRoundConfig,
    publishing: &'a Participant<'a>,
    receivers: &'a [&'a Participant<'a>],
}

impl RoundRows<'_> {
    fn rows(
        &self,
        sent: &[Sent],
        arrivals: &[Result<Vec<Arrival>, NodeError>],
        summary: &mut PubsubRoundSummary,
    ) -> Vec<Measurement> {
        let mut rows = Vec::new();
        let mut column = 0;
        for message in sent {
            let receipt = match &message.result {
                Ok(receipt) => receipt,
                Err(reason) => {
                    summary.refused += 1;
                    rows.push(Measurement {
                        started_at: self.publishing.clock.to_ours(chrono::Utc::now()),
                        error: Some(reason.clone()),
                        ..self.row(self.publishing, Operation::Publish, message.id, self.details())
                    });
                    continue;
                }
            };
            summary.published += 1;
            let (mut latest, mut missing) = (Duration::ZERO, 0);
            for (receiver, arrived) in self.receivers.iter().zip(arrivals) {
                let Ok(arrived) = arrived else { continue };
                let (row, reach) = self.delivery(receiver, message.id, receipt, &arrived[column], summary);
                match reach {
                    Reach::Delivered(latency) => latest = latest.max(latency),
                    Reach::Unmeasurable => {}
                    Reach::Missing => missing += 1,
                }
                rows.push(row);
            }
            column += 1;
            let publish = PubsubDetails {
                topic_peers: Some(receipt.topic_peers),
                mesh_peers: Some(receipt.mesh_peers),
                ..self.details()
            };
            let row = Measurement {
                trace_id: receipt.trace_id.clone(),
                started_at: self.publishing.clock.to_ours(receipt.sent_at),
                ..self.row(self.publishing, Operation::Publish, message.id, publish)
            };
            rows.push(row.publish_reached(latest, missing, self.receivers.len(), self.config.deadline));
        }
        rows
    }

    /// The row of `receiver`'s copy of message `id`, counted in the summary.
    fn delivery(
        &self,
        receiver: &Participant,
        id: MessageId,
        receipt: &PublishReceipt,
        (arrival, span): &Arrival,
        summary: &mut PubsubRoundSummary,
    ) -> (Measurement, Reach) {
        let row = Measurement {
            trace_id: receipt.trace_id.clone(),
            started_at: self.publishing.clock.to_ours(receipt.sent_at),
            ..self.row(receiver, Operation::Delivery, id, self.details())
        };
        let Some(delivery) = arrival else {
            span.in_scope(|| tracing::info!("not delivered by the deadline"));
            summary.deliveries.missed();
            return (row.not_delivered(self.config.deadline), Reach::Missing);
        };
        let measured = delivery_latency(
            receipt.sent_at,
            self.publishing.clock,
            delivery.received_at,
            receiver.clock,
        );
        let bound = match &measured {
            Ok((_, bound)) => *bound,
            Err(clock_error) => clock_error.bound,
        };
        let details = PubsubDetails {
            copies: delivery.copies,
            first_from: Some(delivery.from.to_string()),
            clock_offset: Some(receiver.clock.offset),
            clock_uncertainty: Some(bound),
            ..self.details()
        };
        match measured {
            Err(clock_error) => {
                summary.deliveries.unmeasurable();
                span.in_scope(|| tracing::warn!(%clock_error, "unmeasurable copy"));
                let row = Measurement {
                    error: Some(clock_error.to_string()),
                    pubsub: Some(details),
                    ..row
                };
                (row, Reach::Unmeasurable)
            }
            Ok((latency, bound)) => {
                span.in_scope(|| {
                    tracing::info!(
                        latency_s = latency.as_secs_f64(),
                        clock_uncertainty_s = bound,
                        "delivered"
                    );
                });
                summary.deliveries.delivered(latency, delivery.copies);
                let row = Measurement {
                    duration: latency,
                    pubsub: Some(details),
                    ..row
                };
                (row, Reach::Delivered(latency))
            }
        }
    }

    /// The pubsub columns every row of the round shares.
    fn details(&self) -> PubsubDetails {
        PubsubDetails::new(&self.config.topic, self.config.message_bytes, RUST_LIBP2P)
    }

    /// A row of `participant` about message `id` (its time, duration and error to be set).
    fn row(
        &self,
        participant: &Participant,
        operation: Operation,
        id: MessageId,
        pubsub: PubsubDetails,
    ) -> Measurement {
        Measurement::pubsub(
            operation,
            self.round,
            &participant.fleet,
            participant.member.id,
            &id.to_string(),
            pubsub,
        )
    }
}

/// Mesh peers a participant needs before a round publishes, when it is connected to as many
/// subscribers: gossipsub's lowest mesh size (`mesh_n_low`) in go's defaults.
const FORMED_MESH: usize = 4;

/// Waits, at most `wait`, until every participant's mesh in `topic` has formed as [`MeshWatch`]
/// judges it (with [`FORMED_MESH`] peers); after `wait` the round publishes with the meshes it
/// has.
async fn await_mesh(
    participants: &[Participant<'_>],
    topic: &str,
    wait: Duration,
) -> Result<(), (NodeId, NodeError)> {
    let give_up = Instant::now() + wait;
    let mut watch = MeshWatch::new(FORMED_MESH);
    loop {
        // All asked at once: over HTTP a fleet's servers answer in one round trip, not in turn.
        let views = join_all(participants.iter().map(|participant| async move {
            participant
                .pubsub
                .topic
                .send(ViewTopic {
                    topic: topic.to_owned(),
                })
                .await
                .map_err(unavailable)
                .and_then(|view| view)
                .map_err(|e| (participant.member.id, e))
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let now = Instant::now();
        if watch.observe(&views, now) == MeshState::Formed || now >= give_up {
            return Ok(());
        }
        tokio::time::sleep(MESH_POLL).await;
    }
}

fn unavailable(e: actix::MailboxError) -> NodeError {
    NodeError::Unavailable(format!("node stopped: {e}"))
}
