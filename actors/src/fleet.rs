//! `FleetSupervisor`: holds a fleet's nodes and runs the parsec round over them.
//!
//! A round: find the members (a fixed list, or the registry's live nodes of the fleets); ask
//! every member for readiness (concurrently, with a timeout) and, when discovering, mark the
//! ones that fail offline; let the [`RoundPlanner`] choose the provider among the ready ones;
//! send it a fresh random blob ([`ProvideContent`]); then every other ready node looks the CID
//! up ([`RetrieveContent`]), in parallel, `probes` times each. Every valid report becomes
//! [`Measurement`] rows sent to the recorder; a request that produced no valid report is an
//! error of that node and is never recorded as a measurement. Nodes are held as
//! `Recipient`s, so in-process and remote (HTTP) nodes mix freely.

mod census;
mod dht_round;
mod membership;
mod plan;
mod pubsub_round;
mod reprovide_round;

use std::time::Duration;

use actix::prelude::*;
use futures::future::{AbortHandle, AbortRegistration, Abortable};
use rand::{rngs::StdRng, Rng as _, SeedableRng};

pub use self::census::{FleetCensus, ServerCounts, TakeCensus};
use self::dht_round::{check_readiness, Round};
pub use self::pubsub_round::{PubsubRoundConfig, PubsubRoundSummary};
pub use self::reprovide_round::{ReprovideRoundConfig, ReprovideRoundSummary};
pub use self::{
    dht_round::RoundSummary,
    membership::{Discovery, MemberEndpoints, Membership, NodeConnector},
    plan::{MemberStatus, RoundPlan, RoundPlanner},
};
use crate::{
    node::pubsub::PubsubRecipients, random_content, NodeId, NodeRecipients, RecordMeasurement, RoundError,
};

/// Readiness answers slower than this count as not ready.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// One node of a fleet, as the supervisor sees it.
#[derive(Clone, Debug)]
pub struct FleetMember {
    /// The node's id (its `nodes_ecs` row once stored).
    pub id: NodeId,
    /// Human-readable name (address or peer id).
    pub name: String,
    /// The node's fleet; `None`: the round's fleet ([`RoundConfig::fleet`]).
    pub fleet: Option<String>,
    /// The peer id the node registered; when set, a readiness answer from another peer id
    /// means another process answers at the node's address, and the node counts as not ready.
    pub peer_id: Option<String>,
    /// Where its requests go.
    pub node: NodeRecipients,
    /// Where its pubsub requests go (`None`: it does not speak pubsub).
    pub pubsub: Option<PubsubRecipients>,
    /// Where its reprovide rounds go (`None`: it does not take them).
    pub reprovide: Option<Recipient<crate::node::reprovide::ReprovideContent>>,
}

impl FleetMember {
    /// A member whose requests go to `node`.
    pub fn new(id: NodeId, name: impl Into<String>, node: NodeRecipients) -> Self {
        Self {
            id,
            name: name.into(),
            fleet: None,
            peer_id: None,
            node,
            pubsub: None,
            reprovide: None,
        }
    }

    /// Sends the member's pubsub requests to `pubsub`.
    pub fn with_pubsub(mut self, pubsub: PubsubRecipients) -> Self {
        self.pubsub = Some(pubsub);
        self
    }

    /// Sets the member's fleet.
    pub fn in_fleet(mut self, fleet: impl Into<String>) -> Self {
        self.fleet = Some(fleet.into());
        self
    }

    /// Sets the peer id the member must answer readiness with.
    pub fn with_peer_id(mut self, peer_id: impl Into<String>) -> Self {
        self.peer_id = Some(peer_id.into());
        self
    }

    fn fleet_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.fleet.as_deref().unwrap_or(default)
    }
}

/// How rounds are run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RoundConfig {
    /// The fleet (or fleets, comma-separated) the rounds measure: the label sent as
    /// `x-scheduler-id` and written with rows of members that have no fleet of their own.
    pub fleet: String,
    /// Fleets whose members may provide (`None`: every member).
    pub provide_fleets: Option<Vec<String>>,
    /// Fleets whose members retrieve (`None`: every member).
    pub retrieve_fleets: Option<Vec<String>>,
    /// Lookups per retrieving node per round.
    pub probes: u32,
    /// Readiness answers slower than this count as not ready.
    pub readiness_timeout: Duration,
    /// Pause between the provide's answer and the retrievals.
    pub settle: Duration,
    /// Seed of the content generator (`None`: from the OS).
    pub seed: Option<u64>,
}

impl Default for RoundConfig {
    fn default() -> Self {
        Self {
            fleet: "default".to_owned(),
            provide_fleets: None,
            retrieve_fleets: None,
            probes: 1,
            readiness_timeout: DEFAULT_READINESS_TIMEOUT,
            settle: Duration::ZERO,
            seed: None,
        }
    }
}

impl RoundConfig {
    /// Sets the fleet name.
    pub fn set_fleet(&mut self, fleet: impl Into<String>) -> &mut Self {
        self.fleet = fleet.into();
        self
    }

    /// Restricts the provider role to members of `fleets` (cross-fleet rounds).
    pub fn set_provide_fleets(&mut self, fleets: Option<Vec<String>>) -> &mut Self {
        self.provide_fleets = fleets;
        self
    }

    /// Restricts the retrieving role to members of `fleets` (cross-fleet rounds).
    pub fn set_retrieve_fleets(&mut self, fleets: Option<Vec<String>>) -> &mut Self {
        self.retrieve_fleets = fleets;
        self
    }

    /// Sets the lookups per retrieving node.
    pub fn set_probes(&mut self, probes: u32) -> &mut Self {
        self.probes = probes.max(1);
        self
    }

    /// Sets the readiness timeout.
    pub fn set_readiness_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.readiness_timeout = timeout;
        self
    }

    /// Sets the pause between provide and retrievals.
    pub fn set_settle(&mut self, settle: Duration) -> &mut Self {
        self.settle = settle;
        self
    }

    /// Seeds the content generator.
    pub fn set_seed(&mut self, seed: Option<u64>) -> &mut Self {
        self.seed = seed;
        self
    }

    fn candidate(&self, member: &FleetMember, ready: bool) -> MemberStatus {
        let fleet = member.fleet_or(&self.fleet);
        let allowed =
            |fleets: &Option<Vec<String>>| fleets.as_ref().is_none_or(|f| f.iter().any(|f| f == fleet));
        MemberStatus {
            id: member.id,
            ready,
            provides: allowed(&self.provide_fleets),
            retrieves: allowed(&self.retrieve_fleets),
        }
    }
}

/// Run one round; answers when every request of it has finished, or when it is abandoned
/// through the [`AbortHandle`] of [`RunRound::abortable`] (then nothing more of it is recorded).
#[derive(Debug, Default, Message)]
#[rtype(result = "Result<RoundSummary, RoundError>")]
pub struct RunRound {
    abort: Option<AbortRegistration>,
}

impl RunRound {
    /// A round that runs to its end.
    pub fn new() -> Self {
        Self::default()
    }

    /// A round that can be abandoned (graceful shutdown) with the returned handle.
    pub fn abortable() -> (Self, AbortHandle) {
        let (handle, registration) = AbortHandle::new_pair();
        (
            Self {
                abort: Some(registration),
            },
            handle,
        )
    }
}

/// Run one round of a kind its configuration names ([`RunPubsubRound`], [`RunReprovideRound`]);
/// answers when the round ended, or when it is abandoned through the [`AbortHandle`] of
/// [`RunConfigured::abortable`].
#[derive(Debug)]
pub struct RunConfigured<C> {
    pub config: C,
    abort: Option<AbortRegistration>,
}

impl<C> RunConfigured<C> {
    /// A round that runs to its end.
    pub fn new(config: C) -> Self {
        Self { config, abort: None }
    }

    /// A round that can be abandoned (graceful shutdown) with the returned handle.
    pub fn abortable(config: C) -> (Self, AbortHandle) {
        let (handle, registration) = AbortHandle::new_pair();
        (
            Self {
                config,
                abort: Some(registration),
            },
            handle,
        )
    }
}

/// Run one pubsub round ([`PubsubRoundConfig`]): the ready members that speak pubsub subscribe,
/// one publishes, the others report each message's first copy.
pub type RunPubsubRound = RunConfigured<PubsubRoundConfig>;

impl Message for RunPubsubRound {
    type Result = Result<PubsubRoundSummary, RoundError>;
}

/// Run one reprovide round ([`ReprovideRoundConfig`]): a ready member that takes reprovide
/// rounds (rotating) reprovides CIDs of its own with each strategy, the others look up a sample.
pub type RunReprovideRound = RunConfigured<ReprovideRoundConfig>;

impl Message for RunReprovideRound {
    type Result = Result<ReprovideRoundSummary, RoundError>;
}

/// See the module docs.
#[derive(Debug)]
pub struct FleetSupervisor {
    membership: Membership,
    recorder: Recipient<RecordMeasurement>,
    planner: RoundPlanner,
    config: RoundConfig,
    rng: StdRng,
    /// Pubsub rounds run so far (the publisher rotates over the members).
    pubsub_rounds: usize,
    /// Reprovide rounds run so far (the provider rotates over the members).
    reprovide_rounds: usize,
    /// The servers the last round found, per fleet, until taken.
    census: Option<FleetCensus>,
}

impl FleetSupervisor {
    /// A supervisor over a fixed list of `members`, recording to `recorder`.
    pub fn new(
        members: Vec<FleetMember>,
        recorder: Recipient<RecordMeasurement>,
        config: RoundConfig,
    ) -> Self {
        Self::with_membership(Membership::Fixed(members), recorder, config)
    }

    /// A supervisor whose members come from `membership` (e.g. discovered before every round).
    pub fn with_membership(
        membership: Membership,
        recorder: Recipient<RecordMeasurement>,
        config: RoundConfig,
    ) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        Self {
            membership,
            recorder,
            planner: RoundPlanner::default(),
            config,
            rng,
            pubsub_rounds: 0,
            reprovide_rounds: 0,
            census: None,
        }
    }
}

impl FleetSupervisor {
    /// The first steps of every round: the members found again, and each one's readiness.
    fn checked_members(&mut self) -> impl ActorFuture<Self, Output = Result<CheckedMembers, RoundError>> {
        let timeout = self.config.readiness_timeout;
        self.membership
            .refresh()
            .into_actor(self)
            .map(|found, act, _| act.membership.apply(found))
            .then(move |members, act, _| {
                async move {
                    let members = members?;
                    let readiness = check_readiness(&members, timeout).await;
                    Ok::<_, RoundError>((members, readiness))
                }
                .into_actor(act)
            })
    }
}

/// The members of a round, each with its readiness (`Err`: why it is not ready).
type CheckedMembers = (Vec<FleetMember>, Vec<Result<(), String>>);

/// Runs `round`, or abandons it when `abort` (if given) is triggered.
async fn abandonable<T>(
    round: impl std::future::Future<Output = Result<T, RoundError>>,
    abort: Option<AbortRegistration>,
) -> Result<T, RoundError> {
    match abort {
        Some(registration) => Abortable::new(round, registration)
            .await
            .unwrap_or(Err(RoundError::Abandoned)),
        None => round.await,
    }
}

impl Actor for FleetSupervisor {
    type Context = Context<Self>;
}

/// Rounds are atomic: the next starts only when the previous one is fully recorded.
impl Handler<RunRound> for FleetSupervisor {
    type Result = AtomicResponse<Self, Result<RoundSummary, RoundError>>;

    fn handle(&mut self, msg: RunRound, _: &mut Context<Self>) -> Self::Result {
        let abort = msg.abort;
        AtomicResponse::new(Box::pin(
            self.checked_members()
                .map(|checked, act, _| {
                    let (members, readiness) = checked?;
                    let not_ready: Vec<(NodeId, String)> = members
                        .iter()
                        .zip(&readiness)
                        .filter_map(|(m, r)| r.as_ref().err().map(|why| (m.id, why.clone())))
                        .collect();
                    act.membership.set_unreachable(&not_ready);
                    act.census = Some(FleetCensus::of(
                        &members,
                        &readiness,
                        &act.config.fleet,
                        act.membership.is_discovered(),
                    ));
                    let candidates: Vec<MemberStatus> = members
                        .iter()
                        .zip(&readiness)
                        .map(|(m, r)| act.config.candidate(m, r.is_ok()))
                        .collect();
                    let plan = act.planner.plan(&candidates).ok_or(RoundError::NoReadyNode {
                        registered: members.len(),
                    })?;
                    let content = random_content(&mut act.rng);
                    Ok((members, plan, content, not_ready))
                })
                .then(move |planned, act, _| {
                    let round = Round {
                        recorder: act.recorder.clone(),
                        config: act.config.clone(),
                    };
                    let run = async move {
                        let (members, plan, content, not_ready) = planned?;
                        round.run(members, plan, content, not_ready).await
                    };
                    abandonable(run, abort).into_actor(act)
                }),
        ))
    }
}

/// Pubsub rounds are atomic too, and share the membership with the DHT rounds.
impl Handler<RunPubsubRound> for FleetSupervisor {
    type Result = AtomicResponse<Self, Result<PubsubRoundSummary, RoundError>>;

    fn handle(&mut self, msg: RunPubsubRound, _: &mut Context<Self>) -> Self::Result {
        let RunPubsubRound { config, abort } = msg;
        let counted = self.checked_members().map(|checked, act, _| {
            if let Ok((members, readiness)) = &checked {
                // Pubsub rounds skip servers that are not ready but mark none offline.
                act.census = Some(FleetCensus::of(members, readiness, &act.config.fleet, false));
            }
            checked
        });
        AtomicResponse::new(Box::pin(counted.then(move |checked, act, _| {
            let recorder = act.recorder.clone();
            let fleet = act.config.fleet.clone();
            let index = act.pubsub_rounds;
            act.pubsub_rounds += 1;
            let run = async move {
                let (members, readiness) = checked?;
                let mut summary = PubsubRoundSummary::default();
                let mut taking_part = Vec::new();
                for (member, ready) in members.iter().zip(readiness) {
                    match (ready, &member.pubsub) {
                        (Ok(()), Some(_)) => taking_part.push(member.clone()),
                        (Ok(()), None) => summary
                            .not_ready
                            .push((member.id, "does not speak pubsub".to_owned())),
                        (Err(why), _) => summary.not_ready.push((member.id, why)),
                    }
                }
                summary.ready_nodes = taking_part.len();
                if taking_part.len() < 2 {
                    return Err(RoundError::NoReadyNode {
                        registered: members.len(),
                    });
                }
                let publisher = index % taking_part.len();
                pubsub_round::run(&taking_part, publisher, &config, &fleet, &recorder, &mut summary).await;
                Ok(summary)
            };
            abandonable(run, abort).into_actor(act)
        })))
    }
}

/// Reprovide rounds are atomic too, and share the membership with the DHT rounds.
impl Handler<RunReprovideRound> for FleetSupervisor {
    type Result = AtomicResponse<Self, Result<ReprovideRoundSummary, RoundError>>;

    fn handle(&mut self, msg: RunReprovideRound, _: &mut Context<Self>) -> Self::Result {
        let RunReprovideRound { config, abort } = msg;
        let counted = self.checked_members().map(|checked, act, _| {
            if let Ok((members, readiness)) = &checked {
                act.census = Some(FleetCensus::of(members, readiness, &act.config.fleet, false));
            }
            checked
        });
        AtomicResponse::new(Box::pin(counted.then(move |checked, act, _| {
            let recorder = act.recorder.clone();
            let fleet = act.config.fleet.clone();
            let index = act.reprovide_rounds;
            act.reprovide_rounds += 1;
            let seed = act.rng.gen();
            let run = async move {
                let (members, readiness) = checked?;
                let mut summary = ReprovideRoundSummary::default();
                let mut taking_part = Vec::new();
                for (member, ready) in members.iter().zip(readiness) {
                    match ready {
                        Ok(()) => taking_part.push(member.clone()),
                        Err(why) => summary.not_ready.push((member.id, why)),
                    }
                }
                summary.ready_nodes = taking_part.len();
                let providers: Vec<usize> = (0..taking_part.len())
                    .filter(|&i| taking_part[i].reprovide.is_some())
                    .collect();
                // One provides, another looks its sample up.
                if providers.is_empty() || taking_part.len() < 2 {
                    return Err(RoundError::NoReadyNode {
                        registered: members.len(),
                    });
                }
                let provider = providers[index % providers.len()];
                reprovide_round::run(
                    &taking_part,
                    provider,
                    &config,
                    &fleet,
                    seed,
                    &recorder,
                    &mut summary,
                )
                .await;
                Ok(summary)
            };
            abandonable(run, abort).into_actor(act)
        })))
    }
}

impl Handler<TakeCensus> for FleetSupervisor {
    type Result = Option<FleetCensus>;

    fn handle(&mut self, _: TakeCensus, _: &mut Context<Self>) -> Option<FleetCensus> {
        self.census.take()
    }
}
