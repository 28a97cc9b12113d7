//! A clock that moves only when the test moves it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use zkpilot_core::ports::Clock;

/// Milliseconds since the Unix epoch, set by the test. Clones share the time: give one to the
/// agent, keep one to [`advance`](Self::advance).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// Starts at `start_ms`.
    pub fn at(start_ms: u64) -> Self {
        Self { now: Arc::new(AtomicU64::new(start_ms)) }
    }

    /// Moves time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time (backwards too: a wall clock can step).
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A fixed, recognisable instant (2023-11-14T22:13:20Z), far from 0 so that "since" arithmetic
    /// never underflows.
    fn default() -> Self {
        Self::at(1_700_000_000_000)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_time_and_only_advance_moves_it() {
        let clock = ManualClock::at(1000);
        let agents = clock.clone();
        assert_eq!(agents.now_ms(), 1000);
        clock.advance(250);
        assert_eq!(agents.now_ms(), 1250);
        agents.set(10);
        assert_eq!(clock.now_ms(), 10);
        assert_eq!(ManualClock::default().now_ms(), 1_700_000_000_000);
    }
}
