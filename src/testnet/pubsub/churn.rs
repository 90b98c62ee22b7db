//! Churn among the hosts of a pubsub testnet, as in the seed's simulator: before an iteration some
//! present hosts leave their topics, some leave the network (every connection closed), and those
//! that left for the iteration before come back (subscribing again, or dialling present hosts).

use std::time::Duration;

use anyhow::Context as _;
use parsec_actors::DhtHandle;
use rand::{seq::SliceRandom, Rng};

/// How long a host that left the network may take to close its connections.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a leaving host is checked.
const LEAVE_POLL: Duration = Duration::from_millis(20);

/// Shares of the present hosts that leave before each iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChurnRates {
    /// Leave every topic (and come back one iteration later).
    pub topics: f64,
    /// Close every connection (and dial back in one iteration later).
    pub network: f64,
}

impl ChurnRates {
    /// Whether any host ever leaves.
    pub fn is_on(self) -> bool {
        self.topics > 0.0 || self.network > 0.0
    }

    /// Why these rates cannot run, if they cannot.
    pub fn check(self) -> Result<(), String> {
        let valid = |rate: f64| (0.0..1.0).contains(&rate);
        if !valid(self.topics) || !valid(self.network) || self.topics + self.network >= 1.0 {
            return Err(format!(
                "--churn-topics and --churn-network are shares of the hosts in [0, 1) that together stay \
                 below 1 (got {} and {})",
                self.topics, self.network
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Present,
    LeftTopics,
    LeftNetwork,
}

/// What one churn step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ChurnStep {
    pub(super) left_topics: usize,
    pub(super) left_network: usize,
    pub(super) returned: usize,
}

/// Who is present among the hosts of one network.
#[derive(Debug)]
pub(super) struct Churn {
    rates: ChurnRates,
    presence: Vec<Presence>,
    topics: Vec<String>,
    degree: usize,
}

impl Churn {
    /// `hosts` hosts, all present, subscribed to `topics`; a host dialling back in dials `degree`
    /// present hosts.
    pub(super) fn new(hosts: usize, rates: ChurnRates, topics: &[String], degree: usize) -> Self {
        Self {
            rates,
            presence: vec![Presence::Present; hosts],
            topics: topics.to_vec(),
            degree,
        }
    }

    /// Whether host `index` is connected and subscribed.
    pub(super) fn is_present(&self, index: usize) -> bool {
        self.presence[index] == Presence::Present
    }

    /// Brings back the hosts that left, then has new ones leave; host `keep` (the next publisher)
    /// stays.
    pub(super) async fn step(
        &mut self,
        peers: &[DhtHandle],
        keep: usize,
        rng: &mut impl Rng,
    ) -> anyhow::Result<ChurnStep> {
        let mut step = ChurnStep::default();
        let returning: Vec<(usize, Presence)> = self
            .presence
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != Presence::Present)
            .map(|(i, p)| (i, *p))
            .collect();
        for (index, _) in &returning {
            self.presence[*index] = Presence::Present;
        }
        for (index, was) in returning {
            match was {
                Presence::LeftTopics => self.subscribe(&peers[index]).await?,
                Presence::LeftNetwork => self.dial_back_in(peers, index, rng).await?,
                Presence::Present => {}
            }
            step.returned += 1;
        }
        let mut candidates: Vec<usize> = (0..peers.len()).filter(|&i| i != keep).collect();
        candidates.shuffle(rng);
        let share = |rate: f64| (rate * peers.len() as f64).round() as usize;
        let (to_topics, to_network) = (share(self.rates.topics), share(self.rates.network));
        let mut leaving = candidates.into_iter();
        for index in leaving.by_ref().take(to_topics) {
            for topic in &self.topics {
                peers[index].unsubscribe(topic).await?;
            }
            self.presence[index] = Presence::LeftTopics;
            step.left_topics += 1;
        }
        for index in leaving.take(to_network) {
            leave_network(&peers[index], &self.topics[0]).await?;
            self.presence[index] = Presence::LeftNetwork;
            step.left_network += 1;
        }
        Ok(step)
    }

    async fn subscribe(&self, peer: &DhtHandle) -> anyhow::Result<()> {
        for topic in &self.topics {
            peer.subscribe(topic).await?;
        }
        Ok(())
    }

    /// Host `index` dials `degree` present hosts at random.
    async fn dial_back_in(
        &self,
        peers: &[DhtHandle],
        index: usize,
        rng: &mut impl Rng,
    ) -> anyhow::Result<()> {
        let mut present: Vec<usize> = (0..peers.len())
            .filter(|&i| i != index && self.is_present(i))
            .collect();
        present.shuffle(rng);
        for other in present.into_iter().take(self.degree.max(1)) {
            let address = peers[other]
                .listen_addrs()
                .first()
                .cloned()
                .context("a host listens nowhere")?;
            peers[index].connect((peers[other].peer_id(), address)).await?;
        }
        Ok(())
    }
}

/// Closes every connection of `peer` and waits until it knows no subscriber of `topic` any more:
/// until then a message could still reach it over a closing connection.
async fn leave_network(peer: &DhtHandle, topic: &str) -> anyhow::Result<()> {
    peer.disconnect_all().await?;
    let give_up = tokio::time::Instant::now() + LEAVE_TIMEOUT;
    while peer.topic_peers(topic).await?.subscribed > 0 {
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!("a host leaving the network still had connections after {LEAVE_TIMEOUT:?}");
        }
        tokio::time::sleep(LEAVE_POLL).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_shares_that_leave_someone_present() {
        assert!(ChurnRates::default().check().is_ok());
        assert!(!ChurnRates::default().is_on());
        let rates = ChurnRates {
            topics: 0.2,
            network: 0.1,
        };
        assert!(rates.check().is_ok() && rates.is_on());
        let all_gone = ChurnRates {
            topics: 0.6,
            network: 0.4,
        };
        assert!(all_gone.check().unwrap_err().contains("below 1"));
        assert!(ChurnRates {
            topics: -0.1,
            network: 0.0
        }
        .check()
        .is_err());
    }
}
