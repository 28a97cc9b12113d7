//! The faults chaos injects into a local group, and what it reads back about the recovery.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use zkpilot_core::ServerId;
use zkpilot_ops::local::{self, GroupError};
use zkpilot_ops::progress::print;
use zkpilot_runtime::view::MemberView;

/// Kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// kill -9 of a random member's instance (agent, JVM, disk gone in elastic mode); the group
    /// notices after its health-check delay, as a cloud does.
    KillRandom,
    /// kill -9 of the leader's instance.
    KillLeader,
    /// kill -9 of the lease-holding agent while a scale-out's membership change is pending.
    KillAgentMidReconfig,
    /// The desired size changes (3..=5) and a random member is killed right after.
    ScaleDuringKill,
    /// All voters but one killed at once (quorum loss; elastic: their disks are gone).
    LoseMajority,
    /// One instance cut off until it is seen out of the quorum (it counts as injected only then)
    /// and 4-10 s more, then healed: its ZooKeeper's quorum and election traffic (nft `meta
    /// skuid` rules on its own uid), and its agent's connections to every other server and theirs
    /// to it (`meta skgid`, the agent's own gid). The local backend, a shared directory, stays
    /// reachable (a cloud API usually does too). Needs root and nft.
    Partition,
    /// Not a fault: a rolling restart (`zkpilot rolling-restart`) of every server, under the same checks.
    RollingRestart,
}

/// One fault of each kind, in the order the short profile injects them.
pub const ALL: [Fault; 6] = [
    Fault::KillRandom,
    Fault::KillLeader,
    Fault::KillAgentMidReconfig,
    Fault::ScaleDuringKill,
    Fault::Partition,
    Fault::LoseMajority,
];

/// The nft table of the group on `net`.
pub fn partition_table(net: &str) -> String {
    format!("zkpilot_chaos_{}", net.replace('.', "_"))
}

/// Removes a partition table an earlier, killed run left behind on `net`.
pub fn clear_partitions(net: &str) {
    PartitionRules::clear(&partition_table(net));
}

/// Partitions need a uid per server and nft rules: root and the `nft` binary.
pub fn partitions_possible() -> bool {
    nix::unistd::Uid::effective().is_root()
        && std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// An nft table that cuts one instance off: its ZooKeeper's quorum and election traffic, and its
/// agent from every other server (and the other agents from it); deleted on drop.
struct PartitionRules {
    table: String,
}

impl PartitionRules {
    /// Deletes the table if an earlier run left it (a harness killed mid-partition runs no Drop).
    pub fn clear(table: &str) {
        let _ignored = std::process::Command::new("nft").args(["delete", "table", "inet", table]).output();
    }

    fn apply(table: &str, uid: u32, agent_gid: u32, address: &str) -> anyhow::Result<Self> {
        Self::clear(table);
        // On loopback every connection's source is 127.0.0.1, so addresses cannot tell servers
        // apart; the socket's owner can (`meta skuid`/`meta skgid`, nft(8) "META EXPRESSIONS").
        // The server's outgoing connections to peers and its replies on connections peers opened
        // are dropped; its agent reaches only its own server; other agents (gids from
        // AGENT_GID_BASE) no longer reach it. Clients (the harness's own uid) still do, as
        // clients on the partitioned side would.
        let base = zkpilot_local::group::AGENT_GID_BASE;
        let rules = format!(
            "table inet {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    \
             meta skuid {uid} tcp dport {{ 2888, 3888 }} counter drop\n    \
             meta skuid {uid} tcp sport {{ 2888, 3888 }} counter drop\n    \
             meta skgid {agent_gid} ip daddr != {address} counter drop\n    \
             meta skgid {base}-{} meta skgid != {agent_gid} ip daddr {address} counter drop\n  }}\n}}\n",
            base + zkpilot_local::group::MAX_SEQ
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running nft")?;
        std::io::Write::write_all(child.stdin.as_mut().context("nft stdin")?, rules.as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("nft -f refused the partition rules ({status})");
        }
        Ok(Self { table: table.to_string() })
    }
}

impl PartitionRules {
    /// Packets each rule dropped so far, in rule order (server out, server replies, its agent,
    /// other agents): what shows the cut took effect on each side.
    fn dropped(&self) -> Vec<u64> {
        let out = std::process::Command::new("nft").args(["list", "table", "inet", &self.table]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split("counter packets ").nth(1)?.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

impl Drop for PartitionRules {
    fn drop(&mut self) {
        let _ignored = std::process::Command::new("nft").args(["delete", "table", "inet", &self.table]).output();
    }
}

/// A random fault of the long profile (partitions only where possible).
pub fn pick(rng: &mut fastrand::Rng, partitions: bool) -> Fault {
    // Weights: plain kills most, quorum loss least (each one takes the longest to heal).
    loop {
        let f = match rng.u32(0..100) {
            0..25 => Fault::KillRandom,
            25..42 => Fault::KillLeader,
            42..56 => Fault::KillAgentMidReconfig,
            56..74 => Fault::ScaleDuringKill,
            74..90 => Fault::Partition,
            _ => Fault::LoseMajority,
        };
        if partitions || f != Fault::Partition {
            return f;
        }
    }
}

/// What an injection did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Injected {
    /// Servers hit.
    pub targets: Vec<u32>,
    /// Whether the fault was shown to take effect (a partition: its member left the quorum).
    /// Kills and size changes take effect by construction.
    pub took_effect: bool,
    /// Every place the injection did something other than its description says, and why.
    pub fallbacks: Vec<String>,
    /// Quorum loss: each survivor's last zxid, read by the harness itself (`srvr`) right before
    /// the kill; `server id -> zxid`.
    pub survivors_zxid: Vec<(u32, i64)>,
    /// Quorum loss: when the kill was done, ms since the Unix epoch.
    pub killed_ms: u64,
    /// A partition: whom it cut off, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartitionWindow>,
}

/// When one server was cut off, and whether it led then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionWindow {
    /// The server cut off.
    pub server: u32,
    /// It was the leader when it was cut off.
    pub was_leader: bool,
    /// From, ms since the Unix epoch.
    pub from_ms: u64,
    /// Until it was healed.
    pub to_ms: u64,
}

impl Injected {
    fn hit(targets: Vec<u32>) -> Self {
        Self { targets, took_effect: true, ..Self::default() }
    }
}

/// Injects `fault` into the group at `dir`.
pub async fn inject(
    fault: Fault,
    dir: &Path,
    rng: &mut fastrand::Rng,
    upgrade_to: Option<&Path>,
) -> anyhow::Result<Injected> {
    let v = local::cluster_view(dir).await?;
    // Only members whose instance runs: a converged view can still list one whose instance the
    // previous fault's scale-in just terminated.
    let running = |m: &&MemberView| {
        v.instances
            .iter()
            .any(|i| Some(&i.id) == m.instance.as_ref() && i.state == zkpilot_core::InstanceState::Running)
    };
    let ids: Vec<ServerId> = v.members.iter().filter(running).map(|m| m.id).collect();
    if ids.is_empty() {
        bail!("no member with a running instance to inject {fault:?} into");
    }
    let random = |rng: &mut fastrand::Rng| ids[rng.usize(0..ids.len())];
    // A scale-in of the previous fault may terminate the target between the view and the kill:
    // it is gone either way.
    let kill = |id: ServerId| match local::kill(dir, id, false, &mut print) {
        Ok(_) | Err(GroupError::AlreadyTerminated { .. }) => Ok(id.0),
        Err(e) => Err(e),
    };
    Ok(match fault {
        Fault::KillRandom => Injected::hit(vec![kill(random(rng))?]),
        Fault::RollingRestart => {
            // Shown to take effect: every server is a new process afterwards.
            let state = zkpilot_local::StateDir::open(dir)?;
            let pids = |v: &zkpilot_runtime::view::ClusterView| -> Vec<(ServerId, Option<u32>)> {
                v.members
                    .iter()
                    .map(|m| (m.id, m.instance.as_ref().and_then(|i| zkpilot_local::group::zk_pid(&state, i))))
                    .collect()
            };
            let before = pids(&v);
            zkpilot_ops::rolling::rolling_restart(
                &zkpilot_ops::rolling::Source::Local(dir.to_path_buf()),
                Duration::from_secs(120),
                upgrade_to,
                &mut print,
            )
            .await?;
            let after = pids(&local::cluster_view(dir).await?);
            let mut injected = Injected::hit(ids.iter().map(|i| i.0).collect());
            for (id, pid) in &before {
                let now = after.iter().find(|(a, _)| a == id).and_then(|(_, p)| *p);
                if pid.is_none() || now.is_none() || now == *pid {
                    injected.took_effect = false;
                    injected.fallbacks.push(format!("NOT RESTARTED: server {id} pid {pid:?} -> {now:?}"));
                }
            }
            injected
        }
        Fault::Partition => {
            let id = random(rng);
            let instance = v.members.iter().find(|m| m.id == id).and_then(|m| m.instance.clone());
            let state = zkpilot_local::StateDir::open(dir)?;
            let seq = state
                .instances()?
                .into_iter()
                .find(|r| Some(&r.id) == instance.as_ref())
                .map(|r| r.seq)
                .context("partition target has no instance")?;
            let client = v.members.iter().find(|m| m.id == id).map(|m| m.client_address.clone()).unwrap_or_default();
            let table = partition_table(&state.group()?.net);
            // Held 4-10 s once it took effect; it takes syncLimit ticks (10 s here) to show.
            let hold = Duration::from_millis(rng.u64(4_000..=10_000));
            let limit = Duration::from_secs(30);
            // The server's own address, from its client address: in slot mode a replacement runs
            // the slot's server on the slot's address, not on its instance's.
            let address = client.rsplit_once(':').map(|(h, _)| h.to_string()).context("partition target's address")?;
            let was_leader = v.leader == Some(id);
            let from_ms = zkpilot_core::ports::epoch_ms();
            let rules = PartitionRules::apply(
                &table,
                local::SEPARATE_UID_BASE + seq,
                zkpilot_local::group::AGENT_GID_BASE + seq,
                &address,
            )?;
            // Shown to take effect: the member itself says it is out of the quorum (a follower
            // loses its leader, a leader its followers, within syncLimit ticks). Asked on its
            // client port, which the rules leave open.
            let start = Instant::now();
            let mut out_after = None;
            while start.elapsed() < out_after.map_or(limit, |d| d + hold) {
                if out_after.is_none() && !zkpilot_zk::probe::srvr(&client).await.mode.is_serving() {
                    out_after = Some(start.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let dropped = rules.dropped();
            drop(rules);
            let mut injected = Injected::hit(vec![id.0]);
            injected.partition =
                Some(PartitionWindow { server: id.0, was_leader, from_ms, to_ms: zkpilot_core::ports::epoch_ms() });
            if let [out, replies, agent, others] = dropped[..] {
                injected.fallbacks.push(format!(
                    "dropped packets: server {id} {out} sent + {replies} replies, its agent {agent}, other agents to it {others}"
                ));
            }
            match out_after {
                Some(d) => injected.fallbacks.push(format!(
                    "server {id} out of the quorum after {:.1}s, kept out {:.1}s more",
                    d.as_secs_f64(),
                    hold.as_secs_f64()
                )),
                None => {
                    injected.took_effect = false;
                    injected.fallbacks.push(format!(
                        "NOT INJECTED: server {id} kept serving for the {:.0}s the partition was given",
                        limit.as_secs_f64()
                    ));
                }
            }
            injected
        }
        Fault::KillLeader => Injected::hit(vec![kill(v.leader.context("no leader to kill")?)?]),
        Fault::ScaleDuringKill => {
            let state = zkpilot_local::StateDir::open(dir)?;
            let desired = state.group()?.desired;
            let next = loop {
                let n = rng.usize(3..=5);
                if n != desired {
                    break n;
                }
            };
            state.set_desired(next)?;
            Injected::hit(vec![kill(random(rng))?])
        }
        Fault::LoseMajority => {
            let voters: Vec<ServerId> = v.members.iter().filter(running).filter(|m| m.voting).map(|m| m.id).collect();
            let keep = voters[rng.usize(0..voters.len())];
            // Every member not killed survives (the kept voter and any observer): what each has
            // is the harness's own reading, taken last thing before the kill.
            let mut survivors_zxid = Vec::new();
            for m in v.members.iter().filter(|m| !m.voting || m.id == keep) {
                if let Some(z) = zkpilot_zk::probe::srvr(&m.client_address).await.zxid {
                    survivors_zxid.push((m.id.0, z as i64));
                }
            }
            let mut out = Vec::new();
            for id in voters.into_iter().filter(|id| *id != keep) {
                out.push(kill(id)?);
            }
            Injected { survivors_zxid, killed_ms: zkpilot_core::ports::epoch_ms(), ..Injected::hit(out) }
        }
        Fault::KillAgentMidReconfig => {
            let state = zkpilot_local::StateDir::open(dir)?;
            let desired = state.group()?.desired;
            state.set_desired(desired + 1)?;
            // The change is pending once a new instance's server runs but is not a member yet: the
            // lease holder adds it within a pass of it syncing.
            let deadline = Instant::now() + Duration::from_secs(60);
            let member_ids: BTreeSet<ServerId> = ids.iter().copied().collect();
            let mut fallbacks = Vec::new();
            loop {
                let v = local::cluster_view(dir).await?;
                let joining = v.instances.iter().any(|i| {
                    i.state == zkpilot_core::InstanceState::Running
                        && i.server_id.is_some_and(|s| !member_ids.contains(&s))
                });
                if joining {
                    break;
                }
                if Instant::now() > deadline {
                    fallbacks.push("no change pending: no joiner ran within 60 s; the agent was killed anyway".into());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The lease holder is the agent carrying out the change; before any change was ever
            // made (slot mode needs none at genesis) there is none yet, and any agent will do.
            let holder = lease_holder(dir);
            let holder_id = state
                .claims()?
                .into_iter()
                .chain(
                    state
                        .slots()?
                        .into_iter()
                        .map(|(n, s)| (n, zkpilot_local::state::Claim { instance: s.instance, address: s.address })),
                )
                .find(|(_, c)| Some(&c.instance) == holder.as_ref())
                .map(|(n, _)| n);
            let id = match holder_id {
                Some(id) if ids.contains(&id) => id,
                Some(id) => {
                    fallbacks.push(format!(
                        "the lease holder on record (server {id}) no longer runs; a random member's agent was killed"
                    ));
                    random(rng)
                }
                None => {
                    fallbacks.push("no lease holder on record; a random member's agent was killed".into());
                    random(rng)
                }
            };
            match local::kill(dir, id, true, &mut print) {
                Ok(_) => {}
                // A scale-in of the previous fault may terminate it between the view and the kill.
                Err(GroupError::AlreadyTerminated { .. }) => {
                    fallbacks.push(format!("server {id}'s instance was terminated before its agent could be killed"));
                }
                Err(e) => return Err(e.into()),
            }
            Injected { fallbacks, ..Injected::hit(vec![id.0]) }
        }
    })
}

fn lease_holder(dir: &Path) -> Option<zkpilot_core::model::InstanceId> {
    let text = std::fs::read_to_string(dir.join("cluster/lease.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(zkpilot_core::model::InstanceId(v["holder"].as_str()?.to_string()))
}
