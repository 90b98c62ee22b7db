//! Churn in virtual time: nodes leave and join at rates per virtual hour.

use std::time::Duration;

use super::network::{Network, NodeIndex};

/// Leave and join rates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChurnConfig {
    /// Share of the live nodes that leave per virtual hour.
    pub leave_per_hour: f64,
    /// New nodes per virtual hour, as a share of the live nodes.
    pub join_per_hour: f64,
}

/// Applies churn as virtual time passes; fractions of a node carry over to the next step, so
/// small steps add up to the configured rates without randomness in the counts.
#[derive(Clone, Debug, Default)]
pub struct Churn {
    config: ChurnConfig,
    leave_carry: f64,
    join_carry: f64,
}

/// What one step of churn changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChurnStep {
    /// Nodes that left.
    pub left: Vec<NodeIndex>,
    /// Nodes that joined.
    pub joined: Vec<NodeIndex>,
}

impl Churn {
    /// Churn at `config`'s rates.
    pub fn new(config: ChurnConfig) -> Result<Self, String> {
        for (name, rate) in [("leave", config.leave_per_hour), ("join", config.join_per_hour)] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!(
                    "the {name} rate must be a non-negative number, not {rate}"
                ));
            }
        }
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    /// Lets `elapsed` of virtual time pass: nodes other than `keep` leave, new nodes join.
    pub fn advance(&mut self, network: &mut Network, elapsed: Duration, keep: &[NodeIndex]) -> ChurnStep {
        let hours = elapsed.as_secs_f64() / 3600.0;
        let alive = network.alive_count() as f64;
        self.leave_carry += alive * self.config.leave_per_hour * hours;
        self.join_carry += alive * self.config.join_per_hour * hours;
        let mut step = ChurnStep::default();
        while self.leave_carry >= 1.0 {
            self.leave_carry -= 1.0;
            match network.leave_random(keep) {
                Some(node) => step.left.push(node),
                None => break,
            }
        }
        let joining = self.join_carry.floor();
        self.join_carry -= joining;
        step.joined = network.join_many(joining as usize);
        step
    }
}
