//! The agent's throttles as plain data over `now_ms` (the clock port's reading): how often a call
//! is repeated, how long a reading is reused, when a crashed server may start again. Nothing here
//! reads a clock, so a manual clock drives them all in tests.

use std::collections::BTreeMap;

use crate::backup::periodic_due;

/// At most once per period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Every {
    period_ms: u64,
    last_ms: Option<u64>,
}

impl Every {
    /// Due at once, then once per `period_ms`.
    pub const fn new(period_ms: u64) -> Self {
        Self { period_ms, last_ms: None }
    }

    /// True if never done, or done at least a period ago. A clock that went back counts as no
    /// time passed.
    pub fn due(&self, now_ms: u64) -> bool {
        self.last_ms.is_none_or(|t| now_ms.saturating_sub(t) >= self.period_ms)
    }

    /// Done at `now_ms`.
    pub fn mark(&mut self, now_ms: u64) {
        self.last_ms = Some(now_ms);
    }

    /// [`Self::due`], and if so [`Self::mark`]: for calls retried only after a period whatever
    /// their result.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let due = self.due(now_ms);
        if due {
            self.mark(now_ms);
        }
        due
    }

    /// Due at once again.
    pub fn reset(&mut self) {
        self.last_ms = None;
    }
}

/// [`Every`] for each of many keys (one lifecycle heartbeat per instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerKey<K: Ord> {
    period_ms: u64,
    last_ms: BTreeMap<K, u64>,
}

impl<K: Ord + Clone> PerKey<K> {
    /// Each key due at once, then once per `period_ms`.
    pub const fn new(period_ms: u64) -> Self {
        Self { period_ms, last_ms: BTreeMap::new() }
    }

    /// True (and marked) if `key` was never taken or was taken at least a period ago.
    pub fn take(&mut self, key: &K, now_ms: u64) -> bool {
        let due = self.last_ms.get(key).is_none_or(|t| now_ms.saturating_sub(*t) >= self.period_ms);
        if due {
            self.last_ms.insert(key.clone(), now_ms);
        }
        due
    }
}

/// A reading reused while younger than `max_age_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<T> {
    max_age_ms: u64,
    value: Option<(u64, T)>,
}

impl<T> Cached<T> {
    /// Empty.
    pub const fn new(max_age_ms: u64) -> Self {
        Self { max_age_ms, value: None }
    }

    /// The reading if it is fresh at `now_ms`.
    pub fn fresh(&self, now_ms: u64) -> Option<&T> {
        self.value.as_ref().filter(|(at, _)| now_ms.saturating_sub(*at) < self.max_age_ms).map(|(_, v)| v)
    }

    /// Stores a reading taken at `now_ms`.
    pub fn put(&mut self, now_ms: u64, value: T) {
        self.value = Some((now_ms, value));
    }

    /// Forgets it (the server it describes stopped).
    pub fn clear(&mut self) {
        self.value = None;
    }
}

/// Capped exponential delays, from `min_ms` doubling up to `max_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next_ms: u64,
    min_ms: u64,
    max_ms: u64,
}

impl Backoff {
    /// Starts at `min_ms`, doubles up to `max_ms`.
    pub const fn new(min_ms: u64, max_ms: u64) -> Self {
        Self { next_ms: min_ms, min_ms, max_ms }
    }

    /// The delay before the next attempt.
    pub fn next_delay_ms(&mut self) -> u64 {
        let d = self.next_ms;
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms);
        d
    }

    /// Start over from `min_ms`.
    pub fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }
}

/// When a server that exited unexpectedly may start again: after a backoff that grows with
/// every crash and starts over once a run lasted [`Restarts::RAN_FINE_MS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarts {
    backoff: Backoff,
    started_ms: Option<u64>,
    not_before_ms: Option<u64>,
}

impl Default for Restarts {
    fn default() -> Self {
        Self { backoff: Backoff::new(1_000, 30_000), started_ms: None, not_before_ms: None }
    }
}

impl Restarts {
    /// A run at least this long was fine: the next crash restarts after the shortest delay.
    pub const RAN_FINE_MS: u64 = 60_000;

    /// The server was started at `now_ms`.
    pub fn started(&mut self, now_ms: u64) {
        self.started_ms = Some(now_ms);
        self.not_before_ms = None;
    }

    /// The server exited at `now_ms`: returns the delay before it may start again.
    pub fn exited(&mut self, now_ms: u64) -> u64 {
        if self.started_ms.is_some_and(|t| now_ms.saturating_sub(t) > Self::RAN_FINE_MS) {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay_ms();
        self.not_before_ms = Some(now_ms.saturating_add(delay));
        delay
    }

    /// False while a restart's backoff runs.
    pub fn may_start(&self, now_ms: u64) -> bool {
        self.not_before_ms.is_none_or(|t| now_ms >= t)
    }
}

/// How long an agent sleeps between passes. A booting agent waits on others (their claims, the
/// marker, the first leader): it polls fast for a while so a fresh ensemble does not lose whole
/// passes per boot step (BENCHMARKS.md B4), then at the normal pace so a long wait costs few
/// backend calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// When the agent was created.
    pub born_ms: u64,
    /// The configured pass interval.
    pub pass_ms: u64,
}

impl Pace {
    /// The fast interval while booting.
    pub const BOOT_PASS_MS: u64 = 100;
    /// How long after its creation a booting agent polls fast.
    pub const BOOT_FAST_FOR_MS: u64 = 30_000;
    /// How often a leaving agent reads the committed config between passes, to stop its server
    /// the moment it is removed (ZooKeeper reads only; the backend is not asked).
    pub const LEAVING_POLL_MS: u64 = 50;

    /// The wait after a pass: `settled` once the agent was ever a member, `fenced` while recovery
    /// holds it.
    pub fn wait_ms(&self, settled: bool, fenced: bool, now_ms: u64) -> u64 {
        let booting = !settled && !fenced && now_ms.saturating_sub(self.born_ms) < Self::BOOT_FAST_FOR_MS;
        if booting { self.pass_ms.min(Self::BOOT_PASS_MS) } else { self.pass_ms }
    }
}

/// What the periodic backup wants this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupDue {
    /// Nothing (not the leader, periodic backups off, or not yet due).
    No,
    /// This agent just became leader: learn when the newest backup was taken first (another
    /// agent may have taken it), then ask again.
    ListFirst,
    /// Take one now.
    Now,
}

/// The leader's periodic backup: only the leader's agent backs up, every `interval_ms` after the
/// newest backup in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodicBackup {
    listed: bool,
    newest_ms: Option<u64>,
}

impl PeriodicBackup {
    /// What is due at `now_ms`. Losing the leadership forgets the listing: the next leader term
    /// lists again.
    pub fn due(&mut self, leader: bool, interval_ms: u64, now_ms: u64) -> BackupDue {
        if !leader {
            self.listed = false;
            return BackupDue::No;
        }
        if interval_ms == 0 {
            return BackupDue::No;
        }
        if !self.listed {
            return BackupDue::ListFirst;
        }
        if periodic_due(self.newest_ms, interval_ms, now_ms) { BackupDue::Now } else { BackupDue::No }
    }

    /// The store's newest backup was taken at `newest_ms` (`None`: it holds none).
    pub fn listed(&mut self, newest_ms: Option<u64>) {
        self.listed = true;
        self.newest_ms = newest_ms;
    }

    /// This agent stored a backup at `now_ms` (any reason).
    pub fn taken(&mut self, now_ms: u64) {
        self.newest_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_is_due_at_once_then_once_per_period() {
        let mut e = Every::new(60_000);
        assert!(e.take(5));
        assert!(!e.take(59_999 + 4));
        assert!(e.take(60_005));
        assert!(!e.due(1), "a clock that went back is no time passed");
        e.reset();
        assert!(e.due(1));
    }

    #[test]
    fn per_key_throttles_each_key_alone() {
        let mut p = PerKey::new(60_000);
        assert!(p.take(&"a", 0));
        assert!(p.take(&"b", 10));
        assert!(!p.take(&"a", 59_999));
        assert!(p.take(&"a", 60_000));
        assert!(!p.take(&"b", 60_000));
    }

    #[test]
    fn cached_is_reused_while_young() {
        let mut c = Cached::new(1500);
        assert_eq!(c.fresh(0), None);
        c.put(100, 7);
        assert_eq!(c.fresh(1599), Some(&7));
        assert_eq!(c.fresh(1600), None);
        c.clear();
        assert_eq!(c.fresh(101), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        // Moved from the supervisor's test: same delays.
        let mut b = Backoff::new(100, 350);
        let d: Vec<u64> = (0..4).map(|_| b.next_delay_ms()).collect();
        assert_eq!(d, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay_ms(), 100);
    }

    #[test]
    fn a_crash_loop_backs_off_and_a_long_run_starts_over() {
        let mut r = Restarts::default();
        r.started(0);
        assert_eq!(r.exited(1_000), 1_000);
        assert!(!r.may_start(1_999));
        assert!(r.may_start(2_000));
        r.started(2_000);
        assert_eq!(r.exited(3_000), 2_000, "a second quick crash waits longer");
        r.started(5_000);
        assert_eq!(r.exited(5_000 + Restarts::RAN_FINE_MS + 1), 1_000, "a run of over a minute was fine");
    }

    #[test]
    fn pace_is_fast_only_while_booting() {
        let p = Pace { born_ms: 1_000, pass_ms: 2_000 };
        assert_eq!(p.wait_ms(false, false, 1_000), 100);
        assert_eq!(p.wait_ms(true, false, 1_000), 2_000, "a member polls at the normal pace");
        assert_eq!(p.wait_ms(false, true, 1_000), 2_000, "a fenced agent waits on people, not passes");
        assert_eq!(p.wait_ms(false, false, 1_000 + Pace::BOOT_FAST_FOR_MS), 2_000);
        assert_eq!(Pace { born_ms: 0, pass_ms: 50 }.wait_ms(false, false, 0), 50, "never slower than configured");
    }

    #[test]
    fn periodic_backup_lists_first_on_each_leader_term() {
        let mut b = PeriodicBackup::default();
        assert_eq!(b.due(false, 1_000, 0), BackupDue::No);
        assert_eq!(b.due(true, 0, 0), BackupDue::No, "interval 0 turns periodic backups off");
        assert_eq!(b.due(true, 1_000, 0), BackupDue::ListFirst);
        b.listed(Some(500));
        assert_eq!(b.due(true, 1_000, 1_499), BackupDue::No);
        assert_eq!(b.due(true, 1_000, 1_500), BackupDue::Now);
        b.taken(1_500);
        assert_eq!(b.due(true, 1_000, 2_000), BackupDue::No);
        assert_eq!(b.due(false, 1_000, 9_000), BackupDue::No);
        assert_eq!(b.due(true, 1_000, 9_000), BackupDue::ListFirst, "a new term lists again");
        b.listed(None);
        assert_eq!(b.due(true, 1_000, 9_000), BackupDue::Now, "an empty store is due at once");
    }

    proptest! {
        #[test]
        fn every_never_fires_twice_within_a_period(period in 1u64..10_000, steps in prop::collection::vec(0u64..5_000, 1..40)) {
            let mut e = Every::new(period);
            let mut now = 0u64;
            let mut fired: Vec<u64> = Vec::new();
            for s in steps {
                now += s;
                if e.take(now) {
                    fired.push(now);
                }
            }
            for w in fired.windows(2) {
                prop_assert!(w[1] - w[0] >= period);
            }
        }

        #[test]
        fn backoff_stays_within_its_bounds(min in 1u64..1_000, extra in 0u64..100_000, n in 1usize..40) {
            let max = min + extra;
            let mut b = Backoff::new(min, max);
            let mut last = 0;
            for _ in 0..n {
                let d = b.next_delay_ms();
                prop_assert!(d >= min && d <= max && d >= last);
                last = d;
            }
        }

        #[test]
        fn a_restart_never_comes_before_its_delay(crashes in prop::collection::vec((0u64..100_000, 0u64..100_000), 1..20)) {
            let mut r = Restarts::default();
            let mut now = 0u64;
            for (ran, extra) in crashes {
                r.started(now);
                now += ran;
                let delay = r.exited(now);
                prop_assert!((1_000..=30_000).contains(&delay));
                prop_assert!(delay == 0 || !r.may_start(now + delay - 1));
                prop_assert!(r.may_start(now + delay));
                now += delay + extra;
            }
        }
    }
}
