//! What the last round found of each fleet: servers ready, not ready, and marked offline. A
//! scheduler exports it as metrics, so an alert can say which fleet has no ready server.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::FleetMember;

/// One fleet's servers in the last round that checked readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Answered readiness in time as the peer they registered as.
    pub ready: usize,
    /// Did not: skipped by the round.
    pub not_ready: usize,
    /// Of those, marked offline in the registry (discovered fleets only).
    pub marked_offline: usize,
}

/// Servers per fleet, as a round's readiness check found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetCensus {
    /// Per fleet name (a member without a fleet of its own counts in the round's fleet).
    pub fleets: BTreeMap<String, ServerCounts>,
}

impl FleetCensus {
    /// Counts `members` by their `readiness`; not-ready ones count as marked offline when the
    /// round marks them (`marks_offline`).
    pub(super) fn of(
        members: &[FleetMember],
        readiness: &[Result<(), String>],
        round_fleet: &str,
        marks_offline: bool,
    ) -> Self {
        let found = members.iter().zip(readiness);
        Self::count(
            found.map(|(member, ready)| (member.fleet_or(round_fleet), ready.is_ok())),
            marks_offline,
        )
    }

    fn count<'a>(members: impl Iterator<Item = (&'a str, bool)>, marks_offline: bool) -> Self {
        let mut fleets: BTreeMap<String, ServerCounts> = BTreeMap::new();
        for (fleet, ready) in members {
            let counts = fleets.entry(fleet.to_owned()).or_default();
            if ready {
                counts.ready += 1;
            } else {
                counts.not_ready += 1;
                counts.marked_offline += usize::from(marks_offline);
            }
        }
        Self { fleets }
    }
}

/// Takes the [`FleetCensus`] of a `FleetSupervisor`'s last round: `None` when no round has
/// checked readiness since it was last taken (a round that failed before, e.g. discovery).
#[derive(Debug, Message)]
#[rtype(result = "Option<FleetCensus>")]
pub struct TakeCensus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_counted_per_fleet_and_marked_offline_only_where_the_round_marks() {
        let members = [
            ("optprov", true),
            ("default", false),
            ("optprov", false),
            ("default", true),
            ("default", true),
        ];
        let census = FleetCensus::count(members.into_iter(), true);
        let counts = |ready, not_ready| ServerCounts {
            ready,
            not_ready,
            marked_offline: not_ready,
        };
        assert_eq!(census.fleets["optprov"], counts(1, 1));
        assert_eq!(census.fleets["default"], counts(2, 1));
        let fixed = FleetCensus::count(members.into_iter(), false);
        assert_eq!(fixed.fleets["default"].marked_offline, 0);
        assert_eq!(fixed.fleets.len(), 2);
    }
}
