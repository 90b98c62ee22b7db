//! The swarm task's side of gossipsub: the behaviour built from a [`PubsubConfig`], the copies of
//! each message counted, and first deliveries kept for the callers that wait for them.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use libp2p::{
    gossipsub::{
        self, AllowAllSubscriptionFilter, IdentTopic, MaxCountSubscriptionFilter, MessageAuthenticity,
        ValidationMode,
    },
    identity::Keypair,
    PeerId,
};
use tokio::{sync::oneshot, time::Instant};

use crate::{
    pubsub::{Delivery, MessageId, PubsubConfig, Validation, MAX_MESSAGE_BYTES},
    DhtError,
};

/// Messages whose copies and deliveries a peer remembers; older ones are forgotten first. A round
/// asks about its messages within seconds, long before this many more arrive.
const REMEMBERED_MESSAGES: usize = 16_384;

/// Callers waiting for deliveries at once; past it a new waiter is refused.
const MAX_WAITERS: usize = 65_536;

/// Builds gossipsub from `config`. Message ids are the UUID a payload starts with, so that every
/// peer (and every implementation) names a message alike; `copies` counts every copy received.
pub(crate) fn behaviour(
    keypair: &Keypair,
    config: &PubsubConfig,
    copies: CopyCounter,
) -> Result<gossipsub::Behaviour, DhtError> {
    config.check().map_err(DhtError::Setup)?;
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .mesh_n_low(config.mesh_n_low)
        .mesh_n(config.mesh_n)
        .mesh_n_high(config.mesh_n_high)
        // The spec's D_out = 2, kept within what the smaller meshes allow.
        .mesh_outbound_min(2.min(config.mesh_n_low).min(config.mesh_n / 2))
        .heartbeat_interval(config.heartbeat)
        .flood_publish(config.flood_publish)
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .validation_mode(match config.validation {
            Validation::Strict => ValidationMode::Strict,
            Validation::Permissive => ValidationMode::Permissive,
            Validation::Anonymous => ValidationMode::Anonymous,
            Validation::None => ValidationMode::None,
        })
        .message_id_fn(move |message: &gossipsub::Message| {
            match MessageId::of_payload(&message.data) {
                Some(id) => {
                    copies.count(id);
                    gossipsub::MessageId::new(id.0.as_bytes())
                }
                // Not one of ours: gossipsub's own default (author and sequence number).
                None => {
                    let mut id = message.source.map(|p| p.to_bytes()).unwrap_or_default();
                    id.extend(message.sequence_number.unwrap_or_default().to_be_bytes());
                    gossipsub::MessageId::new(&id)
                }
            }
        });
    let gossip_config = builder
        .build()
        .map_err(|e| DhtError::Setup(format!("gossipsub: {e}")))?;
    let authenticity = match config.validation {
        Validation::Anonymous => MessageAuthenticity::Anonymous,
        _ => MessageAuthenticity::Signed(keypair.clone()),
    };
    gossipsub::Behaviour::new_with_subscription_filter(
        authenticity,
        gossip_config,
        // gossipsub's default filter with the cap as a setting; its refusals are ERROR lines that
        // the log's rate limit (telemetry) thins out.
        MaxCountSubscriptionFilter {
            filter: AllowAllSubscriptionFilter {},
            max_subscribed_topics: config.max_peer_topics,
            max_subscriptions_per_request: config.max_peer_topics,
        },
    )
    .map_err(|e| DhtError::Setup(format!("gossipsub: {e}")))
}

/// The topic a name stands for (its hash is the name itself, as go and js hash by default).
pub(crate) fn topic(name: &str) -> IdentTopic {
    IdentTopic::new(name)
}

/// Copies received per message, counted by the message-id function, which gossipsub calls for
/// every message that arrives (duplicates included, before it drops them) and once for each we
/// publish. Shared between the behaviour's closure and the swarm task, on the same thread.
#[derive(Clone, Default)]
pub(crate) struct CopyCounter(Arc<Mutex<Bounded<u32>>>);

impl CopyCounter {
    fn count(&self, id: MessageId) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(id) += 1;
    }

    fn get(&self, id: MessageId) -> u32 {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(id).copied().unwrap_or(0)
    }
}

/// A caller waiting for a delivery.
pub(crate) type Waiter = oneshot::Sender<Result<Delivery, DhtError>>;

/// First deliveries of the messages this peer received, and who waits for which.
#[derive(Default)]
pub(crate) struct Deliveries {
    copies: CopyCounter,
    delivered: Bounded<(Instant, PeerId)>,
    waiting: HashMap<MessageId, Vec<Waiter>>,
    waiters: usize,
}

impl Deliveries {
    /// The counter gossipsub's message-id function feeds.
    pub(crate) fn counter(&self) -> CopyCounter {
        self.copies.clone()
    }

    /// A message arrived (gossipsub reports only the first copy).
    pub(crate) fn on_message(&mut self, message: &gossipsub::Message, from: PeerId) {
        let Some(id) = MessageId::of_payload(&message.data) else {
            return;
        };
        let received_at = Instant::now();
        self.delivered.insert(id, (received_at, from));
        if let Some(waiters) = self.waiting.remove(&id) {
            self.waiters -= waiters.len();
            let delivery = self.delivery(id).expect("just delivered");
            for waiter in waiters {
                let _ = waiter.send(Ok(delivery));
            }
        }
    }

    /// Answers `reply` with the delivery of `id` now if it came, or once it comes. The caller
    /// bounds the wait; a waiter it dropped is cleared when the message arrives or on `prune`.
    pub(crate) fn wait(&mut self, id: MessageId, reply: Waiter) {
        if let Some(delivery) = self.delivery(id) {
            let _ = reply.send(Ok(delivery));
            return;
        }
        if self.waiters >= MAX_WAITERS {
            self.prune();
            if self.waiters >= MAX_WAITERS {
                let _ = reply.send(Err(DhtError::Busy { limit: MAX_WAITERS }));
                return;
            }
        }
        self.waiting.entry(id).or_default().push(reply);
        self.waiters += 1;
    }

    /// What this peer knows of message `id`: its first delivery and the copies since.
    pub(crate) fn delivery(&self, id: MessageId) -> Option<Delivery> {
        let (received_at, from) = *self.delivered.get(id)?;
        Some(Delivery {
            received_at,
            from,
            copies: self.copies.get(id).max(1),
        })
    }

    /// Drops the waiters whose callers gave up.
    fn prune(&mut self) {
        self.waiting.retain(|_, waiters| {
            waiters.retain(|w| !w.is_closed());
            !waiters.is_empty()
        });
        self.waiters = self.waiting.values().map(Vec::len).sum();
    }
}

/// A map of the last [`REMEMBERED_MESSAGES`] message ids to a value, the oldest forgotten first.
struct Bounded<T> {
    values: HashMap<MessageId, T>,
    order: VecDeque<MessageId>,
}

impl<T: Default> Bounded<T> {
    fn entry(&mut self, id: MessageId) -> &mut T {
        if !self.values.contains_key(&id) {
            self.make_room();
            self.order.push_back(id);
        }
        self.values.entry(id).or_default()
    }
}

impl<T> Bounded<T> {
    fn insert(&mut self, id: MessageId, value: T) {
        if !self.values.contains_key(&id) {
            self.make_room();
            self.order.push_back(id);
        }
        self.values.insert(id, value);
    }

    fn get(&self, id: MessageId) -> Option<&T> {
        self.values.get(&id)
    }

    fn make_room(&mut self) {
        while self.order.len() >= REMEMBERED_MESSAGES {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }
}

impl<T> Default for Bounded<T> {
    fn default() -> Self {
        Self {
            values: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: MessageId) -> gossipsub::Message {
        gossipsub::Message {
            source: None,
            data: id.payload(64, &mut rand::thread_rng()).to_vec(),
            sequence_number: None,
            topic: topic("t").hash(),
        }
    }

    #[tokio::test]
    async fn a_waiter_gets_the_first_delivery_with_the_copies_counted() {
        let mut deliveries = Deliveries::default();
        let counter = deliveries.counter();
        let (id, from) = (MessageId::new(), PeerId::random());
        let (reply, answer) = oneshot::channel();
        deliveries.wait(id, reply);
        counter.count(id);
        deliveries.on_message(&message(id), from);
        let delivery = answer.await.unwrap().unwrap();
        assert_eq!((delivery.from, delivery.copies), (from, 1));
        counter.count(id);
        counter.count(id);
        assert_eq!(deliveries.delivery(id).unwrap().copies, 3);
        // Asked after it came: answered at once, with the same first arrival.
        let (reply, answer) = oneshot::channel();
        deliveries.wait(id, reply);
        assert_eq!(answer.await.unwrap().unwrap().received_at, delivery.received_at);
    }

    #[test]
    fn old_messages_are_forgotten_first() {
        let mut bounded = Bounded::<u32>::default();
        let first = MessageId::new();
        *bounded.entry(first) += 1;
        for _ in 0..REMEMBERED_MESSAGES {
            *bounded.entry(MessageId::new()) += 1;
        }
        assert_eq!(bounded.get(first), None);
        assert_eq!(bounded.values.len(), REMEMBERED_MESSAGES);
    }
}
