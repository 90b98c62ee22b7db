//! Gossipsub beside the DHT: a peer's pubsub settings, the messages a round publishes, and what a
//! receiver reports about one it got.
//!
//! A peer speaks gossipsub when its [`DhtConfig`](crate::DhtConfig) has a [`PubsubConfig`]; the
//! same swarm task then owns both protocols, and [`DhtHandle`](crate::DhtHandle) subscribes,
//! publishes and waits for deliveries.

pub mod clock;
pub mod mesh;
mod tally;

use std::{fmt, str::FromStr, time::Duration};

use bytes::Bytes;
use libp2p::PeerId;
use rand::RngCore;
use tokio::time::Instant;

pub use self::tally::DeliveryTally;

/// Bytes a message starts with: its id (a UUID), so every implementation derives the same id.
pub const MESSAGE_ID_BYTES: usize = 16;

/// Largest gossipsub frame a peer accepts (gossipsub's default transmit limit, which rust-libp2p
/// receivers enforce on the whole RPC; go and js accept 1 MiB). A message's payload must leave
/// room for its envelope: see [`FrameShape`].
pub const MAX_MESSAGE_BYTES: usize = 65_536;

/// The largest frame (length prefix included) a message may travel in: rust-libp2p receivers
/// (0.50) hold every byte buffered from the stream to [`MAX_MESSAGE_BYTES`] before decoding a
/// frame, so the frames that follow a large one in the same read count against it; 1 KiB is
/// left for them (control messages, a small message).
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES - 1024;

/// The envelope gossipsub wraps a published message in (author, sequence number, topic,
/// signature, and the public key when the peer id cannot carry it), so that what crosses the
/// wire, the RPC frame a receiver checks against [`MAX_MESSAGE_BYTES`], is known before sending.
/// A message is sent only when its frame is at most [`MAX_FRAME_BYTES`].
/// (rust-libp2p's `publish` checks only the payload: a message that fits but whose frame does not
/// is accepted, then refused by every receiver, which resets the stream.)
#[derive(Clone, Debug)]
pub struct FrameShape {
    source: Option<PeerId>,
    signature_bytes: usize,
    key: Option<Vec<u8>>,
}

impl FrameShape {
    /// The frames `keypair`'s messages travel in under `validation` (anonymous: no author,
    /// sequence number or signature; every other mode signs).
    pub fn new(keypair: &libp2p::identity::Keypair, validation: Validation) -> Self {
        use libp2p::identity::KeyType;
        if validation == Validation::Anonymous {
            return Self {
                source: None,
                signature_bytes: 0,
                key: None,
            };
        }
        let signed = keypair.sign(b"").map_or(0, |signature| signature.len());
        // ECDSA signatures are DER, 70 to 72 bytes: count the longest.
        let signature_bytes = match keypair.key_type() {
            KeyType::Secp256k1 | KeyType::Ecdsa => signed.max(72),
            _ => signed,
        };
        // gossipsub sends the key unless the peer id inlines it (an encoding of 42 bytes at most).
        let encoded = keypair.public().encode_protobuf();
        Self {
            source: Some(keypair.public().to_peer_id()),
            signature_bytes,
            key: (encoded.len() > 42).then_some(encoded),
        }
    }

    /// Bytes of the RPC frame, length prefix included, that carries a `payload`-byte message on
    /// `topic`.
    pub fn frame_bytes(&self, topic: &str, payload: usize) -> usize {
        let empty = libp2p::gossipsub::RawMessage {
            source: self.source,
            data: Vec::new(),
            sequence_number: self.source.map(|_| u64::MAX),
            topic: libp2p::gossipsub::TopicHash::from_raw(topic),
            signature: (self.signature_bytes > 0).then(|| vec![0; self.signature_bytes]),
            key: self.key.clone(),
            validated: false,
        }
        .raw_protobuf_len();
        // The empty data field is a tag and a one-byte length; the message is one `publish`
        // entry of the RPC: a tag, its length, itself.
        let message = empty - 1 + varint_bytes(payload) + payload;
        let rpc = 1 + varint_bytes(message) + message;
        varint_bytes(rpc) + rpc
    }

    /// The largest payload whose frame on `topic` fits [`MAX_FRAME_BYTES`].
    pub fn largest_payload(&self, topic: &str) -> usize {
        let (mut fits, mut too_big) = (0, MAX_FRAME_BYTES + 1);
        // Bounded: the interval halves each time (17 steps).
        while too_big - fits > 1 {
            let middle = fits + (too_big - fits) / 2;
            if self.frame_bytes(topic, middle) <= MAX_FRAME_BYTES {
                fits = middle;
            } else {
                too_big = middle;
            }
        }
        fits
    }
}

/// Refuses `payload`-byte messages shorter than their id, or on `topic` whose frame would not fit
/// when published by a peer
/// with an ed25519 key (parsec's servers and testnet hosts), naming the largest that does: the
/// check of a flag, before anything starts. A server with another key type checks its own
/// frames when it publishes (HTTP 413).
pub fn check_message_bytes(payload: usize, topic: &str, validation: Validation) -> Result<(), String> {
    if payload < MESSAGE_ID_BYTES {
        return Err(format!(
            "at least {MESSAGE_ID_BYTES} bytes (a message starts with its id, as the API requires)"
        ));
    }
    let frame = FrameShape::new(&libp2p::identity::Keypair::generate_ed25519(), validation);
    let largest = frame.largest_payload(topic);
    if payload <= largest {
        return Ok(());
    }
    Err(format!(
        "at most {largest} bytes: a {payload}-byte message makes a {}-byte gossipsub frame on topic {topic:?}, \
         over the {MAX_FRAME_BYTES} bytes a frame may have (receivers refuse 65,536 bytes of buffered frames; \
         validation {validation})",
        frame.frame_bytes(topic, payload)
    ))
}

/// Bytes of `n` as a protobuf varint.
fn varint_bytes(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// How a peer checks the author, sequence number and signature of the messages it receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Validation {
    /// Signed by its author, with a sequence number (the spec's default).
    #[default]
    Strict,
    /// Checks what is there; accepts messages without author or signature.
    Permissive,
    /// Requires that messages carry no author, sequence number or signature.
    Anonymous,
    /// Checks nothing.
    None,
}

impl Validation {
    /// Every mode, as flags name them.
    pub const ALL: [Validation; 4] = [Self::Strict, Self::Permissive, Self::Anonymous, Self::None];

    /// The name flags use: `strict`, `permissive`, `anonymous`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Permissive => "permissive",
            Self::Anonymous => "anonymous",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Validation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| {
            format!("unknown validation mode {s:?}: expected strict, permissive, anonymous or none")
        })
    }
}

/// Gossipsub's parameters. Defaults follow the gossipsub v1.1 specification: D = 6, D_lo = 4,
/// D_hi = 12, a heartbeat every second, flood publishing, strict signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PubsubConfig {
    /// D: the mesh degree each peer aims for per topic.
    pub mesh_n: usize,
    /// D_lo: below this many mesh peers the heartbeat grafts more.
    pub mesh_n_low: usize,
    /// D_hi: above this many it prunes.
    pub mesh_n_high: usize,
    /// How often meshes are maintained and gossip is emitted.
    pub heartbeat: Duration,
    /// Send our own messages to every subscribed peer we know, not only the mesh.
    pub flood_publish: bool,
    /// How received messages are checked.
    pub validation: Validation,
    /// The most topics a remote peer may be subscribed to with us (and announce in one RPC);
    /// subscriptions past it are ignored. gossipsub's default filter allows 100.
    pub max_peer_topics: usize,
    /// Dial a peer that shares one of our topics again when its last connection closed without
    /// our asking (servers); off where hosts leave on purpose (a testnet's churn).
    pub keep_topic_peers_connected: bool,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        Self {
            mesh_n: 6,
            mesh_n_low: 4,
            mesh_n_high: 12,
            heartbeat: Duration::from_secs(1),
            flood_publish: true,
            validation: Validation::Strict,
            max_peer_topics: 100,
            keep_topic_peers_connected: true,
        }
    }
}

impl PubsubConfig {
    /// Why these parameters cannot run, if they cannot, said as a flag user would fix it.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=self.mesh_n).contains(&self.mesh_n_low) || self.mesh_n > self.mesh_n_high {
            return Err(format!(
                "the mesh degrees must satisfy 1 ≤ D_lo ≤ D ≤ D_hi (got D_lo {}, D {}, D_hi {})",
                self.mesh_n_low, self.mesh_n, self.mesh_n_high
            ));
        }
        if self.heartbeat.is_zero() {
            return Err("the heartbeat interval must be positive".to_owned());
        }
        if self.max_peer_topics == 0 {
            return Err("a peer must be allowed at least one topic".to_owned());
        }
        Ok(())
    }

    /// Sets D_lo, D and D_hi.
    pub fn set_mesh(&mut self, low: usize, n: usize, high: usize) -> &mut Self {
        (self.mesh_n_low, self.mesh_n, self.mesh_n_high) = (low, n, high);
        self
    }

    /// Sets the heartbeat interval.
    pub fn set_heartbeat(&mut self, heartbeat: Duration) -> &mut Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Turns flood publishing on or off.
    pub fn set_flood_publish(&mut self, flood: bool) -> &mut Self {
        self.flood_publish = flood;
        self
    }

    /// Sets the validation mode.
    pub fn set_validation(&mut self, validation: Validation) -> &mut Self {
        self.validation = validation;
        self
    }

    /// Sets the most topics a remote peer may be subscribed to with us.
    pub fn set_max_peer_topics(&mut self, topics: usize) -> &mut Self {
        self.max_peer_topics = topics;
        self
    }
}

/// The id of one published message: a UUID its payload starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub uuid::Uuid);

impl MessageId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The id a payload starts with (`None`: too short to carry one).
    pub fn of_payload(payload: &[u8]) -> Option<Self> {
        let bytes: [u8; MESSAGE_ID_BYTES] = payload.get(..MESSAGE_ID_BYTES)?.try_into().ok()?;
        Some(Self(uuid::Uuid::from_bytes(bytes)))
    }

    /// A payload of `size` bytes (at least the id): the id, then random bytes.
    pub fn payload(self, size: usize, rng: &mut impl RngCore) -> Bytes {
        let mut payload = vec![0u8; size.max(MESSAGE_ID_BYTES)];
        payload[..MESSAGE_ID_BYTES].copy_from_slice(self.0.as_bytes());
        rng.fill_bytes(&mut payload[MESSAGE_ID_BYTES..]);
        payload.into()
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message a peer received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// When the first copy arrived (monotonic clock of this process).
    pub received_at: Instant,
    /// The peer that forwarded the first copy.
    pub from: PeerId,
    /// Copies received so far, the first included (duplicates are `copies - 1`).
    pub copies: u32,
}

/// What publishing a message did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Just before the message was handed to gossipsub (monotonic clock of this process).
    pub sent_at: Instant,
    /// Peers we know to be subscribed to the topic (flood publish sends to all of them).
    pub topic_peers: usize,
    /// Peers in our mesh of the topic.
    pub mesh_peers: usize,
}

/// A peer's view of one topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicPeers {
    /// Connected peers subscribed to it.
    pub subscribed: usize,
    /// Of them, those in our mesh.
    pub mesh: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_its_id_and_its_size() {
        let id = MessageId::new();
        let payload = id.payload(100, &mut rand::thread_rng());
        assert_eq!(payload.len(), 100);
        assert_eq!(MessageId::of_payload(&payload), Some(id));
        assert_eq!(id.payload(3, &mut rand::thread_rng()).len(), MESSAGE_ID_BYTES);
        assert_eq!(MessageId::of_payload(&[1, 2, 3]), None);
    }

    #[test]
    fn the_defaults_are_the_specs_and_bad_degrees_are_refused() {
        let config = PubsubConfig::default();
        assert_eq!((config.mesh_n_low, config.mesh_n, config.mesh_n_high), (4, 6, 12));
        assert!(config.check().is_ok());
        let mut bad = config.clone();
        bad.set_mesh(7, 6, 12);
        assert!(bad.check().unwrap_err().contains("D_lo ≤ D"), "{:?}", bad.check());
        bad.set_mesh(1, 1, 1);
        assert!(bad.check().is_ok());
        bad.set_mesh(0, 1, 1);
        assert!(bad.check().is_err());
        assert_eq!("permissive".parse(), Ok(Validation::Permissive));
        assert!("lax".parse::<Validation>().unwrap_err().contains("strict"));
    }
}
