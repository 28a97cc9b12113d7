//! What every fake shares: a log of the calls it answered and a script of faults per method.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use zkpilot_core::ports::PortError;

/// One call a fake answered, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The port method, as named in the trait (`acquire_lease`, `reconfig`, ...).
    pub method: &'static str,
    /// Its arguments, rendered briefly (`i-0003 ttl=15000 now=1000`).
    pub args: String,
    /// A scripted fault made it fail (or time out).
    pub failed: bool,
}

/// What a scripted fault does to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails at once.
    Fail,
    /// Waits this long, then fails the way a call with a deadline does ("timed out"). Under
    /// tokio's paused test clock the wait costs no real time.
    Timeout(Duration),
    /// Waits this long, then answers normally.
    Delay(Duration),
}

/// A one-shot action run when a method is next called, before it answers: how a test makes
/// something happen at an exact point of a pass ("the lease is taken by another agent just before
/// this one asks for it").
pub(crate) type Hook = Box<dyn FnOnce() + Send>;

/// Faults, hooks and the call log of one fake.
#[derive(Default)]
pub(crate) struct Script {
    methods: &'static [&'static str],
    next: BTreeMap<&'static str, VecDeque<Fault>>,
    always: BTreeMap<&'static str, Fault>,
    every_method: Option<Fault>,
    hooks: BTreeMap<&'static str, VecDeque<Hook>>,
    calls: Vec<Call>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("next", &self.next)
            .field("always", &self.always)
            .field("every_method", &self.every_method)
            .field("hooks", &self.hooks.iter().map(|(m, h)| (*m, h.len())).collect::<Vec<_>>())
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl Script {
    /// A script for a fake whose methods are `methods` (a typo in a test then fails loudly
    /// instead of scripting nothing).
    pub(crate) fn new(methods: &'static [&'static str]) -> Self {
        Self { methods, ..Self::default() }
    }

    /// The static name of `method`; panics on a method the fake does not have.
    pub(crate) fn method(&self, method: &str) -> &'static str {
        self.methods
            .iter()
            .copied()
            .find(|m| *m == method)
            .unwrap_or_else(|| panic!("no port method {method:?}; methods are {:?}", self.methods))
    }

    /// The next `n` calls of `method` get `fault` (after any already queued).
    pub(crate) fn push(&mut self, method: &str, fault: Fault, n: usize) {
        let m = self.method(method);
        self.next.entry(m).or_default().extend(std::iter::repeat_n(fault, n));
    }

    /// Every call of `method` gets `fault` until healed.
    pub(crate) fn always(&mut self, method: &str, fault: Fault) {
        let m = self.method(method);
        self.always.insert(m, fault);
    }

    /// Every call of every method gets `fault` until healed.
    pub(crate) fn every_method(&mut self, fault: Fault) {
        self.every_method = Some(fault);
    }

    /// Drops every fault of `method` (queued and permanent).
    pub(crate) fn heal(&mut self, method: &str) {
        let m = self.method(method);
        self.next.remove(m);
        self.always.remove(m);
    }

    /// Drops every fault of every method.
    pub(crate) fn heal_all(&mut self) {
        self.next.clear();
        self.always.clear();
        self.every_method = None;
    }

    /// Runs `hook` when `method` is next called.
    pub(crate) fn hook(&mut self, method: &str, hook: Hook) {
        let m = self.method(method);
        self.hooks.entry(m).or_default().push_back(hook);
    }

    /// Records a call and takes its fault and hook, if any.
    pub(crate) fn enter(&mut self, method: &'static str, args: String) -> (Option<Fault>, Option<Hook>) {
        let fault = self
            .next
            .get_mut(method)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.always.get(method).copied())
            .or(self.every_method);
        let failed = matches!(fault, Some(Fault::Fail | Fault::Timeout(_)));
        self.calls.push(Call { method, args, failed });
        (fault, self.hooks.get_mut(method).and_then(VecDeque::pop_front))
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.clone()
    }

    pub(crate) fn clear_calls(&mut self) {
        self.calls.clear();
    }
}

/// Plays a fault: waits if it says so, then the error the call answers (`None`: answer normally).
pub(crate) async fn play(fault: Option<Fault>, port: &'static str, method: &'static str) -> Option<PortError> {
    match fault? {
        Fault::Fail => Some(PortError::msg(port, format!("{method}: scripted failure"))),
        Fault::Timeout(d) => {
            tokio::time::sleep(d).await;
            Some(PortError::msg(port, format!("{method}: timed out after {} ms (scripted)", d.as_millis())))
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: &[&str] = &["a", "b"];

    #[test]
    fn queued_faults_come_before_permanent_ones_and_every_call_is_logged() {
        let mut s = Script::new(METHODS);
        s.always("a", Fault::Delay(Duration::from_millis(5)));
        s.push("a", Fault::Fail, 2);
        let got: Vec<Option<Fault>> = (0..3).map(|_| s.enter("a", String::new()).0).collect();
        assert_eq!(got, vec![Some(Fault::Fail), Some(Fault::Fail), Some(Fault::Delay(Duration::from_millis(5)))]);
        assert_eq!(s.enter("b", "x".into()).0, None);
        s.every_method(Fault::Fail);
        assert_eq!(s.enter("b", String::new()).0, Some(Fault::Fail));
        s.heal_all();
        assert_eq!(s.enter("a", String::new()).0, None);
        let failed: Vec<bool> = s.calls().iter().map(|c| c.failed).collect();
        assert_eq!(failed, vec![true, true, false, false, true, false]);
        s.clear_calls();
        assert!(s.calls().is_empty());
    }

    #[test]
    fn hooks_run_once() {
        let mut s = Script::new(METHODS);
        s.hook("b", Box::new(|| {}));
        assert!(s.enter("b", String::new()).1.is_some());
        assert!(s.enter("b", String::new()).1.is_none());
    }

    #[test]
    #[should_panic(expected = "no port method")]
    fn a_misspelled_method_fails_loudly() {
        Script::new(METHODS).push("c", Fault::Fail, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_waits_then_fails() {
        let started = tokio::time::Instant::now();
        let e = play(Some(Fault::Timeout(Duration::from_secs(30))), "backend", "instances").await;
        assert!(e.is_some_and(|e| e.to_string().contains("timed out")));
        assert!(started.elapsed() >= Duration::from_secs(30));
        assert!(play(Some(Fault::Delay(Duration::from_secs(1))), "backend", "instances").await.is_none());
        assert!(play(None, "backend", "instances").await.is_none());
    }
}
