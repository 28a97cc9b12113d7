//! The judgement at the end of a chaos run, pure so planted histories can test it: which
//! acknowledged writes are lost, which stale reads are real, and which of both only the one loss
//! ZooKeeper cannot prevent explains.
//!
//! That loss: a majority of voters killed together with their disks (elastic mode). ZooKeeper
//! acknowledges a write once a majority logged it, so writes only the lost majority held go with
//! it. A write (or a value a read saw) is excused only if all of these hold, each measured by the
//! harness itself, never taken from zkpilot's own recovery decision:
//! - its zxid is above every survivor's last zxid, read with `srvr` right before the kill;
//! - its zxid is from before the rebuild: an epoch below that of the leader the harness saw once
//!   the ensemble was back (a rebuilt ensemble starts a new epoch, ZooKeeper's Zab);
//! - a write: it was acknowledged after the previous fault began and by the kill (+1 s for the
//!   answer in flight). Older writes had a whole fault's convergence to reach the survivors.
//!
//! And one read anomaly ZooKeeper documents: `sync` is not a quorum operation (ZOOKEEPER-1675,
//! open). A leader cut off from its followers keeps leading until it misses their acks for
//! syncLimit ticks, while they may already have elected a new leader and committed writes; it
//! answers `sync` itself and a read after it with its old data. A read after `sync` below an
//! acknowledged write is therefore set apart, not excused as nothing, when it completed while a
//! partition had cut off the server that was leading (the only server whose `sync` can complete
//! without the quorum: a cut-off follower's `sync` must reach the leader). Reads within one
//! session are never set apart: a server refuses a session that has seen a newer zxid.

use std::collections::BTreeSet;

use serde::Serialize;

use super::faults::PartitionWindow;
use crate::workload::{Ack, StaleRead};

/// One majority lost with its disks, as the harness measured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MajorityLoss {
    /// Index of the fault in the run.
    pub fault: usize,
    /// When the previous fault was injected (or the run began), ms since the Unix epoch.
    pub since_ms: u64,
    /// When the kill was done, ms since the Unix epoch.
    pub killed_ms: u64,
    /// The highest last zxid of any survivor, read right before the kill.
    pub survivors_zxid: i64,
    /// The epoch (zxid >> 32) of the leader once the ensemble served again.
    pub rebuilt_epoch: i64,
}

impl MajorityLoss {
    /// Only the lost majority can have held `zxid`.
    fn only_lost_held(&self, zxid: i64) -> bool {
        zxid > self.survivors_zxid && (zxid >> 32) < self.rebuilt_epoch
    }

    fn excuses_write(&self, a: &Ack) -> bool {
        self.only_lost_held(a.zxid) && a.at_ms >= self.since_ms && a.at_ms <= self.killed_ms + 1_000
    }

    fn excuses_read(&self, r: &StaleRead) -> bool {
        self.only_lost_held(r.expected_zxid) && r.at_ms >= self.killed_ms
    }
}

/// An excused write, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excused {
    /// `w<n>`.
    pub n: u64,
    /// Its zxid.
    pub zxid: i64,
    /// The fault whose lost majority held it.
    pub fault: usize,
}

/// The verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// Acknowledged writes missing at the end that nothing excuses.
    pub lost: Vec<u64>,
    /// Acknowledged writes missing that only a lost majority held.
    pub lost_with_majority: Vec<Excused>,
    /// Stale reads nothing excuses.
    pub stale: Vec<StaleRead>,
    /// Stale reads of a value only a lost majority held.
    pub stale_with_majority: Vec<StaleRead>,
    /// Reads after `sync` a cut-off leader answered (ZOOKEEPER-1675).
    pub stale_deposed_leader: Vec<StaleRead>,
}

/// The read completed while `p` had cut off the leader (+1 s for the answer in flight).
fn through_deposed_leader(r: &StaleRead, p: &PartitionWindow) -> bool {
    r.after_sync && p.was_leader && r.at_ms >= p.from_ms && r.at_ms <= p.to_ms + 1_000
}

/// Judges a run: `acks` the writer's acknowledged writes, `present` the writes read back at the
/// end, `stale` every read that went back, `losses` the majority losses (elastic mode only: in
/// slot mode the disks come back, so nothing is excused), `partitions` every partition injected.
pub fn judge(
    acks: &[Ack],
    present: &BTreeSet<u64>,
    stale: &[StaleRead],
    losses: &[MajorityLoss],
    partitions: &[PartitionWindow],
) -> Judgement {
    let mut j = Judgement::default();
    for a in acks.iter().filter(|a| !present.contains(&a.n)) {
        match losses.iter().find(|l| l.excuses_write(a)) {
            Some(l) => j.lost_with_majority.push(Excused { n: a.n, zxid: a.zxid, fault: l.fault }),
            None => j.lost.push(a.n),
        }
    }
    for r in stale {
        if losses.iter().any(|l| l.excuses_read(r)) {
            j.stale_with_majority.push(*r);
        } else if partitions.iter().any(|p| through_deposed_leader(r, p)) {
            j.stale_deposed_leader.push(*r);
        } else {
            j.stale.push(*r);
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: i64 = 3 << 32;

    fn ack(n: u64, zxid: i64, at_ms: u64) -> Ack {
        Ack { n, zxid, at_ms }
    }

    fn loss() -> MajorityLoss {
        MajorityLoss { fault: 4, since_ms: 1_000, killed_ms: 5_000, survivors_zxid: EPOCH + 100, rebuilt_epoch: 4 }
    }

    fn stale(expected_zxid: i64, at_ms: u64) -> StaleRead {
        StaleRead { expected: 9, expected_zxid, got: 8, after_sync: true, at_ms }
    }

    #[test]
    fn a_missing_write_is_lost_unless_only_the_lost_majority_held_it() {
        let present: BTreeSet<u64> = [1].into();
        let acks = [ack(1, EPOCH + 50, 2_000), ack(2, EPOCH + 101, 4_900), ack(3, EPOCH + 90, 4_950)];
        let j = judge(&acks, &present, &[], &[loss()], &[]);
        assert_eq!(j.lost_with_majority, vec![Excused { n: 2, zxid: EPOCH + 101, fault: 4 }]);
        assert_eq!(j.lost, vec![3], "at or below a survivor's zxid: a survivor had it, so it is lost");
    }

    #[test]
    fn nothing_is_excused_without_a_majority_loss() {
        let j = judge(&[ack(2, EPOCH + 101, 4_900)], &BTreeSet::new(), &[stale(EPOCH + 101, 6_000)], &[], &[]);
        assert_eq!((j.lost, j.stale.len()), (vec![2], 1));
    }

    #[test]
    fn writes_from_before_the_previous_fault_or_after_the_rebuild_are_not_excused() {
        // Acknowledged before the previous fault: it had a whole convergence to reach the
        // survivors. Acknowledged by the rebuilt ensemble (new epoch): the survivors' history.
        let acks = [ack(1, EPOCH + 200, 900), ack(2, (4 << 32) + 5, 5_500), ack(3, EPOCH + 200, 7_000)];
        let j = judge(&acks, &BTreeSet::new(), &[], &[loss()], &[]);
        assert_eq!(j.lost, vec![1, 2, 3]);
    }

    #[test]
    fn a_stale_read_is_excused_only_for_a_value_only_the_lost_majority_held() {
        let reads = [stale(EPOCH + 150, 6_000), stale(EPOCH + 80, 6_000), stale(EPOCH + 150, 4_000)];
        let j = judge(&[], &BTreeSet::new(), &reads, &[loss()], &[]);
        assert_eq!(j.stale_with_majority, vec![reads[0]]);
        assert_eq!(j.stale, vec![reads[1], reads[2]], "a survivor had it, or read before the loss");
    }

    #[test]
    fn a_read_after_sync_is_set_apart_only_while_the_leader_was_cut_off() {
        let window = |was_leader| PartitionWindow { server: 2, was_leader, from_ms: 10_000, to_ms: 20_000 };
        let during = stale(EPOCH + 5, 15_000);
        let after = stale(EPOCH + 5, 25_000);
        let in_session = StaleRead { after_sync: false, ..during };
        let j = judge(&[], &BTreeSet::new(), &[during, after, in_session], &[], &[window(true)]);
        assert_eq!(j.stale_deposed_leader, vec![during]);
        assert_eq!(j.stale, vec![after, in_session], "after the heal, or within a session: stale");
        let j = judge(&[], &BTreeSet::new(), &[during], &[], &[window(false)]);
        assert_eq!(j.stale, vec![during], "a cut-off follower cannot complete a sync");
    }
}
