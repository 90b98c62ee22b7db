//! The `/ipfs/kad/1.0.0` requests our engine sends, as the libp2p kad-dht specification's
//! `dht.proto` defines them, and the request-response codec that frames them: one request per
//! stream, each message an unsigned-varint length prefix and a protobuf body.
//!
//! The codec is outbound only: rust-libp2p's kad keeps answering inbound requests on the same
//! protocol (docs/architecture.md). ADD_PROVIDER has no answer in the protocol; we close our side
//! after the request (or a reprovide round's batch of them, on one stream) and take the peer
//! closing its side as the acknowledgement, so a store counts once the peer read it (one round
//! trip, as the simulator models it). py-libp2p echoes each ADD_PROVIDER; its echoes are read up
//! to its close.

use std::io;

use asynchronous_codec::{FramedRead, FramedWrite};
use futures::{AsyncRead, AsyncWrite, SinkExt, StreamExt};
use libp2p::{request_response, Multiaddr, PeerId, StreamProtocol};

/// Largest message read: a GET_PROVIDERS answer lists up to k providers and k closer peers with
/// their addresses; go-libp2p-kad-dht caps messages at 4 MiB, kad's default is 16 KiB.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// `Message.MessageType` of dht.proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum MessageType {
    PutValue = 0,
    GetValue = 1,
    AddProvider = 2,
    GetProviders = 3,
    FindNode = 4,
    Ping = 5,
}

/// `Message.Peer` of dht.proto.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Peer {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) id: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(crate) addrs: Vec<Vec<u8>>,
    #[prost(int32, tag = "3")]
    pub(crate) connection: i32,
}

/// `Message` of dht.proto, without the record of PUT_VALUE/GET_VALUE (we send neither; prost
/// skips the field in answers).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Message {
    #[prost(enumeration = "MessageType", tag = "1")]
    pub(crate) r#type: i32,
    #[prost(int32, tag = "10")]
    pub(crate) cluster_level_raw: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
    #[prost(message, repeated, tag = "8")]
    pub(crate) closer_peers: Vec<Peer>,
    #[prost(message, repeated, tag = "9")]
    pub(crate) provider_peers: Vec<Peer>,
}

impl Message {
    /// FIND_NODE: the peers the receiver knows closest to `key`.
    pub(crate) fn find_node(key: Vec<u8>) -> Self {
        Self::request(MessageType::FindNode, key)
    }

    /// GET_PROVIDERS: the provider records of `key` the receiver holds, and closer peers.
    pub(crate) fn get_providers(key: Vec<u8>) -> Self {
        Self::request(MessageType::GetProviders, key)
    }

    /// ADD_PROVIDER: `provider` (ourselves, with the addresses we announce) provides `key`.
    pub(crate) fn add_provider(key: Vec<u8>, provider: PeerId, addrs: &[Multiaddr]) -> Self {
        Self {
            provider_peers: vec![Peer {
                id: provider.to_bytes(),
                addrs: addrs.iter().map(|a| a.to_vec()).collect(),
                connection: 0,
            }],
            ..Self::request(MessageType::AddProvider, key)
        }
    }

    fn request(kind: MessageType, key: Vec<u8>) -> Self {
        Self {
            r#type: kind as i32,
            cluster_level_raw: 0,
            key,
            closer_peers: Vec::new(),
            provider_peers: Vec::new(),
        }
    }

    /// The message's type, if it is one dht.proto defines.
    #[cfg(test)]
    pub(crate) fn kind(&self) -> Option<MessageType> {
        MessageType::try_from(self.r#type).ok()
    }

    /// The closer peers that parse, with the addresses that parse.
    pub(crate) fn closer(&self) -> impl Iterator<Item = (PeerId, Vec<Multiaddr>)> + '_ {
        self.closer_peers.iter().filter_map(Peer::parse)
    }

    /// The providers that parse.
    pub(crate) fn providers(&self) -> impl Iterator<Item = (PeerId, Vec<Multiaddr>)> + '_ {
        self.provider_peers.iter().filter_map(Peer::parse)
    }
}

impl Peer {
    /// The peer id and addresses; a peer whose id does not parse is skipped, as are its
    /// addresses that do not.
    fn parse(&self) -> Option<(PeerId, Vec<Multiaddr>)> {
        let id = PeerId::from_bytes(&self.id).ok()?;
        let addrs = self
            .addrs
            .iter()
            .filter_map(|bytes| Multiaddr::try_from(bytes.clone()).ok())
            .collect();
        Some((id, addrs))
    }
}

/// What came back on a request's stream: the answer (`None`: the peer closed without one, the
/// acknowledgement of ADD_PROVIDERs, a failure for the other requests), and the ADD_PROVIDERs a
/// peer that echoes them (py-libp2p) echoed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Answer {
    pub(crate) message: Option<Message>,
    pub(crate) echoes: u32,
}

impl Answer {
    /// Of a batch of `sent` ADD_PROVIDERs, those the peer took: what it echoed, or all of them
    /// when it read to the end and closed without echoing.
    pub(crate) fn stored_of(&self, sent: u32) -> u32 {
        if self.echoes > 0 {
            self.echoes.min(sent)
        } else {
            sent
        }
    }
}

/// Frames our requests and reads the answers. `None`: the peer closed the stream without an
/// answer (the acknowledgement of an ADD_PROVIDER, a failure for the other requests).
#[derive(Clone, Debug, Default)]
pub(crate) struct KadCodec;

fn framing() -> prost_codec::Codec<Message> {
    prost_codec::Codec::new(MAX_MESSAGE_BYTES)
}

fn outbound_only() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "the engine only sends kad requests")
}

impl request_response::Codec for KadCodec {
    type Protocol = StreamProtocol;
    /// Requests on one stream, written in order: one, or a batch of ADD_PROVIDERs.
    type Request = Vec<Message>;
    type Response = Answer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<Message>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(outbound_only())
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Answer>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut framed = FramedRead::new(io, framing());
        let message = framed.next().await.transpose()?;
        let mut echoes = 0;
        if message
            .as_ref()
            .is_some_and(|m| m.r#type == MessageType::AddProvider as i32)
        {
            // py-libp2p echoes each ADD_PROVIDER it stored: the echoes up to its close (or its
            // reset, past its rate limit) say how many of a batch it took.
            echoes = 1;
            while let Some(Ok(_)) = framed.next().await {
                echoes += 1;
            }
        }
        Ok(Answer { message, echoes })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        requests: Vec<Message>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let mut framed = FramedWrite::new(io, framing());
        for request in requests {
            framed.feed(request).await?;
        }
        Ok(framed.flush().await?)
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, _: &mut T, _: Answer) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(outbound_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// A FIND_NODE of key `[1, 2, 3]` in dht.proto's encoding: field 1 (type) varint 4, field 2
    /// (key) three bytes; field 10 (cluster level) is 0 and omitted.
    #[test]
    fn find_node_matches_the_bytes_of_the_spec() {
        let expected = [0x08, 0x04, 0x12, 0x03, 1, 2, 3];
        let ours = Message::find_node(vec![1, 2, 3]).encode_to_vec();
        assert_eq!(ours, expected);
        let decoded = Message::decode(&expected[..]).unwrap();
        assert_eq!(decoded.kind(), Some(MessageType::FindNode));
    }

    #[test]
    fn peers_that_do_not_parse_are_skipped() {
        let good = PeerId::random();
        let address: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let message = Message {
            closer_peers: vec![
                Peer {
                    id: good.to_bytes(),
                    addrs: vec![address.to_vec(), vec![0xff, 0xff]],
                    connection: 0,
                },
                Peer {
                    id: vec![1, 2, 3],
                    addrs: Vec::new(),
                    connection: 0,
                },
            ],
            ..Message::find_node(Vec::new())
        };
        let decoded = Message::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.closer().collect::<Vec<_>>(), vec![(good, vec![address])]);
    }

    #[test]
    fn add_provider_carries_us_and_our_addresses() {
        let me = PeerId::random();
        let address: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
        let message = Message::add_provider(vec![9], me, std::slice::from_ref(&address));
        assert_eq!(message.kind(), Some(MessageType::AddProvider));
        assert_eq!(message.providers().collect::<Vec<_>>(), vec![(me, vec![address])]);
    }
}
