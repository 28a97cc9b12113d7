//! Scenario tests: the real agent (`zkpilot_runtime::Agent`: boot, observe, plan, execute,
//! publish, supervision, recovery) driven pass by pass over the testkit's fakes. No JVM, no
//! network, no wall clock: each runs in milliseconds, on tokio's paused clock so that a scripted
//! timeout or a retry pause costs no real time, and every test checks what the fakes recorded.
//!
//! One binary for all of them (one link); one module per area.

mod harness;

mod boot;
mod operator;
mod publish;
mod reconfig;
mod recovery;
mod scale_in;
mod supervise;
mod tls;
mod upgrade;
