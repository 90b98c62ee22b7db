//! Sans-IO round planning: who provides, who retrieves.
//!
//! The provider role rotates by node id: each round it goes to the ready member with the next
//! id after the last provider's, wrapping around. Members may come and go between rounds
//! (discovery), and the rotation neither skips nor repeats anyone because of it. parsec indexes
//! its ready-list with positions from its full list and panics when a node is not ready; this
//! planner cannot.

use crate::NodeId;

/// One member as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's node id.
    pub id: NodeId,
    /// Whether it answered its readiness check.
    pub ready: bool,
    /// Whether its fleet may provide.
    pub provides: bool,
    /// Whether its fleet may retrieve.
    pub retrieves: bool,
}

impl MemberStatus {
    /// A member of a fleet that both provides and retrieves.
    pub fn both(id: NodeId, ready: bool) -> Self {
        Self {
            id,
            ready,
            provides: true,
            retrieves: true,
        }
    }
}

/// Positions (into the candidate list) taking part in one round.
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
    last_provider: Option<NodeId>,
}

impl RoundPlanner {
    /// Plans a round over `candidates`. `None` when no member that may provide is ready.
    pub fn plan(&mut self, candidates: &[MemberStatus]) -> Option<RoundPlan> {
        let last = self.last_provider;
        // Ids after the last provider's come first (smallest first), then the wrap-around.
        let (provider, chosen) = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ready && c.provides)
            .min_by_key(|(_, c)| (last.is_some_and(|last| c.id <= last), c.id))?;
        self.last_provider = Some(chosen.id);
        let retrievers = candidates
            .iter()
            .enumerate()
            .filter(|&(i, c)| i != provider && c.ready && c.retrieves)
            .map(|(i, _)| i)
            .collect();
        let not_ready = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.ready)
            .map(|(i, _)| i)
            .collect();
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

    /// Members with ids 1.. whose readiness is `ready`.
    fn members(ready: &[bool]) -> Vec<MemberStatus> {
        ready
            .iter()
            .enumerate()
            .map(|(i, &r)| MemberStatus::both(NodeId(i as i64 + 1), r))
            .collect()
    }

    #[test]
    fn rotates_over_every_member_when_all_ready() {
        let mut planner = RoundPlanner::default();
        let providers: Vec<_> = (0..7)
            .map(|_| planner.plan(&members(&[true; 3])).unwrap().provider)
            .collect();
        assert_eq!(providers, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn skips_members_that_are_not_ready() {
        let mut planner = RoundPlanner::default();
        let ready = members(&[true, false, true, false]);
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
            let plan = planner.plan(&members(&ready)).unwrap();
            assert!(plan.provider == 5 || plan.provider == 6);
            assert_eq!(plan.retrievers.len(), 1);
            assert_eq!(plan.not_ready.len(), 5);
        }
    }

    #[test]
    fn nobody_ready_means_no_round() {
        assert_eq!(RoundPlanner::default().plan(&members(&[false, false])), None);
        assert_eq!(RoundPlanner::default().plan(&[]), None);
    }

    #[test]
    fn rotation_follows_ids_when_members_come_and_go() {
        let mut planner = RoundPlanner::default();
        let ids = |ids: &[i64]| -> Vec<MemberStatus> {
            ids.iter().map(|&i| MemberStatus::both(NodeId(i), true)).collect()
        };
        let provider = |planner: &mut RoundPlanner, list: &[MemberStatus]| {
            list[planner.plan(list).unwrap().provider].id.0
        };
        assert_eq!(provider(&mut planner, &ids(&[3, 5, 9])), 3);
        // Node 5 left and node 4 joined: the next id after 3 is 4.
        assert_eq!(provider(&mut planner, &ids(&[3, 4, 9])), 4);
        assert_eq!(provider(&mut planner, &ids(&[3, 4, 9])), 9);
        // Wraps to the smallest id.
        assert_eq!(provider(&mut planner, &ids(&[3, 4, 9])), 3);
    }

    #[test]
    fn cross_fleet_roles_keep_providers_and_retrievers_apart() {
        // Members 1, 2 provide only (fleet A); 3, 4 retrieve only (fleet B).
        let list: Vec<MemberStatus> = (1..=4)
            .map(|i| MemberStatus {
                id: NodeId(i),
                ready: true,
                provides: i <= 2,
                retrieves: i > 2,
            })
            .collect();
        let mut planner = RoundPlanner::default();
        for expected in [0, 1, 0] {
            let plan = planner.plan(&list).unwrap();
            assert_eq!(plan.provider, expected);
            assert_eq!(plan.retrievers, vec![2, 3]);
        }
    }
}
