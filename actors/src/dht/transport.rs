//! The transport stack of a DHT peer: TCP, QUIC-v1 and in-process memory, all with optional
//! emulated latency. The listen address decides which one a connection uses, so one stack
//! serves `parsec server dht` (TCP + QUIC on one port) and every testnet mode.

use std::{sync::Arc, time::Duration};

use futures::{future::Either, FutureExt};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig};
use libp2p::{
    core::{
        muxing::StreamMuxerBox,
        transport::{Boxed, MemoryTransport, OrTransport},
        upgrade::Version,
    },
    identity::Keypair,
    noise, quic, tcp, yamux, PeerId, Transport,
};

use super::{
    load::{MeteredMuxer, PeerLoad},
    wan_delay::{DelayedMuxer, DelayedStream, QUIC_HANDSHAKE_RTTS},
};
use crate::{DhtConfig, DhtError, LinkConditions};

/// Upper bound on a connection's security and muxer negotiation.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// Round trips a TCP (or memory) connection set-up costs: the TCP handshake, then noise's, with
/// the multistream-select negotiations folded in (`V1Lazy`).
const STREAM_HANDSHAKE_RTTS: u32 = 2;

/// A connection to `remote` under the testnet's [`LinkConditions`]: it pays the pair's set-up
/// round trips and then its delay on every substream, or fails as a dial to a peer that never
/// answers does. The handshake itself ran undelayed: the remote's identity is known only after it.
async fn apply_link_conditions(
    conditions: Option<Arc<dyn LinkConditions>>,
    local: PeerId,
    remote: PeerId,
    handshake_rtts: u32,
    muxer: StreamMuxerBox,
) -> Result<(PeerId, StreamMuxerBox), std::io::Error> {
    let Some(conditions) = conditions else {
        return Ok((remote, muxer));
    };
    if let Some(after) = conditions.failure(&local, &remote) {
        tokio::time::sleep(after).await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{remote} does not answer (emulated link conditions)"),
        ));
    }
    let rtt = conditions.round_trip(&local, &remote);
    tokio::time::sleep(rtt * handshake_rtts).await;
    Ok((remote, StreamMuxerBox::new(DelayedMuxer::new(muxer, rtt / 2))))
}

/// Builds the transport of `config` (its emulated latency and DNS settings), counting bytes into
/// `load`.
pub(crate) fn build(
    keypair: &Keypair,
    config: &DhtConfig,
    load: Arc<PeerLoad>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, DhtError> {
    let rtt = config.latency.unwrap_or_default();
    let one_way = rtt / 2;
    let noise = noise::Config::new(keypair).map_err(|e| DhtError::Setup(e.to_string()))?;

    let streams = OrTransport::new(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
        MemoryTransport::default(),
    )
    .map(move |stream, _| DelayedStream::new(stream, one_way))
    .upgrade(Version::V1Lazy)
    .authenticate(noise)
    .multiplex(yamux::Config::default())
    .timeout(UPGRADE_TIMEOUT);

    let quic =
        quic::tokio::Transport::new(quic::Config::new(keypair)).and_then(move |(peer, connection), _| {
            tokio::time::sleep(rtt * QUIC_HANDSHAKE_RTTS)
                .map(move |()| Ok::<_, quic::Error>((peer, DelayedMuxer::new(connection, one_way))))
        });

    // Bytes are counted on the protocols' streams, so TCP and QUIC count alike (payload, without
    // encryption and muxer framing).
    let metered = OrTransport::new(quic, streams).map(move |either, _| match either {
        Either::Left((peer, muxer)) => (
            peer,
            QUIC_HANDSHAKE_RTTS,
            StreamMuxerBox::new(MeteredMuxer::new(muxer, load.clone())),
        ),
        Either::Right((peer, muxer)) => (
            peer,
            STREAM_HANDSHAKE_RTTS,
            StreamMuxerBox::new(MeteredMuxer::new(muxer, load.clone())),
        ),
    });
    let local = keypair.public().to_peer_id();
    let conditions = config.link_conditions.clone();
    let combined = metered.and_then(move |(peer, handshake_rtts, muxer), _| {
        apply_link_conditions(conditions.clone(), local, peer, handshake_rtts, muxer)
    });

    match (config.resolve_dns, config.dns_server) {
        (_, Some(server)) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let name_server = NameServerConfig::new(server.ip(), true, vec![udp]);
            let resolver = libp2p::dns::ResolverConfig::from_name_servers(vec![name_server]);
            let dns = libp2p::dns::tokio::Transport::custom(
                combined,
                resolver,
                libp2p::dns::ResolverOpts::default(),
            );
            Ok(dns.boxed())
        }
        (true, None) => {
            let dns = libp2p::dns::tokio::Transport::system(combined)
                .map_err(|e| DhtError::Setup(format!("DNS resolver configuration: {e}")))?;
            Ok(dns.boxed())
        }
        (false, None) => Ok(combined.boxed()),
    }
}
