//! Per-pair link conditions on real connections, against the test's own clock: a connection
//! pays its pair's set-up round trips, a request its pair's round trip, and a dial to a peer that
//! never answers fails after the delay the conditions gave, not before.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use parsec_actors::{
    local_network::{self, dht_runtime, TransportKind},
    ContentId, DhtConfig, DhtHandle, DhtMode, LinkConditions, PeerId,
};

const NEAR: Duration = Duration::from_millis(20);
const FAR: Duration = Duration::from_millis(300);
const GONE_AFTER: Duration = Duration::from_millis(1500);

/// Peers are near or far from each other by the distance of their "places"; a gone peer's
/// connections fail after [`GONE_AFTER`].
#[derive(Debug, Default)]
struct Places {
    place_of: Mutex<HashMap<PeerId, u8>>,
    gone: Mutex<Option<PeerId>>,
}

impl LinkConditions for Places {
    fn round_trip(&self, local: &PeerId, remote: &PeerId) -> Duration {
        let places = self.place_of.lock().unwrap();
        if places.get(local) == places.get(remote) {
            NEAR
        } else {
            FAR
        }
    }

    fn failure(&self, local: &PeerId, remote: &PeerId) -> Option<Duration> {
        let gone = *self.gone.lock().unwrap();
        (gone == Some(*local) || gone == Some(*remote)).then_some(GONE_AFTER)
    }
}

fn contact(peer: &DhtHandle) -> (PeerId, parsec_actors::Multiaddr) {
    (peer.peer_id(), peer.listen_addrs()[0].clone())
}

#[test]
fn connections_and_requests_pay_their_pairs_round_trips_and_dead_peers_fail_late() {
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let places = Arc::new(Places::default());
        let mut config = DhtConfig::default();
        config
            .set_mode(DhtMode::Server)
            .set_periodic_bootstrap(None)
            .set_retrieve_timeout(Duration::from_secs(20))
            .set_link_conditions(Some(places.clone() as Arc<dyn LinkConditions>));
        let config = local_network::local_peer_config(&config, TransportKind::Memory);
        let peers = local_network::spawn_peers(4, &config, runtime.handle(), |_| {})
            .await
            .unwrap();
        let (home, near, far, gone) = (&peers[0], &peers[1], &peers[2], &peers[3]);
        {
            let mut place_of = places.place_of.lock().unwrap();
            place_of.insert(home.peer_id(), 0);
            place_of.insert(near.peer_id(), 0);
            place_of.insert(far.peer_id(), 1);
        }
        *places.gone.lock().unwrap() = Some(gone.peer_id());

        // TCP and memory connections pay two round trips (TCP's handshake, then noise's).
        let started = Instant::now();
        home.connect(contact(near)).await.unwrap();
        let to_near = started.elapsed();
        let started = Instant::now();
        home.connect(contact(far)).await.unwrap();
        let to_far = started.elapsed();
        assert!(to_near >= NEAR * 2 && to_near < FAR, "near: {to_near:?}");
        assert!(to_far >= FAR * 2 && to_far < FAR * 4, "far: {to_far:?}");

        let started = Instant::now();
        let dial = home.connect(contact(gone)).await;
        let to_gone = started.elapsed();
        assert!(dial.is_err(), "a peer that never answers was reached");
        assert!(
            to_gone >= GONE_AFTER,
            "the dead peer's dial failed early: {to_gone:?}"
        );

        // A lookup that can only ask the far peer (already connected) takes its round trip.
        home.add_peers(vec![contact(far)]).await.unwrap();
        let cid = ContentId::for_content(b"nobody provides this");
        let started = Instant::now();
        let outcome = home.retrieve(cid).await.unwrap();
        let wall = started.elapsed();
        assert!(outcome.counts.requests >= 1, "{outcome:?}");
        assert!(outcome.duration >= FAR, "{outcome:?}");
        assert!(wall >= outcome.duration, "measured {outcome:?} in {wall:?}");
    });
}
