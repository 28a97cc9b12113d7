//! Time.

/// Wall clock, in milliseconds since the Unix epoch. Injected so planner inputs are reproducible.
pub trait Clock: Send + Sync {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// The real wall clock ([`epoch_ms`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        epoch_ms()
    }
}

/// Milliseconds since the Unix epoch, 0 if the system clock is set before it.
///
/// The only place zkpilot reads the wall clock. Core decisions never call it: they take `now` as
/// an argument (through a [`Clock`]), so they can be replayed with any time. Adapters use it for
/// timestamps they record (launch times, published documents, log events).
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
