//! Domain types shared by every actor: content identifiers, node ids, and the measurements
//! that travel from a DHT operation to the recorder.

use std::{fmt, str::FromStr, time::Duration};

use bytes::Bytes;
use cid::{multihash::Multihash, Cid};
use libp2p::kad::RecordKey;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Size of the random blob a scheduler publishes each round (parsec's choice).
pub const CONTENT_SIZE: usize = 1024;

/// Nearest-rank percentile of sorted values (`None` without values).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Multicodec code of SHA2-256, the only hash CIDv0 allows.
const SHA2_256: u64 = 0x12;

/// A content identifier as parsec uses it.
///
/// Content is addressed as CIDv0 (`Qm…`) over the SHA2-256 multihash of the bytes. Any CID
/// version is accepted when parsed: the DHT key is the multihash alone, so a CIDv1 of the
/// same content finds the same provider records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentId(Cid);

impl ContentId {
    /// The CIDv0 of `content`.
    pub fn for_content(content: &[u8]) -> Self {
        let digest = Sha256::digest(content);
        // A 32-byte digest always fits the 64-byte multihash, and SHA2-256 is what CIDv0 requires.
        let multihash = Multihash::<64>::wrap(SHA2_256, &digest).expect("32-byte digest fits");
        Self(Cid::new_v0(multihash).expect("sha2-256 multihash is a valid CIDv0"))
    }

    /// The Kademlia key under which provider records for this content live (the multihash bytes,
    /// as go-libp2p-kad-dht and every IPFS implementation use).
    pub fn record_key(&self) -> RecordKey {
        RecordKey::new(&self.0.hash().to_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A CID string that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid CID {input:?}: {reason}")]
pub struct InvalidCid {
    /// What was given.
    pub input: String,
    /// Why it is not a CID.
    pub reason: String,
}

impl FromStr for ContentId {
    type Err = InvalidCid;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Cid::from_str(input).map(Self).map_err(|e| InvalidCid {
            input: input.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// A fresh random blob of [`CONTENT_SIZE`] bytes, the content of one round.
pub fn random_content(rng: &mut impl RngCore) -> Bytes {
    let mut content = vec![0u8; CONTENT_SIZE];
    rng.fill_bytes(&mut content);
    content.into()
}

/// Identifies a node within the scheduler's view (the `nodes_ecs.id` once stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub i64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// Identifies one provide/retrieve round; every row of the round carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoundId(pub uuid::Uuid);

impl RoundId {
    /// A new random round id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for RoundId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a node does with its connections when one of its operations ends: whether the next
/// lookup may reuse connections to the peers the last one reached (docs/method.md, "Warm and cold
/// connections").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Connections {
    /// As parsec's Go servers: after a retrieval the connection to the provider it found is
    /// closed; every other connection (the peers that held the record, every hop) stays open.
    #[default]
    Warm,
    /// Once no other measured operation is in flight, every connection is closed (except those
    /// carrying the node's own background requests or its gossipsub meshes), so the next
    /// operation dials every peer afresh.
    Cold,
}

impl Connections {
    /// Both choices, in the order flags list them.
    pub const ALL: [Connections; 2] = [Self::Warm, Self::Cold];

    /// The name flags and rows use: `warm` or `cold`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Cold => "cold",
        }
    }
}

parsec_kad::impl_named!(Connections, "connections");

/// The operation a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Publishing a provider record.
    Provide,
    /// Looking up a provider record (time to first provider record).
    Retrieval,
    /// Publishing a pubsub message (until the last receiver had it).
    Publish,
    /// One receiver's first copy of a pubsub message.
    Delivery,
    /// A reprovide round: one node sent the records of all its CIDs again.
    Reprovide,
}

impl Operation {
    /// The step name parsec servers report for this operation.
    pub fn step(self) -> &'static str {
        match self {
            Operation::Provide => "provide",
            Operation::Retrieval => "retrieval",
            Operation::Publish => "publish",
            Operation::Delivery => "delivery",
            Operation::Reprovide => "reprovide",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.step())
    }
}

/// One measured step of an operation, as a parsec server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepMeasurement {
    /// Step name (`provide`, `retrieval`, or IPNI steps from other servers).
    pub step: String,
    /// How long the step took (monotonic clock).
    pub duration: Duration,
    /// What went wrong, if anything; the measurement is still a valid data point.
    pub error: Option<String>,
}

/// The answer of a node to a provide or retrieval: the parsec response body in domain form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationReport {
    /// The CID the node worked on, as the node printed it.
    pub cid: String,
    /// One entry per step (one for DHT servers).
    pub measurements: Vec<StepMeasurement>,
    /// Routing-table size right after the operation: peers we reached ourselves.
    pub routing_table_size: u64,
    /// The trace the request belonged to (32 hex digits), when the caller traced it.
    pub trace_id: Option<String>,
    /// For a provide: how many peers acknowledged the provider record (`None`: not known, e.g.
    /// from a parsec server, which does not say).
    pub record_peers: Option<u32>,
    /// What the node does with its connections after an operation (`None`: it does not say, as
    /// parsec's servers, which keep them warm).
    pub connections: Option<Connections>,
}

/// Whether a node can take provide/retrieve requests now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Ready means the routing table holds a peer we reached ourselves.
    pub ready: bool,
    /// Peers in the routing table that we reached ourselves.
    pub routing_table_size: u64,
    /// The node's libp2p peer id, when it says (parsec's servers do not).
    pub peer_id: Option<String>,
}

/// One row of measurement: what a node measured for one step of one operation in one round.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Unique per row; a write retried after an ambiguous failure stores the row once.
    pub id: uuid::Uuid,
    /// The round the row belongs to.
    pub round: RoundId,
    /// The fleet of the measuring node.
    pub fleet: String,
    /// The measuring node.
    pub node: NodeId,
    /// Provide or retrieval.
    pub operation: Operation,
    /// The CID, as the node reported it.
    pub cid: String,
    /// The step (`provide`, `retrieval`, or another server's step name).
    pub step: String,
    /// Which probe of the retrieval (0 for provides).
    pub probe: u32,
    /// Wall-clock start of the request (for joining with other data; durations are monotonic).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How long the step took.
    pub duration: Duration,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The node's routing-table size after the operation.
    pub routing_table_size: u64,
    /// The OpenTelemetry trace of the round (32 hex digits), when tracing is on.
    pub trace_id: Option<String>,
    /// For a provide: peers that acknowledged the record, when the node says.
    pub record_peers: Option<u32>,
    /// For a provide or retrieval: warm or cold connections, when the node says.
    pub connections: Option<Connections>,
    /// For a publish or a delivery: what pubsub rows hold beside the identity columns (`cid` then
    /// holds the message id).
    pub pubsub: Option<PubsubDetails>,
    /// For a reprovide round: its figures and walks (`cid` is then empty: a round reprovides
    /// many).
    pub reprovide: Option<Box<ReprovideDetails>>,
}

impl Measurement {
    /// A pubsub row of `operation` (a publish or a delivery) of `message` on `node` of `fleet`
    /// in `round`; the send time, duration and error are the caller's (`..Measurement::pubsub(…)`).
    pub fn pubsub(
        operation: Operation,
        round: RoundId,
        fleet: &str,
        node: NodeId,
        message: &str,
        details: PubsubDetails,
    ) -> Self {
        Measurement {
            id: uuid::Uuid::new_v4(),
            round,
            fleet: fleet.to_owned(),
            node,
            operation,
            cid: message.to_owned(),
            step: operation.step().to_owned(),
            probe: 0,
            started_at: chrono::Utc::now(),
            duration: Duration::ZERO,
            error: None,
            routing_table_size: 0,
            trace_id: None,
            record_peers: None,
            connections: None,
            pubsub: Some(details),
            reprovide: None,
        }
    }

    /// The row of a reprovide round that `node` of `fleet` ran in `round`, started at
    /// `started_at`; it lasted the round's duration, and `error` says why it did not count.
    pub fn reprovide(
        round: RoundId,
        fleet: &str,
        node: NodeId,
        started_at: chrono::DateTime<chrono::Utc>,
        error: Option<String>,
        details: ReprovideDetails,
    ) -> Self {
        Measurement {
            id: uuid::Uuid::new_v4(),
            round,
            fleet: fleet.to_owned(),
            node,
            operation: Operation::Reprovide,
            cid: String::new(),
            step: Operation::Reprovide.step().to_owned(),
            probe: 0,
            started_at,
            duration: details.round.duration,
            error,
            routing_table_size: 0,
            trace_id: None,
            record_peers: None,
            connections: None,
            pubsub: None,
            reprovide: Some(Box::new(details)),
        }
    }

    /// This publish row's outcome for its `receivers`: it lasts until the last first copy came
    /// (`latest`); a message `missing` of them never got by the deadline lasts the whole
    /// `deadline`, and the row says how many missed it.
    pub fn publish_reached(
        self,
        latest: Duration,
        missing: usize,
        receivers: usize,
        deadline: Duration,
    ) -> Self {
        let (duration, error) = match missing {
            0 => (latest, None),
            n => (
                deadline,
                Some(format!("not delivered to {n} of {receivers} peers")),
            ),
        };
        Measurement {
            duration,
            error,
            ..self
        }
    }

    /// This delivery row's copy did not come by the round's `deadline`.
    pub fn not_delivered(self, deadline: Duration) -> Self {
        Measurement {
            duration: deadline,
            error: Some(NOT_DELIVERED.to_owned()),
            ..self
        }
    }
}

/// What a reprovide round's row holds beyond the columns every measurement has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReprovideDetails {
    pub strategy: parsec_kad::reprovide::ReprovideStrategy,
    /// Provides (classic) or walks (sweep) at once.
    pub workers: u32,
    /// The round's totals and its walks.
    pub round: parsec_kad::reprovide::ReprovideRound,
    /// Where measured: connections the provider opened or accepted, bytes it wrote to its
    /// protocol streams, CPU and peak resident memory of its work.
    pub connections: Option<u64>,
    pub bytes_out: Option<u64>,
    pub cpu: Option<Duration>,
    pub peak_memory: Option<u64>,
    /// Afterwards: sampled CIDs and those another peer found; (sampled CID, true closest peer)
    /// pairs and those whose peer holds the record.
    pub sampled: u32,
    pub found: u32,
    pub placements: u32,
    pub placed: u32,
}

impl ReprovideDetails {
    fn share(part: u32, whole: u32) -> f64 {
        f64::from(part) / f64::from(whole.max(1))
    }

    /// The share of sampled CIDs another peer found.
    pub fn found_share(&self) -> f64 {
        Self::share(self.found, self.sampled)
    }

    /// The share of the sampled CIDs' true closest peers that hold the record.
    pub fn placed_share(&self) -> f64 {
        Self::share(self.placed, self.placements)
    }

    /// New connections per CID, where measured.
    pub fn connections_per_key(&self) -> Option<f64> {
        Some(self.connections? as f64 / self.round.keys.max(1) as f64)
    }

    /// Why the round does not count: it stored no record, or no sampled CID was found.
    pub fn failure(&self) -> Option<String> {
        if self.round.copies_stored == 0 {
            Some(format!("no peer stored any of the {} records", self.round.keys))
        } else if self.sampled > 0 && self.found == 0 {
            Some(format!(
                "no other peer found any of the {} sampled CIDs",
                self.sampled
            ))
        } else {
            None
        }
    }
}

/// What a pubsub measurement holds beyond the columns every measurement has.
#[derive(Clone, Debug, PartialEq)]
pub struct PubsubDetails {
    /// The topic.
    pub topic: String,
    /// The message's size.
    pub message_bytes: u32,
    /// Publish: subscribed peers the publisher knew, and its mesh peers, at the send.
    pub topic_peers: Option<u32>,
    pub mesh_peers: Option<u32>,
    /// Delivery: copies received, the first included (0: none).
    pub copies: u32,
    /// Delivery: the peer that forwarded the first copy (the publisher's id: one hop; gossipsub
    /// does not tell more).
    pub first_from: Option<String>,
    /// Delivery across processes: the receiver's clock minus the scheduler's, and the bound of
    /// that estimate's error, in seconds (`None`: one shared clock).
    pub clock_offset: Option<f64>,
    pub clock_uncertainty: Option<f64>,
    /// The receiver's (or publisher's) libp2p implementation.
    pub implementation: String,
}

impl PubsubDetails {
    /// A message of `message_bytes` on `topic`, seen by a peer of `implementation`; the figures of
    /// a publish or a delivery are set by the caller (`..PubsubDetails::new(…)`).
    pub fn new(topic: &str, message_bytes: usize, implementation: &str) -> Self {
        PubsubDetails {
            topic: topic.to_owned(),
            message_bytes: u32::try_from(message_bytes).unwrap_or(u32::MAX),
            topic_peers: None,
            mesh_peers: None,
            copies: 0,
            first_from: None,
            clock_offset: None,
            clock_uncertainty: None,
            implementation: implementation.to_owned(),
        }
    }
}

/// The error text parsec records when a DHT operation hits its deadline (the OpenAPI example).
pub const DEADLINE_EXCEEDED: &str = "context deadline exceeded";

/// The error text of a lookup that ended without any provider record (the OpenAPI contract).
pub const NOT_FOUND: &str = "not found";

/// The error text of a lookup in which no peer answered: nothing was measured about the network.
pub const NO_PEER_REACHED: &str = "reached no peer";

/// The error text of a delivery that did not come by the round's deadline.
pub const NOT_DELIVERED: &str = "not delivered";

/// The implementation our own peers' pubsub rows name.
pub const RUST_LIBP2P: &str = "rust-libp2p";

/// The error text of a provide whose record reached no peer (a provide that stored nothing is
/// not a success).
pub const STORED_AT_NO_PEER: &str = "provider record stored at no peer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_lasts_until_its_last_copy_or_the_deadline_if_one_was_missed() {
        let row = || {
            let details = PubsubDetails::new("t", 1024, RUST_LIBP2P);
            Measurement::pubsub(Operation::Publish, RoundId::new(), "f", NodeId(1), "m", details)
        };
        let (latest, deadline) = (Duration::from_millis(80), Duration::from_secs(10));
        let reached = row().publish_reached(latest, 0, 7, deadline);
        assert_eq!((reached.duration, reached.error), (latest, None));
        let missed = row().publish_reached(latest, 2, 7, deadline);
        assert_eq!(missed.duration, deadline);
        assert_eq!(missed.error.as_deref(), Some("not delivered to 2 of 7 peers"));
        let lost = row().not_delivered(deadline);
        assert_eq!(
            (lost.duration, lost.error.as_deref()),
            (deadline, Some(NOT_DELIVERED))
        );
    }

    #[test]
    fn cid_of_content_is_v0_and_roundtrips() {
        let cid = ContentId::for_content(b"hello parsec");
        let text = cid.to_string();
        assert!(text.starts_with("Qm"), "{text}");
        assert_eq!(text.parse::<ContentId>().unwrap(), cid);
    }

    #[test]
    fn cid_v1_of_same_content_has_the_same_record_key() {
        let v0 = ContentId::for_content(b"abc");
        let v1 = Cid::new_v1(0x70, *v0.0.hash());
        let parsed: ContentId = v1.to_string().parse().unwrap();
        assert!(v1.to_string().starts_with('b'));
        assert_eq!(parsed.record_key(), v0.record_key());
    }

    #[test]
    fn known_answer_cid_of_hello() {
        // base58btc of 0x12 0x20 ‖ sha256("hello"), computed independently (the README's example).
        assert_eq!(
            ContentId::for_content(b"hello").to_string(),
            "QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5"
        );
    }

    #[test]
    fn garbage_is_not_a_cid() {
        let err = "not-a-cid".parse::<ContentId>().unwrap_err();
        assert_eq!(err.input, "not-a-cid");
    }

    #[test]
    fn known_sha256_cid() {
        // `echo -n "" | ipfs add --only-hash --raw-leaves=false` differs (UnixFS); the raw
        // multihash of the empty string is the well-known e3b0c442… digest.
        let cid = ContentId::for_content(b"");
        assert_eq!(
            cid.0.hash().digest(),
            &hex_literal_empty_sha256()[..],
            "digest of empty input"
        );
    }

    fn hex_literal_empty_sha256() -> [u8; 32] {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
