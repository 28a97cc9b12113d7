//! When a running server fences itself for quorum-loss recovery, and the clock that says how long
//! the quorum has been gone. (What recovery then decides is [`crate::recovery`].)

use crate::model::{EnsembleConfig, Instance};
use crate::recovery::needs_recovery;

/// Since when no member has served (no committed config could be read through any server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuorumClock {
    since_ms: Option<u64>,
}

impl QuorumClock {
    /// One observation at `now_ms`: a readable config resets the clock; the first pass without
    /// one starts it, if the backend's instances were read. Without them no server was probed, so
    /// a missing config is no evidence of a quorum loss and the clock is left as it is.
    pub fn observe(&mut self, config_readable: bool, instances_read: bool, now_ms: u64) {
        if config_readable {
            self.since_ms = None;
        } else if instances_read && self.since_ms.is_none() {
            self.since_ms = Some(now_ms);
        }
    }

    /// True once nothing has served for at least `after_ms`: a slow election or a restarting
    /// leader is not a quorum loss.
    pub fn lost_for(&self, after_ms: u64, now_ms: u64) -> bool {
        self.since_ms.is_some_and(|t| now_ms.saturating_sub(t) >= after_ms)
    }

    /// Recovery is over (the fence lifted): start afresh.
    pub fn reset(&mut self) {
        self.since_ms = None;
    }
}

/// What one pass of a running agent knows about a possible quorum loss.
#[derive(Debug, Clone, Copy)]
pub struct FenceCheck<'a> {
    /// The committed config was read this pass (a quorum serves).
    pub config_readable: bool,
    /// This agent's server runs (there is something to fence).
    pub server_running: bool,
    /// [`QuorumClock::lost_for`] the configured debounce.
    pub quorum_lost: bool,
    /// The group's instances, if the backend answered (who is gone must be known, not guessed).
    pub instances: Option<&'a [Instance]>,
    /// The config this server's own dynamic file holds, if it has local state.
    pub local_config: Option<&'a EnsembleConfig>,
}

impl FenceCheck<'_> {
    /// Whether reading the local config is worth it: the cheap conditions hold.
    pub fn suspect(config_readable: bool, server_running: bool, quorum_lost: bool) -> bool {
        !config_readable && server_running && quorum_lost
    }

    /// Fence now: nothing has served for the debounce time while this server runs, and the
    /// live voters of its own config are too few to ever form that config's quorum again. Any
    /// unknown (backend silent, no local state) is a no: fencing stops a server.
    pub fn due(&self) -> bool {
        Self::suspect(self.config_readable, self.server_running, self.quorum_lost)
            && self.instances.zip(self.local_config).is_some_and(|(i, c)| needs_recovery(c, i))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{InstanceId, InstanceState, Role, ServerId, ServerSpec};

    fn config(ids: &[u32]) -> EnsembleConfig {
        let mut c = EnsembleConfig::default();
        for id in ids {
            let spec = ServerSpec::loopback(*id, *id, Role::Participant);
            c.servers.insert(spec.id, spec);
        }
        c
    }

    fn instance(id: u32, state: InstanceState) -> Instance {
        Instance {
            id: InstanceId(format!("i-{id}")),
            state,
            server_id: Some(ServerId(id)),
            address: format!("127.0.0.{id}"),
            zone: "z".into(),
            protected: None,
            hook: None,
        }
    }

    #[test]
    fn the_quorum_clock_starts_on_the_first_pass_without_a_config() {
        let mut q = QuorumClock::default();
        q.observe(false, false, 500);
        assert!(!q.lost_for(0, 500), "a silent backend starts nothing: no server was probed");
        q.observe(false, true, 1_000);
        q.observe(false, true, 5_000);
        assert!(!q.lost_for(10_000, 10_999));
        assert!(q.lost_for(10_000, 11_000), "measured from the first pass without a config");
        q.observe(true, true, 11_000);
        assert!(!q.lost_for(0, 20_000), "a config read resets it");
        q.observe(false, true, 12_000);
        q.reset();
        assert!(!q.lost_for(0, 99_000));
    }

    #[test]
    fn only_a_running_server_without_a_quorum_for_long_is_suspect() {
        assert!(FenceCheck::suspect(false, true, true));
        assert!(!FenceCheck::suspect(true, true, true), "a quorum serves");
        assert!(!FenceCheck::suspect(false, false, true), "nothing runs to fence");
        assert!(!FenceCheck::suspect(false, true, false), "not for long enough");
    }

    #[test]
    fn a_survivor_fences_only_when_too_few_voters_live() {
        let cfg = config(&[1, 2, 3]);
        let one_alive = [
            instance(1, InstanceState::Running),
            instance(2, InstanceState::Terminated),
            instance(3, InstanceState::Terminated),
        ];
        let two_alive = [
            instance(1, InstanceState::Running),
            instance(2, InstanceState::Running),
            instance(3, InstanceState::Terminated),
        ];
        fn check<'a>(instances: Option<&'a [Instance]>, local_config: Option<&'a EnsembleConfig>) -> FenceCheck<'a> {
            FenceCheck { config_readable: false, server_running: true, quorum_lost: true, instances, local_config }
        }
        assert!(check(Some(&one_alive), Some(&cfg)).due());
        assert!(!check(Some(&two_alive), Some(&cfg)).due(), "two of three alive heal by themselves");
        assert!(!check(None, Some(&cfg)).due(), "a silent backend cannot confirm who is gone");
        assert!(!check(Some(&one_alive), None).due(), "no local state: nothing to fence");
    }

    proptest! {
        #[test]
        fn never_fences_while_a_quorum_serves_or_nothing_runs(
            readable in any::<bool>(), running in any::<bool>(), lost in any::<bool>(), alive in 0usize..4,
        ) {
            let cfg = config(&[1, 2, 3]);
            let instances: Vec<Instance> = (1..=3u32)
                .map(|id| instance(id, if (id as usize) <= alive { InstanceState::Running } else { InstanceState::Terminated }))
                .collect();
            let check = FenceCheck {
                config_readable: readable,
                server_running: running,
                quorum_lost: lost,
                instances: Some(&instances),
                local_config: Some(&cfg),
            };
            if check.due() {
                prop_assert!(!readable && running && lost && alive < 2);
            }
            prop_assert_eq!(check.due(), !readable && running && lost && alive < 2);
        }
    }
}
