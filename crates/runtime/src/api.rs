//! The agent's HTTP API and status page. It reads the published snapshot
//! (`watch::Receiver<Arc<AgentStatus>>`) and never the agent's internals; the only things it
//! changes are the operator's [`Control`] switches, behind a bearer token read from a file.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | status page (server-rendered HTML, refreshes itself) |
//! | `GET /health` | 200 while the agent's server is a member or joining, else 503; body says the phase |
//! | `GET /status` | the snapshot as JSON |
//! | `GET /events` | the audit log of executed actions and their outcomes |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /pause`, `POST /resume` | stop / restart executing plans on every agent (planning and status go on) |
//! | `POST /restart-server` | stop and start this agent's ZooKeeper gracefully (a rolling restart's step) |
//! | `POST /target-voters` | body `{"target_voters": N}` (odd); `null` returns to the config's value; ensemble-wide |
//!
//! Mutating calls answer 202: the agent stores the change in the backend on its next pass, and
//! every agent reads it from there.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;

use crate::status::{AgentStatus, Phase};

/// A change the operator asked for through this agent's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Stop executing plans, ensemble-wide.
    Pause,
    /// Execute plans again.
    Resume,
    /// Override (or with `None` restore) the voter target.
    TargetVoters(Option<usize>),
    /// Restart this agent's ZooKeeper gracefully (one step of a rolling restart), on another
    /// install if one is given (a rolling upgrade); agent-local.
    RestartServer(Option<std::path::PathBuf>),
    /// Back up this agent's server now; agent-local.
    Backup,
}

/// Changes the API accepted and the agent has not yet stored in the backend. The switches are
/// ensemble-wide (`OperatorSettings` in the backend, read by every agent each pass), so a change
/// made through any agent reaches all of them, including agents that start later.
#[derive(Debug, Default)]
pub struct Control {
    pending: Mutex<Vec<Change>>,
}

impl Control {
    /// Takes the pending changes, oldest first.
    pub fn take(&self) -> Vec<Change> {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }
    /// Queues a change, as the API does once a request passed its checks.
    pub fn push(&self, c: Change) {
        if let Ok(mut p) = self.pending.lock() {
            p.push(c);
        }
    }
}

#[derive(Clone)]
struct Api {
    status: watch::Receiver<Arc<AgentStatus>>,
    control: Arc<Control>,
    token: Option<Arc<str>>,
}

/// The router. `token`: the bearer token mutating calls need; `None` refuses them all.
pub fn router(status: watch::Receiver<Arc<AgentStatus>>, control: Arc<Control>, token: Option<String>) -> Router {
    let api = Api { status, control, token: token.map(Into::into) };
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/status", get(status_json))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/target-voters", post(target_voters))
        .route("/restart-server", post(restart_server))
        .route("/backup", post(backup_now))
        .with_state(api)
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

fn snapshot(api: &Api) -> Arc<AgentStatus> {
    api.status.borrow().clone()
}

async fn health(State(api): State<Api>) -> Response {
    let s = snapshot(&api);
    let phase = serde_json::to_value(&s.phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let ok = matches!(s.phase, Phase::Member | Phase::Joining);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, format!("{phase}\n")).into_response()
}

async fn status_json(State(api): State<Api>) -> Response {
    axum::Json(snapshot(&api).as_ref().clone()).into_response()
}

async fn events(State(api): State<Api>) -> Response {
    axum::Json(snapshot(&api).events.clone()).into_response()
}

/// Why a mutating call was refused, or `None` when the bearer token matches.
fn refused(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &api.token else {
        return Some((StatusCode::FORBIDDEN, "no API token is configured: mutating calls are off\n").into_response());
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is the only thing between a client and the ensemble.
    let ok = given.is_some_and(|g| {
        g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if ok {
        None
    } else {
        Some(
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "missing or wrong bearer token\n")
                .into_response(),
        )
    }
}

async fn pause(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    api.control.push(Change::Pause);
    tracing::warn!("automation pause requested through the API");
    (StatusCode::ACCEPTED, "pausing: every agent stops executing plans within a pass\n").into_response()
}

async fn resume(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    api.control.push(Change::Resume);
    tracing::warn!("automation resume requested through the API");
    (StatusCode::ACCEPTED, "resuming within a pass\n").into_response()
}

/// `POST /restart-server` body (optional): restart on another ZooKeeper install.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartOn {
    install: std::path::PathBuf,
}

async fn restart_server(State(api): State<Api>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        api.control.push(Change::RestartServer(None));
        tracing::warn!("server restart requested through the API");
        return (StatusCode::ACCEPTED, "restarting this server on the next pass\n").into_response();
    }
    let req: RestartOn = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("body: {e}\n")).into_response(),
    };
    // Checked here so the caller hears of a bad install or a downgrade now, not as an event; the
    // agent checks again before it starts (`zkpilot_core::version::choose_install`).
    if !req.install.is_absolute() {
        return (StatusCode::BAD_REQUEST, format!("install: {} is not an absolute path\n", req.install.display()))
            .into_response();
    }
    let found = match zkpilot_zk::install::Install::detect(&req.install, None) {
        Ok(i) => zkpilot_core::version::Release { home: req.install.clone(), version: i.version },
        Err(e) => return (StatusCode::BAD_REQUEST, format!("install: {e}\n")).into_response(),
    };
    let current = api.status.borrow().release.clone();
    if let Some(current) = current
        && let Err(refusal) = zkpilot_core::version::choose_install(&current, Some(&current), Some(&found))
    {
        return (StatusCode::CONFLICT, format!("install: {refusal}\n")).into_response();
    }
    api.control.push(Change::RestartServer(Some(req.install.clone())));
    tracing::warn!(install = %req.install.display(), version = ?found.version, "server restart on another install requested through the API");
    (
        StatusCode::ACCEPTED,
        format!(
            "restarting this server on {} ({}) on the next pass\n",
            req.install.display(),
            found.version.as_deref().unwrap_or("release unknown")
        ),
    )
        .into_response()
}

async fn backup_now(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    api.control.push(Change::Backup);
    tracing::warn!("backup requested through the API");
    (StatusCode::ACCEPTED, "backing up this server on the next pass; see /events and `zkpilot backup list`\n")
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetVoters {
    target_voters: Option<usize>,
}

async fn target_voters(State(api): State<Api>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refused(&api, &headers) {
        return r;
    }
    let req: TargetVoters = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("body: {e}\n")).into_response(),
    };
    if let Some(n) = req.target_voters
        && (n == 0 || n % 2 == 0)
    {
        return (StatusCode::BAD_REQUEST, format!("target_voters: {n} is not an odd number\n")).into_response();
    }
    api.control.push(Change::TargetVoters(req.target_voters));
    tracing::warn!(target_voters = ?req.target_voters, "voter target requested through the API");
    (StatusCode::ACCEPTED, "voter target applies to every agent within a pass\n").into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The snapshot in Prometheus text format. Built per scrape from the immutable snapshot, so the
/// API never shares mutable state with the agent.
pub fn render_metrics(s: &AgentStatus) -> String {
    let mut registry = Registry::with_prefix("zkpilot");
    let gauge = |registry: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        registry.register(name, help, g);
    };
    let role = Family::<RoleLabel, Gauge>::default();
    let role_name = match (s.mode, s.role) {
        (Some(m), _) if m.is_serving() => format!("{m:?}").to_lowercase(),
        _ => "none".to_string(),
    };
    role.get_or_create(&RoleLabel { role: role_name }).set(1);
    registry.register("role", "What this agent's server serves as (leader, follower, observer; none)", role);
    gauge(
        &mut registry,
        "quorum",
        "1 if this agent read a committed config from a serving member",
        i64::from(s.config_version.is_some()),
    );
    gauge(&mut registry, "paused", "1 while plan execution is paused by the operator", i64::from(s.paused));
    gauge(&mut registry, "lease_holder", "1 if this agent held the membership-change lease", i64::from(s.lease_holder));
    gauge(
        &mut registry,
        "config_version",
        "Committed config version (a zxid)",
        s.config_version.as_deref().and_then(|v| i64::from_str_radix(v, 16).ok()).unwrap_or(0),
    );
    if let Some(lag) = s.zxid_lag {
        gauge(&mut registry, "zxid_lag", "Transactions this server is behind the leader", lag as i64);
    }
    if let Some(d) = &s.server {
        for (name, help, v) in [
            ("synced_followers", "Leader only: synced followers", d.synced_followers),
            ("synced_non_voting_followers", "Leader only: synced joiners", d.synced_non_voting_followers),
            ("synced_observers", "Leader only: synced observers", d.synced_observers),
            ("connections", "Client connections to this server", d.connections),
        ] {
            if let Some(v) = v {
                gauge(&mut registry, name, help, v as i64);
            }
        }
    }
    let c = &s.counters;
    let reconfigs = Family::<OutcomeLabel, Counter>::default();
    reconfigs.get_or_create(&OutcomeLabel { outcome: "applied".into() }).inc_by(c.reconfigs_applied);
    reconfigs.get_or_create(&OutcomeLabel { outcome: "failed".into() }).inc_by(c.reconfigs_failed);
    registry.register("reconfigs", "Membership changes this agent executed, by outcome", reconfigs);
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let k = Counter::<u64>::default();
        k.inc_by(v);
        registry.register(name, help, k);
    };
    let ms = Counter::<u64>::default();
    ms.inc_by(c.reconfig_ms);
    registry.register("reconfig_milliseconds", "Time spent in reconfigs (call + confirming write)", ms);
    counter(&mut registry, "server_restarts", "ZooKeeper restarts after an unexpected exit (heals)", c.server_restarts);
    counter(&mut registry, "recoveries", "Quorum-loss rebuilds started from this server", c.recoveries);
    counter(&mut registry, "fences", "Times this server stopped itself for quorum-loss recovery", c.fences);
    counter(&mut registry, "unhealthy_reports", "Instances reported unhealthy to the backend", c.unhealthy_reports);
    counter(&mut registry, "claim_failures", "Backend claim or lease calls that failed", c.claim_failures);
    counter(&mut registry, "backups", "Backups this agent stored", c.backups);
    counter(&mut registry, "backup_failures", "Backups this agent attempted and could not store", c.backup_failures);
    counter(
        &mut registry,
        "plans_refused",
        "Plans refused for breaking a safety rule (a planner bug)",
        c.plans_refused,
    );
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

async fn metrics(State(api): State<Api>) -> Response {
    let body = render_metrics(&snapshot(&api));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// `format!` onto a `String` (writing to a `String` cannot fail).
macro_rules! push {
    ($h:expr, $($t:tt)*) => {
        $h.push_str(&format!($($t)*))
    };
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The status page: plain HTML, no script; the browser reloads it every 2 s.
pub fn render_page(s: &AgentStatus) -> String {
    let mut h = String::new();
    let title =
        format!("zkpilot — server {} on {}", s.server_id.map_or("-".into(), |i| i.to_string()), esc(&s.instance.0));
    push!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=2><title>{title}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:left}}th{{background:#f3f3f3}}.leader{{font-weight:bold}}\
         .bad{{color:#b00}}.ok{{color:#070}}code{{background:#f6f6f6;padding:0 .2em}}</style></head><body>"
    );
    let phase = serde_json::to_value(&s.phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    push!(
        h,
        "<h1>{title}</h1><p>phase <b class={}>{}</b>{} · config <code>{}</code> · leader {} · {}{}</p>",
        if matches!(s.phase, Phase::Member) { "ok" } else { "bad" },
        esc(&phase),
        if s.detail.is_empty() { String::new() } else { format!(": {}", esc(&s.detail)) },
        esc(s.config_version.as_deref().unwrap_or("-")),
        s.leader.map_or("-".into(), |l| l.to_string()),
        if s.paused { "<b class=bad>automation PAUSED</b>" } else { "automation on" },
        if s.lease_holder { " · this agent holds the lease" } else { "" },
    );
    push!(
        h,
        "<h2>Members</h2><table><tr><th>id</th><th>address</th><th>role</th><th>mode</th><th>zone</th><th>instance</th><th>zxid</th></tr>"
    );
    for m in &s.members {
        let leader = m.mode == Some(zkpilot_core::Mode::Leader);
        push!(
            h,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if leader { " class=leader" } else { "" },
            m.id,
            esc(&m.address),
            esc(&m.role),
            m.mode.map_or("-".into(), |x| format!("{x:?}").to_lowercase()),
            esc(m.zone.as_deref().unwrap_or("-")),
            esc(m.instance.as_deref().unwrap_or("-")),
            m.zxid.map_or("-".into(), |z| format!("{z:#x}")),
        );
    }
    h.push_str("</table><h2>Plan</h2>");
    if let Some(r) = &s.refused {
        push!(
            h,
            "<p class=refused><b>SAFETY: {} plans refused</b> for breaking a safety rule (a planner bug); last: {}</p>",
            s.counters.plans_refused,
            esc(&r.violation)
        );
    }
    if s.plan.actions.is_empty() {
        h.push_str("<p>no action</p>");
    } else {
        h.push_str("<ul>");
        for a in &s.plan.actions {
            push!(h, "<li>{}</li>", esc(&a.to_string()));
        }
        h.push_str("</ul>");
    }
    if !s.plan.skipped.is_empty() {
        h.push_str("<p>why nothing else happens:</p><ul>");
        for k in &s.plan.skipped {
            push!(h, "<li><b>{}</b>: {}</li>", esc(&k.subject), esc(&k.reason));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Recent events</h2><table><tr><th>when (UTC)</th><th>action</th><th>outcome</th><th>ms</th></tr>");
    for e in s.events.iter().rev().take(20) {
        let secs = e.at_ms / 1000;
        push!(
            h,
            "<tr><td>{:02}:{:02}:{:02}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            esc(&e.action),
            esc(&e.outcome.to_string()),
            e.took_ms
        );
    }
    h.push_str("</table><p><a href=/status>status JSON</a> · <a href=/events>events</a> · <a href=/metrics>metrics</a></p></body></html>");
    h
}

async fn page(State(api): State<Api>) -> Html<String> {
    Html(render_page(&snapshot(&api)))
}
