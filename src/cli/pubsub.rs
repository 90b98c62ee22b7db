//! Gossipsub's parameters as flags, shared by the commands whose peers speak it.

use std::time::Duration;

use clap::Args;
use parsec_actors::pubsub::{PubsubConfig, Validation};

/// Gossipsub's parameters (defaults: the gossipsub v1.1 specification's).
#[derive(Clone, Debug, Args)]
pub(super) struct GossipsubArgs {
    /// D: the mesh degree each peer aims for per topic.
    #[arg(long, env = "PARSEC_GOSSIPSUB_D", default_value_t = 6)]
    mesh_n: usize,
    /// D_lo: below this many mesh peers, more are grafted.
    #[arg(long, env = "PARSEC_GOSSIPSUB_D_LO", default_value_t = 4)]
    mesh_n_low: usize,
    /// D_hi: above this many, mesh peers are pruned.
    #[arg(long, env = "PARSEC_GOSSIPSUB_D_HI", default_value_t = 12)]
    mesh_n_high: usize,
    /// How often meshes are maintained and gossip is emitted.
    #[arg(long, env = "PARSEC_GOSSIPSUB_HEARTBEAT", default_value = "1s", value_parser = super::parse_duration)]
    heartbeat: Duration,
    /// Send our own messages to every subscribed peer we know, not only to the mesh.
    #[arg(long, env = "PARSEC_GOSSIPSUB_FLOOD_PUBLISH", default_value_t = true, action = clap::ArgAction::Set)]
    flood_publish: bool,
    /// How received messages are checked: strict (signed), permissive, anonymous or none.
    #[arg(long, env = "PARSEC_GOSSIPSUB_VALIDATION", default_value = "strict")]
    validation: Validation,
    /// The most topics a remote peer may be subscribed to with us (and announce at once); past
    /// it its subscriptions are ignored, as gossipsub's default filter (100) does.
    #[arg(long, env = "PARSEC_GOSSIPSUB_MAX_PEER_TOPICS", default_value_t = 100)]
    max_peer_topics: usize,
}

impl GossipsubArgs {
    /// The configuration, or why it cannot run (the fix in words).
    pub(super) fn config(&self) -> anyhow::Result<PubsubConfig> {
        let mut config = PubsubConfig::default();
        config
            .set_mesh(self.mesh_n_low, self.mesh_n, self.mesh_n_high)
            .set_heartbeat(self.heartbeat)
            .set_flood_publish(self.flood_publish)
            .set_validation(self.validation)
            .set_max_peer_topics(self.max_peer_topics);
        config.check().map_err(|e| {
            anyhow::anyhow!(
                "gossipsub: {e} (flags --mesh-n-low, --mesh-n, --mesh-n-high, --heartbeat, --max-peer-topics)"
            )
        })?;
        Ok(config)
    }
}
