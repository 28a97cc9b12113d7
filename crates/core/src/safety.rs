//! The planner's quorum arithmetic: small named functions, each with its arithmetic in its docs.
//!
//! [`check_plan`] lives in [`crate::check`] and is re-exported here, where the runtime has always
//! found it. It does not use these helpers: a check that shares the planner's arithmetic cannot
//! disagree with it, so it re-derives every rule on its own.

use std::collections::BTreeSet;

pub use crate::check::{Violation, check_plan, check_plan_at};
use crate::model::ServerId;
use crate::observed::{Mode, Observed};

/// Votes needed out of `voters`: a strict majority, `voters / 2 + 1`.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Voters one change may take away: `(voters - 1) / 2`, the number whose loss a quorum survives
/// (1 of 3, 2 of 5). Taking more at once could leave the old or new config without a majority if
/// one more server hiccups during the change.
pub fn max_removable(voters: usize) -> usize {
    voters.saturating_sub(1) / 2
}

/// The voter count a change to the voter set may produce. Odd counts are the goal (an even count
/// adds load without adding fault tolerance), so a swap does not keep an even count either: the
/// leaver is removed or the set grown instead. The one exception is `3 → 2`: the removal cap (1 of
/// 3) makes `3 → 1` impossible in one step, so a voter of three leaving before its replacement is
/// synced (or the first step of lowering the target to one) must pass through two. A change that
/// leaves the voter set as it is (an observer comes or goes) is not held to this.
pub fn voter_count_ok(before: usize, after: usize) -> bool {
    !after.is_multiple_of(2) || (before == 3 && after == 2)
}

/// Never shrink the voter set below the policy minimum (growing is always allowed).
pub fn respects_min_voters(before: usize, after: usize, min_voters: usize) -> bool {
    after >= min_voters.min(before) && after >= 1
}

/// Largest odd number `<= n` (0 for 0).
pub fn largest_odd_at_most(n: usize) -> usize {
    if n == 0 {
        0
    } else if !n.is_multiple_of(2) {
        n
    } else {
        n - 1
    }
}

/// Voters wanted among `members` servers: the (odd) target, but never more than the largest odd
/// number of members, and at least 1. Genesis, the planner and the status view all use it.
pub fn voters_wanted(members: usize, target_voters: usize) -> usize {
    largest_odd_at_most(members).min(target_voters).max(1)
}

/// Servers that can acknowledge the history prefix the leader sends with a reconfig: the leader
/// and its followers, *including* non-voting followers (joiners), but not observers
/// (ZooKeeper's `Leader.isQuorumSynced`, and the Dynamic Reconfiguration guide's
/// "Progress guarantees").
pub fn ack_capable(obs: &Observed) -> BTreeSet<ServerId> {
    obs.health.iter().filter(|(_, h)| matches!(h.mode, Mode::Leader | Mode::Follower)).map(|(id, _)| *id).collect()
}

/// The new voter set has a synced majority; otherwise ZooKeeper answers `NewConfigNoQuorum`, and
/// worse, an added-but-dead voter silently lowers fault tolerance.
pub fn has_synced_quorum(voters: &[ServerId], ack_capable: &BTreeSet<ServerId>) -> bool {
    !voters.is_empty() && voters.iter().filter(|v| ack_capable.contains(v)).count() >= majority(voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        assert_eq!((majority(1), majority(3), majority(4), majority(5)), (1, 2, 3, 3));
        assert_eq!((max_removable(1), max_removable(3), max_removable(5), max_removable(7)), (0, 1, 2, 3));
        assert_eq!((voters_wanted(5, 3), voters_wanted(2, 3), voters_wanted(1, 5), voters_wanted(4, 7)), (3, 1, 1, 3));
    }

    #[test]
    fn voter_counts() {
        assert!(voter_count_ok(3, 5) && voter_count_ok(3, 3) && voter_count_ok(3, 2) && voter_count_ok(2, 3));
        assert!(!voter_count_ok(5, 4) && !voter_count_ok(3, 4) && !voter_count_ok(1, 2) && !voter_count_ok(7, 6));
        assert!(!voter_count_ok(4, 4) && !voter_count_ok(2, 2), "a swap does not keep an even count");
        assert!(respects_min_voters(3, 2, 1) && !respects_min_voters(3, 2, 3) && respects_min_voters(1, 3, 3));
    }
}
