//! Sans-IO round planning: who provides, who retrieves.
//!
//! The provider rotates over the fleet's member list; a member that is not ready is skipped, and
//! positions always index the full list. parsec indexes its ready-list with positions from its
//! full list and panics when a node is not ready; this planner cannot.

/// Positions (into the fleet's member list) taking part in one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundPlan {
    /// The member that publishes.
    pub provider: usize,
    /// The ready members that look the record up.
    pub retrievers: Vec<usize>,
    /// Members skipped because they were not ready.
    pub not_ready: Vec<usize>,
}

/// Rotates the provider role over ready members.
#[derive(Clone, Debug, Default)]
pub struct RoundPlanner {
    /// The position after the last provider.
    cursor: usize,
}

impl RoundPlanner {
    /// Plans a round for members whose readiness is `ready` (one entry per member, in order).
    /// `None` when no member is ready.
    pub fn plan(&mut self, ready: &[bool]) -> Option<RoundPlan> {
        let n = ready.len();
        let provider = (0..n)
            .map(|offset| (self.cursor + offset) % n)
            .find(|&i| ready[i])?;
        self.cursor = (provider + 1) % n;
        let retrievers = (0..n).filter(|&i| i != provider && ready[i]).collect();
        let not_ready = (0..n).filter(|&i| !ready[i]).collect();
        Some(RoundPlan {
            provider,
            retrievers,
            not_ready,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_over_every_member_when_all_ready() {
        let mut planner = RoundPlanner::default();
        let providers: Vec<_> = (0..7)
            .map(|_| planner.plan(&[true; 3]).unwrap().provider)
            .collect();
        assert_eq!(providers, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skips_members_that_are_not_ready() {
        let mut planner = RoundPlanner::default();
        let ready = [true, false, true, false];
        let first = planner.plan(&ready).unwrap();
        assert_eq!(
            first,
            RoundPlan {
                provider: 0,
                retrievers: vec![2],
                not_ready: vec![1, 3]
            }
        );
        assert_eq!(planner.plan(&ready).unwrap().provider, 2);
        assert_eq!(planner.plan(&ready).unwrap().provider, 0);
    }

    #[test]
    fn more_registered_than_ready_never_indexes_out_of_range() {
        // The parsec failure: 7 registered, only the last 2 ready.
        let mut planner = RoundPlanner::default();
        let mut ready = [false; 7];
        ready[5] = true;
        ready[6] = true;
        for _ in 0..20 {
            let plan = planner.plan(&ready).unwrap();
            assert!(plan.provider == 5 || plan.provider == 6);
            assert_eq!(plan.retrievers.len(), 1);
        }
    }

    #[test]
    fn nobody_ready_means_no_round() {
        assert_eq!(RoundPlanner::default().plan(&[false, false]), None);
        assert_eq!(RoundPlanner::default().plan(&[]), None);
    }
}
