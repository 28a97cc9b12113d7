//! What long-running operations report while they run. The library prints nothing itself: every
//! operation that takes a while (or changes something) reports to a [`Sink`] its caller passes,
//! and [`print`] writes each event where `zkpilot` has always written it (results on stdout,
//! progress on stderr).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use zkpilot_core::model::ServerId;
use zkpilot_local::InstanceRecord;
use zkpilot_runtime::view::ClusterView;

/// Where an operation reports: called once per event, in order.
pub type Sink<'a> = dyn FnMut(Progress<'_>) + Send + 'a;

/// One event of an operation.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A backup was copied into a new group's store and named its restore seed.
    Restoring {
        /// Backup name (or `latest`).
        backup: &'a str,
        /// The new group.
        dir: &'a Path,
    },
    /// The install was copied into the group directory, where the servers' own uids can read it.
    InstallStaged {
        /// The install asked for.
        from: &'a Path,
        /// The copy the group runs.
        to: &'a Path,
        /// The directory the servers' uids could not enter.
        closed: &'a Path,
    },
    /// The group controller was started.
    ControllerStarted {
        /// The group.
        dir: &'a Path,
        /// Instances wanted.
        size: u32,
    },
    /// The desired number of instances was set.
    DesiredSet {
        /// New size.
        size: u32,
    },
    /// Not converged yet (reported when the reasons change).
    Waiting {
        /// Since the wait began.
        elapsed: Duration,
        /// Why not.
        why: &'a [String],
    },
    /// Converged.
    Converged {
        /// Since the wait began.
        elapsed: Duration,
        /// The converged group.
        view: &'a ClusterView,
    },
    /// An instance (or only its agent) was SIGKILLed.
    Killed {
        /// Its server id.
        id: ServerId,
        /// The instance.
        instance: &'a InstanceRecord,
        /// Only the agent: the instance and its disk stay.
        agent_only: bool,
    },
    /// An instance is terminating; a replacement launches.
    Terminating {
        /// Its server id.
        id: ServerId,
        /// The instance.
        instance: &'a InstanceRecord,
    },
    /// The controller did not stop in time; its process group was killed.
    ControllerKilled {
        /// Its pid.
        pid: u32,
    },
    /// Processes of the group were still running after the controller stopped and were killed.
    LeftoversKilled {
        /// Their pids.
        pids: &'a [u32],
    },
    /// The group is down.
    Down {
        /// The group.
        dir: &'a Path,
    },
    /// A rolling restart resumes; these servers were restarted before.
    Resuming {
        /// Already restarted.
        done: &'a [ServerId],
    },
    /// A rolling upgrade: every server restarts on another ZooKeeper install.
    Upgrading {
        /// The releases the members run now.
        from: &'a [String],
        /// The release they move to.
        to: &'a str,
        /// Its home.
        home: &'a Path,
    },
    /// A server that did not come back on the new install was restarted on its old one.
    RolledBack {
        /// The server.
        id: ServerId,
        /// Whether it serves again.
        back: bool,
    },
    /// One step of a rolling restart: the server restarted and the ensemble is whole again.
    Restarted {
        /// The server.
        id: ServerId,
        /// Its role before the restart (`leader`, `follower`, `observer`).
        role: &'a str,
        /// From the restart request until the ensemble was back.
        back: Duration,
        /// The whole step, the restart itself included.
        total: Duration,
    },
    /// The rolling restart is done.
    RollingDone {
        /// Servers in the restart order.
        servers: usize,
        /// Wall time.
        took: Duration,
    },
}

impl Progress<'_> {
    /// A result the command was asked for (stdout), rather than progress (stderr).
    pub fn is_result(&self) -> bool {
        matches!(self, Self::Restarted { .. } | Self::RollingDone { .. })
    }
}

fn id_or_dash(id: Option<ServerId>) -> String {
    id.map_or("-".into(), |l| l.to_string())
}

impl fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Restoring { backup, dir } => write!(f, "restoring backup {backup} into {}", dir.display()),
            Self::InstallStaged { from, to, closed } => write!(
                f,
                "ZooKeeper at {} is closed to the servers' uids ({} cannot be entered): running a copy in {}",
                from.display(),
                closed.display(),
                to.display()
            ),
            Self::ControllerStarted { dir, size } => {
                write!(f, "controller started for {} ({size} instances)", dir.display())
            }
            Self::DesiredSet { size } => write!(f, "desired capacity set to {size}"),
            Self::Waiting { elapsed, why } => write!(f, "[{:5.1}s] {}", elapsed.as_secs_f64(), why.join("; ")),
            Self::Converged { elapsed, view } => write!(
                f,
                "converged in {:.1}s: {} members, {} voters, leader {}, config {}",
                elapsed.as_secs_f64(),
                view.members.len(),
                view.voters,
                id_or_dash(view.leader),
                view.config_version.as_deref().unwrap_or("-")
            ),
            Self::Killed { id, instance, agent_only: true } => {
                write!(f, "killed the agent of {} (server {id}); the instance and its disk stay", instance.id)
            }
            Self::Killed { id, instance, agent_only: false } => {
                write!(f, "killed instance {} (server {id}, {})", instance.id, instance.address)
            }
            Self::Terminating { id, instance } => {
                write!(f, "terminating instance {} (server {id}); a replacement launches", instance.id)
            }
            Self::ControllerKilled { pid } => write!(f, "controller {pid} did not stop in time; killing its group"),
            Self::LeftoversKilled { pids } => write!(f, "killed leftover processes {pids:?}"),
            Self::Down { dir } => write!(f, "group at {} is down", dir.display()),
            Self::Upgrading { from, to, home } => {
                write!(f, "upgrading ZooKeeper {} -> {to} ({})", from.join(", "), home.display())
            }
            Self::RolledBack { id, back } => write!(
                f,
                "server {id} did not come back on the new install; restarted on its old one: {}",
                if *back { "serving again" } else { "NOT serving" }
            ),
            Self::Resuming { done } => {
                write!(f, "resuming: already restarted {:?}", done.iter().map(|i| i.0).collect::<Vec<_>>())
            }
            Self::Restarted { id, role, back, total } => write!(
                f,
                "restarted server {id} ({role}): back in {:.1}s ({:.1}s with the restart itself)",
                back.as_secs_f64(),
                total.as_secs_f64()
            ),
            Self::RollingDone { servers, took } => {
                write!(f, "rolling restart done: {servers} servers in {:.1}s", took.as_secs_f64())
            }
        }
    }
}

/// Prints results on stdout and progress on stderr, one line each.
pub fn print(p: Progress<'_>) {
    if p.is_result() {
        println!("{p}");
    } else {
        eprintln!("{p}");
    }
}
