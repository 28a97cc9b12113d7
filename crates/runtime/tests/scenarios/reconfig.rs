//! One membership change and its outcomes: the lease, what ZooKeeper answers, how the agent
//! settles an unknown answer, and what it counts.

use zkpilot_core::model::{Role, ServerId};
use zkpilot_testkit::{FIRST_ZXID, ReconfigAnswer};

use crate::harness::{Node, World, config, inst};

/// A serving ensemble of three, a synced joiner (server 4) nobody has added, and the real agent
/// of member 1, which will be the one to add it.
fn leader_and_joiner() -> (World, Node) {
    let w = World::serving(3, 0);
    w.joiner(4);
    let node = w.member(1);
    (w, node)
}

fn has_four(w: &World) -> bool {
    w.zk.config().role_of(ServerId(4)) == Some(Role::Observer)
}

/// A joiner is added with one conditional reconfig from the observed version and one confirming write.
#[tokio::test(start_paused = true)]
async fn joiner_is_added_with_one_confirmed_reconfig() {
    let (w, mut node) = leader_and_joiner();
    node.pass().await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].from_version, FIRST_ZXID);
    assert!(has_four(&w));
    assert_eq!(w.zk.count("confirm_write"), 1);
    let s = node.status();
    assert_eq!((s.counters.reconfigs_applied, s.counters.reconfigs_failed), (1, 0));
    assert!(s.lease_holder);
    node.passes(3).await;
    assert_eq!(w.zk.reconfigs().len(), 1, "nothing more to do");
}

/// The lease taken by another agent between plan and reconfig: no reconfig until the lease expires.
#[tokio::test(start_paused = true)]
async fn lease_lost_between_plan_and_reconfig_sends_no_reconfig() {
    let (w, mut node) = leader_and_joiner();
    let (rival, clock) = (w.backend.clone(), w.clock.clone());
    w.backend.on_next("acquire_lease", move || {
        use zkpilot_core::ports::Clock;
        rival.set_lease(&inst(2), clock.now_ms() + 15_000)
    });
    node.pass().await;
    assert!(w.zk.reconfigs().is_empty());
    let s = node.status();
    assert!(!s.lease_holder);
    assert!(s.plan.reconfig().is_some(), "the change is still planned");
    w.clock.advance(15_000);
    node.pass().await;
    assert_eq!(w.zk.reconfigs().len(), 1);
    assert!(has_four(&w));
}

/// A plan without actions asks for no lease.
#[tokio::test(start_paused = true)]
async fn no_lease_is_asked_when_there_is_nothing_to_do() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    node.passes(4).await;
    assert_eq!(w.backend.count("acquire_lease"), 0);
    assert!(w.zk.reconfigs().is_empty());
}

/// A reconfig answered ConnectionLoss that did commit is read back, counted applied and confirmed.
#[tokio::test(start_paused = true)]
async fn connection_loss_that_committed_is_settled_as_applied() {
    let (w, mut node) = leader_and_joiner();
    w.zk.answer_next([ReconfigAnswer::CommitThenConnectionLoss]);
    node.pass().await;
    assert!(has_four(&w));
    let s = node.status();
    assert_eq!((s.counters.reconfigs_applied, s.counters.reconfigs_failed), (1, 0));
    assert_eq!(w.zk.count("confirm_write"), 1);
    node.passes(2).await;
    assert_eq!(w.zk.reconfigs().len(), 1);
}

/// Removing the leader breaks every session for a moment: the read-back after a lost answer is
/// retried until the servers that stay answer, so the change is settled as applied in the same
/// pass instead of held for a later one (which would keep the removed server running longer).
#[tokio::test(start_paused = true)]
async fn lost_answer_is_read_back_once_the_staying_servers_answer() {
    let (w, mut node) = leader_and_joiner();
    w.zk.answer_next([ReconfigAnswer::CommitThenConnectionLoss]);
    // From the reconfig on, the next five config reads fail (the pass's own read came before).
    let zk = w.zk.clone();
    w.zk.on_next("reconfig", move || zk.fail_next("committed_config", 5));
    node.pass().await;
    assert!(has_four(&w));
    assert!(w.zk.calls().iter().filter(|c| c.method == "committed_config" && c.failed).count() >= 5);
    let s = node.status();
    assert_eq!((s.counters.reconfigs_applied, s.counters.reconfigs_failed), (1, 0), "{:?}", node.outcomes(""));
}

/// A reconfig answered ConnectionLoss that did not commit is settled by a write that commits
/// without it (it never will then), counted failed, and retried.
#[tokio::test(start_paused = true)]
async fn connection_loss_that_did_not_commit_is_failed_and_retried() {
    let (w, mut node) = leader_and_joiner();
    w.zk.answer_next([ReconfigAnswer::ConnectionLoss]);
    node.pass().await;
    assert!(!has_four(&w));
    let s = node.status();
    assert_eq!((s.counters.reconfigs_applied, s.counters.reconfigs_failed), (0, 1));
    assert_eq!(w.zk.count("confirm_write"), 1, "one write to settle it, not to confirm it");
    let last = node.outcomes("reconfig").last().cloned().unwrap_or_default();
    assert!(last.contains("unknown") && last.contains("committed without it"), "{:?}", node.outcomes(""));
    node.pass().await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].from_version, FIRST_ZXID);
    assert!(has_four(&w));
}

/// ZooKeeper's silent no-op (a too-high config version) is counted failed, never confirmed or applied.
#[tokio::test(start_paused = true)]
async fn too_high_config_version_is_not_taken_for_success() {
    let (w, mut node) = leader_and_joiner();
    w.zk.set_version_too_high(true);
    let before = w.zk.config();
    node.passes(2).await;
    assert_eq!(w.zk.config(), before);
    let s = node.status();
    assert_eq!(s.counters.reconfigs_applied, 0);
    assert_eq!(s.counters.reconfigs_failed, w.zk.reconfigs().len() as u64);
    assert_eq!(w.zk.count("confirm_write"), 0);
    assert!(node.outcomes("reconfig").iter().all(|o| !o.contains("\"applied")), "{:?}", node.outcomes("reconfig"));
}

/// Another change committing first makes the reconfig stale; the next pass re-plans from the new version.
#[tokio::test(start_paused = true)]
async fn stale_version_is_a_conflict_and_the_next_pass_replans() {
    let (w, mut node) = leader_and_joiner();
    let other = w.zk.clone();
    w.zk.on_next("reconfig", move || {
        other.set_config(config(&[1, 2, 3], &[], FIRST_ZXID + 7));
    });
    node.pass().await;
    assert!(!has_four(&w));
    assert_eq!(node.status().counters.reconfigs_applied, 0);
    assert!(node.outcomes("reconfig").last().is_some_and(|o| o.contains("conflict")), "{:?}", node.outcomes(""));
    node.pass().await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.iter().map(|c| c.from_version).collect::<Vec<_>>(), vec![FIRST_ZXID, FIRST_ZXID + 7]);
    assert!(has_four(&w));
}

/// A forbidden reconfig (NoAuth) is counted failed and tried at most once per pass, never in a tight loop.
#[tokio::test(start_paused = true)]
async fn forbidden_reconfig_is_counted_failed_and_not_retried_in_a_tight_loop() {
    let (w, mut node) = leader_and_joiner();
    w.zk.answer_always(Some(ReconfigAnswer::Forbidden("NoAuth".into())));
    for _ in 0..5 {
        node.pass().await;
        w.clock.advance(100);
    }
    let sent = w.zk.reconfigs().len();
    assert!((1..=5).contains(&sent), "{sent} reconfigs in 5 passes");
    let s = node.status();
    assert_eq!((s.counters.reconfigs_applied, s.counters.reconfigs_failed), (0, sent as u64));
    assert_eq!(w.zk.count("confirm_write"), 0);
}

/// A rejected reconfig (ReconfigInProgress) commits nothing, is counted failed, and is retried.
#[tokio::test(start_paused = true)]
async fn rejected_reconfig_commits_nothing_and_is_retried() {
    let (w, mut node) = leader_and_joiner();
    w.zk.answer_next([ReconfigAnswer::Rejected("ReconfigInProgress".into())]);
    node.pass().await;
    assert!(!has_four(&w));
    assert_eq!(node.status().counters.reconfigs_failed, 1);
    node.pass().await;
    assert!(has_four(&w));
}

/// A confirming write that fails for a moment is retried until it commits; the change counts applied.
#[tokio::test(start_paused = true)]
async fn confirming_write_is_retried_until_it_commits() {
    let (w, mut node) = leader_and_joiner();
    w.zk.fail_next("confirm_write", 3);
    node.pass().await;
    assert_eq!(w.zk.count("confirm_write"), 4);
    assert_eq!(node.status().counters.reconfigs_applied, 1);
}

/// A confirming write that never commits gives up after a bounded count of attempts, and says so.
#[tokio::test(start_paused = true)]
async fn confirming_write_that_never_commits_gives_up_in_bounded_attempts() {
    // A count of attempts, not a wall-clock deadline a paused test clock would never reach.
    let (w, mut node) = leader_and_joiner();
    w.zk.fail_always("confirm_write");
    node.pass().await;
    let attempts = w.zk.count("confirm_write");
    assert!((2..=300).contains(&attempts), "{attempts} attempts");
    assert!(node.outcomes("reconfig").last().is_some_and(|o| o.contains("confirm")), "{:?}", node.outcomes(""));
}

/// A reconfig whose answer was lost and that cannot be settled yet (no write commits) may still
/// commit: until it is settled, the Terminating hook of the server it adds is not completed,
/// whatever a config read without it says; once settled (here: it did commit late) the agent
/// goes on from the config as it is.
#[tokio::test(start_paused = true)]
async fn an_unsettled_reconfig_holds_back_the_hook_of_the_server_it_adds() {
    use zkpilot_core::model::{InstanceState, LifecycleHook};
    let (w, mut node) = leader_and_joiner();
    let joiner = w.instance(4);
    w.zk.answer_next([ReconfigAnswer::ConnectionLoss]);
    w.zk.fail_always("confirm_write");
    node.pass().await;
    assert!(!has_four(&w));
    assert!(
        node.outcomes("reconfig").last().is_some_and(|o| o.contains("held until settled")),
        "{:?}",
        node.outcomes("")
    );
    // Meanwhile the group scales the joiner's instance in: a read without the change says its
    // server is no member, so its hook would be completed.
    w.backend.set_state(&joiner, InstanceState::Terminating);
    w.backend.set_hook(&joiner, Some(LifecycleHook::Terminating));
    node.pass().await;
    let s = node.status();
    let held = s.plan.skipped.iter().any(|k| k.reason.starts_with("held: the unsettled reconfig"));
    assert!(held, "{:?}", s.plan);
    assert_eq!(w.backend.count("complete_lifecycle"), 0, "the hook waits");
    // The change commits late; the next read settles it.
    w.zk.set_config(config(&[1, 2, 3], &[4], FIRST_ZXID + 1));
    w.zk.heal("confirm_write");
    node.passes(3).await;
    assert!(
        !node.status().plan.skipped.iter().any(|k| k.reason.starts_with("held")),
        "settled: nothing held any more: {:?}",
        node.status().plan
    );
}
