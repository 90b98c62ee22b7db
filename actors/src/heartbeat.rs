//! `HeartbeatActor`: keeps a server's registry row alive.
//!
//! It registers the node at start, waits until the node is ready (parsec schedulers only pick
//! nodes with a heartbeat, so a node must not look alive before it can serve), then refreshes
//! `last_heartbeat` every interval while the node stays ready. A heartbeat also clears a
//! scheduler's older offline mark, so a node that failed one check comes back.
//! [`GoOffline`] sets `offline_since` and stops it for good.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use chrono::Utc;

use crate::{
    registry::{NodeRegistration, Registry, RegistryError},
    CheckReadiness, NodeId,
};

/// parsec's heartbeat period.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);

/// How often readiness is checked before the first heartbeat.
pub const READINESS_POLL: Duration = Duration::from_secs(1);

/// Mark the node offline now, then stop heartbeating.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct GoOffline;

/// Refresh the heartbeat now (otherwise sent by the actor's own timer).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Beat;

/// See the module docs.
pub struct HeartbeatActor {
    registry: Arc<dyn Registry>,
    node: NodeId,
    readiness: Recipient<CheckReadiness>,
    interval: Duration,
    ready: bool,
    beating: bool,
    offline: bool,
}

impl std::fmt::Debug for HeartbeatActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatActor")
            .field("node", &self.node)
            .field("interval", &self.interval)
            .field("ready", &self.ready)
            .field("offline", &self.offline)
            .finish()
    }
}

impl HeartbeatActor {
    /// Registers `registration` and starts heartbeating for it once `readiness` says ready.
    /// Returns the actor and the node's id.
    pub async fn register(
        registry: Arc<dyn Registry>,
        registration: NodeRegistration,
        readiness: Recipient<CheckReadiness>,
        interval: Duration,
    ) -> Result<(Addr<Self>, NodeId), RegistryError> {
        let node = registry.register_node(registration).await?;
        let actor = Self {
            registry,
            node,
            readiness,
            interval: interval.max(Duration::from_millis(10)),
            ready: false,
            beating: false,
            offline: false,
        }
        .start();
        Ok((actor, node))
    }

    /// Checks readiness, and beats when ready: every interval while ready, every second until
    /// then. A node that stops being ready (its peers gone) stops heartbeating, so schedulers stop
    /// picking it; it beats again, and comes back, once it is ready again.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.offline {
            return;
        }
        let readiness = self.readiness.send(CheckReadiness);
        ctx.spawn(readiness.into_actor(self).map(|answer, act, ctx| {
            let ready = matches!(answer, Ok(Ok(r)) if r.ready);
            if ready != act.ready {
                if ready {
                    tracing::info!(node = %act.node, "node ready: heartbeating");
                } else {
                    tracing::warn!(node = %act.node, "node no longer ready: heartbeats paused");
                }
                act.ready = ready;
            }
            if ready {
                ctx.notify(Beat);
                ctx.run_later(act.interval, Self::tick);
            } else {
                ctx.run_later(READINESS_POLL.min(act.interval), Self::tick);
            }
        }));
    }
}

impl Actor for HeartbeatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

impl Handler<Beat> for HeartbeatActor {
    type Result = ();

    fn handle(&mut self, _: Beat, ctx: &mut Context<Self>) {
        // One beat at a time: a slow database must not pile up updates.
        if self.beating || self.offline {
            return;
        }
        self.beating = true;
        let beat = self.registry.heartbeat(self.node, Utc::now());
        let node = self.node;
        ctx.spawn(beat.into_actor(self).map(move |result, act, _| {
            act.beating = false;
            if let Err(e) = result {
                tracing::warn!(%node, error = %e, "heartbeat failed; retrying at the next beat");
            }
        }));
    }
}

impl Handler<GoOffline> for HeartbeatActor {
    type Result = ResponseActFuture<Self, Result<(), RegistryError>>;

    fn handle(&mut self, _: GoOffline, _: &mut Context<Self>) -> Self::Result {
        self.offline = true;
        let marking = self.registry.mark_offline(self.node, Utc::now());
        Box::pin(marking.into_actor(self).map(|result, act, ctx| {
            match &result {
                Ok(()) => tracing::info!(node = %act.node, "marked offline"),
                Err(e) => tracing::error!(node = %act.node, error = %e, "could not mark the node offline"),
            }
            ctx.stop();
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{
        registry::MemoryRegistry,
        testing::{sample_registration, ReadinessStub},
    };

    #[actix::test]
    async fn heartbeats_start_when_ready_and_stop_offline() {
        // Paused time: every check and beat happens at an exact virtual instant.
        tokio::time::pause();
        let interval = Duration::from_millis(30);
        let registry = MemoryRegistry::default();
        let checks = Arc::new(AtomicU32::new(0));
        // Not ready for the first two checks (t = 0 and 30 ms): ready from the third (60 ms).
        let node = ReadinessStub {
            checks: checks.clone(),
            unready_checks: 2,
        }
        .start();
        let (heartbeat, id) = HeartbeatActor::register(
            Arc::new(registry.clone()),
            sample_registration(),
            node.recipient(),
            interval,
        )
        .await
        .unwrap();
        assert_eq!(registry.nodes()[0].registration, sample_registration());

        // The readiness poll runs at min(1 s, interval) = 30 ms.
        tokio::time::sleep(Duration::from_millis(45)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
        assert_eq!(
            registry.nodes()[0].last_heartbeat,
            None,
            "beat before the node was ready"
        );

        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 3);
        let first = registry.nodes()[0].last_heartbeat.expect("a beat once ready");

        // Ready: one check and one beat per interval (at 90 and 120 ms).
        std::thread::sleep(Duration::from_millis(2)); // the row's timestamp is wall-clock time
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(checks.load(Ordering::SeqCst), 5);
        assert!(
            registry.nodes()[0].last_heartbeat.unwrap() > first,
            "heartbeat not refreshed"
        );

        heartbeat.send(GoOffline).await.unwrap().unwrap();
        let node_row = &registry.nodes()[0];
        assert_eq!(node_row.id, id);
        assert!(node_row.offline_since.is_some());
        let last = node_row.last_heartbeat;
        tokio::time::sleep(interval * 10).await;
        assert_eq!(checks.load(Ordering::SeqCst), 5, "checked after going offline");
        assert_eq!(
            registry.nodes()[0].last_heartbeat,
            last,
            "heartbeat after offline"
        );
        assert!(!heartbeat.connected(), "actor still running after GoOffline");
    }
}
