//! One pubsub round over a fleet's members, as [`RunPubsubRound`] asks: every ready member that
//! speaks pubsub subscribes to the topic, each one's clock is probed, one member publishes the
//! round's messages and every other one reports when each first arrived. Latencies cross two
//! clocks, so each is corrected by both offsets, and the rows keep the bound of that correction.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::FleetMember;
use crate::{
    pubsub::{
        clock::{delivery_latency, ClockOffset},
        node::{
            AwaitMessage, ProbeClock, PublishMessage, PublishReceipt, PubsubRecipients, SubscribeTopic,
            ViewTopic,
        },
        MessageId,
    },
    Measurement, NodeError, NodeId, Operation, PubsubDetails, RecordMeasurement, RoundId, NOT_DELIVERED,
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
    /// First copies expected, and those that came by the deadline.
    pub expected: usize,
    pub delivered: usize,
    /// The corrected latency of every delivery (for the metrics).
    pub latencies: Vec<Duration>,
    /// Copies beyond the first, over all deliveries.
    pub duplicates: u64,
    /// Copies that came, but before their send by the corrected clocks beyond the bounds: not
    /// delivered in 0 s, but unmeasurable (their rows say `clock error: …`).
    pub clock_errors: usize,
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
    let mut participants = Vec::new();
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
    let Some(publisher) = publisher_index else {
        return;
    };
    let span = tracing::info_span!("pubsub round", %round, publisher = %participants[publisher].member.id);
    let _entered = span.enter();
    if let Err((id, e)) = await_mesh(&participants, &config.topic, config.mesh_wait).await {
        summary.failures.push((id, e));
        return;
    }

    // Publish, one after the other.
    let started = Instant::now();
    let mut sent: Vec<(MessageId, Result<PublishReceipt, String>, tracing::Span)> = Vec::new();
    for _ in 0..config.messages {
        let id = MessageId::new();
        // One trace per message: a root span, continued by the publishing server, with a child
        // per receiver.
        let message_span = tracing::info_span!(
            parent: None,
            "pubsub.message",
            message = %id,
            topic = %config.topic,
            %round,
            publisher = %participants[publisher].member.id
        );
        let request = PublishMessage {
            topic: config.topic.clone(),
            id,
            bytes: config.message_bytes,
            span: message_span.clone(),
        };
        match participants[publisher]
            .pubsub
            .publish
            .send(request)
            .await
            .map_err(unavailable)
        {
            Ok(Ok(receipt)) => sent.push((id, Ok(receipt), message_span)),
            // gossipsub refused it (nobody subscribed known): a measurement, not a failure.
            Ok(Err(NodeError::Rejected { status: 503, body }))
            | Ok(Err(NodeError::Dht(crate::DhtError::Pubsub(body)))) => {
                message_span.in_scope(|| tracing::info!(reason = %body, "not published"));
                sent.push((id, Err(body), message_span));
            }
            Ok(Err(e)) | Err(e) => {
                summary.failures.push((participants[publisher].member.id, e));
                break;
            }
        }
    }
    let deadline = started + config.deadline;

    // Every other participant waits for each message in turn, until the deadline.
    let receivers: Vec<&Participant> = participants
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != publisher)
        .map(|(_, p)| p)
        .collect();
    let published: Vec<(MessageId, &tracing::Span)> = sent
        .iter()
        .filter(|(_, r, _)| r.is_ok())
        .map(|(id, _, span)| (*id, span))
        .collect();
    // Per receiver and published message: its first copy, if any, and the receiver's span of the
    // message's trace.
    let arrivals = join_all(receivers.iter().map(|receiver| {
        let published = &published;
        async move {
            let mut arrived = Vec::with_capacity(published.len());
            for (id, message_span) in published {
                let span = tracing::info_span!(
                    parent: *message_span,
                    "pubsub.delivery",
                    receiver = %receiver.member.id,
                    server = %receiver.member.name
                );
                let wait = deadline.saturating_duration_since(Instant::now());
                let answer = receiver
                    .pubsub
                    .await_message
                    .send(AwaitMessage {
                        id: *id,
                        wait,
                        span: span.clone(),
                    })
                    .await;
                match answer.map_err(unavailable) {
                    Ok(Ok(delivery)) => arrived.push((delivery, span)),
                    Ok(Err(e)) | Err(e) => return Err(e),
                }
            }
            Ok(arrived)
        }
    }))
    .await;

    // Rows: a publish per message, a delivery per receiver that answered.
    let publishing = &participants[publisher];
    let details = |topic: &str| PubsubDetails::new(topic, config.message_bytes, "rust-libp2p");
    let row = |participant: &Participant,
               operation: Operation,
               id: MessageId,
               started_at,
               duration,
               error,
               pubsub| Measurement {
        started_at,
        duration,
        error,
        ..Measurement::pubsub(
            operation,
            round,
            &participant.fleet,
            participant.member.id,
            &id.to_string(),
            pubsub,
        )
    };
    let mut rows = Vec::new();
    let mut column = 0;
    for (id, result, _) in &sent {
        let receipt = match result {
            Ok(receipt) => receipt,
            Err(reason) => {
                summary.refused += 1;
                let at = publishing.clock.to_ours(chrono::Utc::now());
                rows.push(row(
                    publishing,
                    Operation::Publish,
                    *id,
                    at,
                    Duration::ZERO,
                    Some(reason.clone()),
                    details(&config.topic),
                ));
                continue;
            }
        };
        summary.published += 1;
        let sent_at = publishing.clock.to_ours(receipt.sent_at);
        let mut latest = Duration::ZERO;
        let mut missing = 0;
        for (receiver, arrived) in receivers.iter().zip(&arrivals) {
            let Ok(arrived) = arrived else { continue };
            summary.expected += 1;
            let (arrival, span) = &arrived[column];
            let (duration, error, delivery) = match arrival {
                Some(delivery) => {
                    let measured = delivery_latency(
                        receipt.sent_at,
                        publishing.clock,
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
                        ..details(&config.topic)
                    };
                    match measured {
                        Err(clock_error) => {
                            summary.clock_errors += 1;
                            span.in_scope(|| tracing::warn!(%clock_error, "unmeasurable copy"));
                            (Duration::ZERO, Some(clock_error.to_string()), details)
                        }
                        Ok((latency, bound)) => {
                            span.in_scope(|| {
                                tracing::info!(
                                    latency_s = latency.as_secs_f64(),
                                    clock_uncertainty_s = bound,
                                    "delivered"
                                );
                            });
                            latest = latest.max(latency);
                            summary.delivered += 1;
                            summary.latencies.push(latency);
                            summary.duplicates += u64::from(delivery.copies.saturating_sub(1));
                            (latency, None, details)
                        }
                    }
                }
                None => {
                    missing += 1;
                    span.in_scope(|| tracing::info!("not delivered by the deadline"));
                    (
                        config.deadline,
                        Some(NOT_DELIVERED.to_owned()),
                        details(&config.topic),
                    )
                }
            };
            rows.push(Measurement {
                trace_id: receipt.trace_id.clone(),
                ..row(
                    receiver,
                    Operation::Delivery,
                    *id,
                    sent_at,
                    duration,
                    error,
                    delivery,
                )
            });
        }
        column += 1;
        let error = (missing > 0).then(|| format!("not delivered to {missing} of {} peers", receivers.len()));
        let duration = if missing > 0 { config.deadline } else { latest };
        let publish = PubsubDetails {
            topic_peers: Some(receipt.topic_peers),
            mesh_peers: Some(receipt.mesh_peers),
            ..details(&config.topic)
        };
        rows.push(Measurement {
            trace_id: receipt.trace_id.clone(),
            ..row(
                publishing,
                Operation::Publish,
                *id,
                sent_at,
                duration,
                error,
                publish,
            )
        });
    }
    for (receiver, arrived) in receivers.iter().zip(arrivals) {
        if let Err(e) = arrived {
            summary.failures.push((receiver.member.id, e));
        }
    }
    for measurement in rows {
        recorder.do_send(RecordMeasurement(measurement));
    }
}

/// How often the publisher's view of the topic is read while its mesh forms.
const MESH_POLL: Duration = Duration::from_millis(100);

/// Mesh peers a participant needs before a round publishes, when it is connected to as many
/// subscribers: gossipsub's lowest mesh size (`mesh_n_low`) in go's defaults.
const FORMED_MESH: usize = 4;

/// Waits up to `wait` until `publisher` has a mesh peer in `topic` (it publishes anyway after).
/// Waits, at most `wait`, until every participant has its mesh in `topic`: at least one peer, and
/// [`FORMED_MESH`] or every subscribed peer it is connected to, whichever is fewer. Publishing
/// earlier measures the mesh forming, not delivery: a receiver whose subscription its neighbours
/// have not seen yet gets nothing, and gossip repeats only the last heartbeats' messages. After
/// `wait` the round publishes with the meshes it has.
async fn await_mesh(
    participants: &[Participant<'_>],
    topic: &str,
    wait: Duration,
) -> Result<(), (NodeId, NodeError)> {
    let give_up = Instant::now() + wait;
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
        .await;
        let mut formed = true;
        for view in views {
            let view = view?;
            formed &= view.mesh > 0 && view.mesh >= view.subscribed.min(FORMED_MESH);
        }
        if formed || Instant::now() >= give_up {
            return Ok(());
        }
        tokio::time::sleep(MESH_POLL).await;
    }
}

fn unavailable(e: actix::MailboxError) -> NodeError {
    NodeError::Unavailable(format!("node stopped: {e}"))
}
