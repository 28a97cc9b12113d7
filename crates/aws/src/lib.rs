//! The AWS backend: the core's `Backend` port over EC2 Auto Scaling, EC2 and S3.
//!
//! # Theory of operation
//!
//! * **Discovery**: the Auto Scaling group lists its instances with lifecycle state, zone and
//!   scale-in protection; EC2 adds private addresses and tags. Instances that hold a server-id
//!   claim but have left the group are looked up in EC2: only `terminated`/`shutting-down` (or an
//!   id EC2 no longer knows) counts as gone. A failed call is an error, never "no instances".
//! * **Atomic records in S3** under `s3://<bucket>/<prefix>`, with conditional writes:
//!   `ids/<n>.json` claims are created with `If-None-Match: *` (the loser gets 412 and tries the
//!   next id), `cluster/marker.json` likewise exactly once, and `cluster/lease.json` is a
//!   compare-and-swap on its ETag (`If-Match`) with an expiry. The same prefix holds `status/`,
//!   and `connect-string` for clients.
//! * **Tags**: each agent tags its instance `zkpilot:server-id` and `zkpilot:address`.
//! * **Scale-in protection** on voters, so the group never picks two voters at once.
//!
//! Lifecycle mapping: `Pending*`, `InService`, `Standby` are running (a launching instance's agent
//! already runs and may join); `Terminating*`, `Detaching`, `Detached` are leaving.
#![deny(missing_docs)]

pub mod logs;
pub mod slots;
pub mod template;
pub mod volume;

use std::collections::{BTreeMap, BTreeSet};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_autoscaling::types::LifecycleState;
use aws_sdk_ec2::types::{Filter, InstanceStateName, Tag};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use zkpilot_core::model::{EnsembleConfig, Instance, InstanceId, InstanceState, LifecycleHook, ServerId};
use zkpilot_core::ports::{
    ClusterMarker, Coordination, Group, Identity, OperatorSettings, PortError, PortResult, Publish, Slot, Store,
};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

/// Where the group and its records are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Auto Scaling group name.
    pub group: String,
    /// S3 bucket for claims, marker, lease, status and the connection string.
    pub bucket: String,
    /// Key prefix inside the bucket (ends with `/`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Region; the standard chain (env, profile, IMDS) if unset.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (an emulator in tests); real AWS if unset.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Lifecycle hook on launch (completed once the server is a synced member).
    #[serde(default = "default_launch_hook")]
    pub launch_hook: String,
    /// Lifecycle hook on termination (completed once the server is out of the config).
    #[serde(default = "default_terminate_hook")]
    pub terminate_hook: String,
    /// Where id claims and the cluster marker live (S3 by default).
    #[serde(default)]
    pub claims: logs::ClaimStore,
    /// Route53 hosted zone for name indirection (`publish_name`).
    #[serde(default)]
    pub hosted_zone_id: Option<String>,
    /// Slot mode (stable identity); elastic mode if unset.
    #[serde(default)]
    pub slots: Option<slots::SlotSettings>,
}

/// Hook name the template creates for launches.
pub fn default_launch_hook() -> String {
    "zkpilot-launch".into()
}

/// Hook name the template creates for terminations.
pub fn default_terminate_hook() -> String {
    "zkpilot-terminate".into()
}

fn default_prefix() -> String {
    "zkpilot/".into()
}

/// Tag holding the server id.
pub const TAG_SERVER_ID: &str = "zkpilot:server-id";
/// Tag holding the advertised address.
pub const TAG_ADDRESS: &str = "zkpilot:address";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    instance: InstanceId,
    address: String,
}

/// S3 key → (ETag, claim body).
type ClaimCache = BTreeMap<String, (Option<String>, Claim)>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: InstanceId,
    expires_ms: u64,
}

/// The backend.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    settings: AwsSettings,
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    route53: aws_sdk_route53::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    /// Claim bodies by key and ETag (see `claims`).
    claim_cache: std::sync::Arc<std::sync::Mutex<ClaimCache>>,
}

/// The SDK clients the backend uses.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Clients {
    pub asg: aws_sdk_autoscaling::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub route53: aws_sdk_route53::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

/// CloudWatch namespace of zkpilot's metrics.
pub const METRIC_NAMESPACE: &str = "zkpilot";
/// Client connections per server; the template's target-tracking policy scales on its average.
pub const METRIC_CONNECTIONS: &str = "ClientConnections";

fn err(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::new("backend", what, e)
}

/// A conditional write lost (412 Precondition Failed, or 409 when S3 sees two at once).
fn lost_race<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412 | 409)) || matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict"))
}

impl AwsBackend {
    /// Builds the SDK clients from the standard configuration chain plus `settings`.
    pub async fn connect(settings: AwsSettings) -> Self {
        // Agents run unattended: ride out throttling and brief outages rather than fail a pass.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5));
        if let Some(r) = &settings.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &settings.endpoint_url {
            loader = loader.endpoint_url(e.clone());
        }
        let conf = loader.load().await;
        Self::from_conf(&conf, settings)
    }

    /// Builds the clients from an SDK config (tests pass one pointed at an emulator).
    pub fn from_conf(conf: &aws_config::SdkConfig, settings: AwsSettings) -> Self {
        // Emulators serve buckets by path, not by virtual host.
        let path_style = settings.endpoint_url.is_some() || conf.endpoint_url().is_some();
        let s3conf = aws_sdk_s3::config::Builder::from(conf).force_path_style(path_style).build();
        let clients = Clients {
            asg: aws_sdk_autoscaling::Client::new(conf),
            ec2: aws_sdk_ec2::Client::new(conf),
            s3: aws_sdk_s3::Client::from_conf(s3conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
            route53: aws_sdk_route53::Client::new(conf),
            logs: aws_sdk_cloudwatchlogs::Client::new(conf),
        };
        Self::from_clients(settings, clients)
    }

    /// Builds the backend from ready clients: for tests that use the SDK's own mock clients
    /// (`aws-smithy-mocks`) for calls the emulator does not implement.
    pub fn from_clients(settings: AwsSettings, c: Clients) -> Self {
        Self {
            settings,
            asg: c.asg,
            ec2: c.ec2,
            s3: c.s3,
            cloudwatch: c.cloudwatch,
            route53: c.route53,
            logs: c.logs,
            claim_cache: Default::default(),
        }
    }

    fn claims_in_logs(&self) -> bool {
        matches!(self.settings.claims, logs::ClaimStore::Logs { .. })
    }

    fn hook_name(&self, hook: LifecycleHook) -> &str {
        match hook {
            LifecycleHook::Launching => &self.settings.launch_hook,
            LifecycleHook::Terminating => &self.settings.terminate_hook,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.prefix)
    }

    /// Reads an object: `Ok(None)` if absent, with its ETag.
    async fn get(&self, key: &str) -> PortResult<Option<(Vec<u8>, Option<String>)>> {
        match self.s3.get_object().bucket(&self.settings.bucket).key(key).send().await {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string);
                let body = out.body.collect().await.map_err(|e| err(format!("read s3 {key}"), e))?;
                Ok(Some((body.into_bytes().to_vec(), etag)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(err(format!("get s3 {key}"), e)),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> PortResult<Option<(T, Option<String>)>> {
        match self.get(key).await? {
            None => Ok(None),
            Some((bytes, etag)) => {
                let v = serde_json::from_slice(&bytes).map_err(|e| err(format!("parse s3 {key}"), e))?;
                Ok(Some((v, etag)))
            }
        }
    }

    /// Unconditional put.
    async fn put(&self, key: &str, body: Vec<u8>) -> PortResult<()> {
        self.s3
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| err(format!("put s3 {key}"), e))?;
        Ok(())
    }

    /// Conditional put: `If-None-Match: *` when `etag` is `None`, else `If-Match: etag`. Returns
    /// false when another writer won.
    async fn put_if(&self, key: &str, body: Vec<u8>, etag: Option<&str>) -> PortResult<bool> {
        let req = self.s3.put_object().bucket(&self.settings.bucket).key(key).body(ByteStream::from(body));
        let req = match etag {
            None => req.if_none_match("*"),
            Some(tag) => req.if_match(tag),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) => Err(err(format!("conditional put s3 {key}"), e)),
        }
    }

    /// Uploads a file, streamed from disk: a snapshot can be larger than the agent's memory.
    async fn put_file(&self, key: &str, from: &std::path::Path) -> PortResult<()> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(from)
            .await
            .map_err(|e| err(format!("read {}", from.display()), e))?;
        self.s3
            .put_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| err(format!("put s3 {key}"), e))?;
        Ok(())
    }

    /// Server-id claims (`ids/`).
    async fn claims(&self) -> PortResult<BTreeMap<ServerId, Claim>> {
        if self.claims_in_logs() {
            return self.logs_claims().await;
        }
        Ok(self.records("ids/").await?.into_iter().map(|(n, (c, _))| (n, c)).collect())
    }

    /// Every key under `prefix`, with its ETag.
    async fn list(&self, prefix: &str) -> PortResult<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| err(format!("list s3 {prefix}"), e))?;
            out.extend(
                page.contents().iter().filter_map(|o| Some((o.key()?.to_string(), o.e_tag().map(str::to_string)))),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The claim records under `dir` (`ids/` or `slots/`), with their ETags.
    async fn records(&self, dir: &str) -> PortResult<BTreeMap<ServerId, (Claim, Option<String>)>> {
        let prefix = self.key(dir);
        let mut out = BTreeMap::new();
        for (key, etag) in self.list(&prefix).await? {
            let Some(n) = key.strip_prefix(&prefix).and_then(|k| k.strip_suffix(".json")).and_then(|k| k.parse().ok())
            else {
                continue;
            };
            // A claim body only changes together with its ETag (created once; a slot claim is
            // rewritten only by a conditional takeover), so each version is fetched once and
            // later passes only list.
            let cached = self.claim_cache.lock().ok().and_then(|c| c.get(&key).filter(|(t, _)| *t == etag).cloned());
            let claim = match cached {
                Some((_, c)) => Some(c),
                None => {
                    let fetched = self.get_json::<Claim>(&key).await?.map(|(c, _)| c);
                    if let (Some(c), Ok(mut cache)) = (&fetched, self.claim_cache.lock()) {
                        cache.insert(key.clone(), (etag.clone(), c.clone()));
                    }
                    fetched
                }
            };
            if let Some(c) = claim {
                out.insert(ServerId(n), (c, etag));
            }
        }
        Ok(out)
    }

    /// EC2 view of some instances: state, private address, zone, tags.
    async fn describe(&self, ids: &[String]) -> PortResult<BTreeMap<String, aws_sdk_ec2::types::Instance>> {
        let mut out = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        // A filter rather than InstanceIds: an id EC2 has forgotten is then simply absent instead
        // of failing the whole call (InvalidInstanceID.NotFound).
        let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
        let mut token = None;
        loop {
            let page = self
                .ec2
                .describe_instances()
                .filters(filter.clone())
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| err("describe instances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let Some(id) = i.instance_id() {
                        out.insert(id.to_string(), i.clone());
                    }
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn group(&self) -> PortResult<aws_sdk_autoscaling::types::AutoScalingGroup> {
        let out = self
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.settings.group)
            .send()
            .await
            .map_err(|e| err(format!("describe auto scaling group {}", self.settings.group), e))?;
        out.auto_scaling_groups()
            .first()
            .cloned()
            .ok_or_else(|| PortError::msg("backend", format!("auto scaling group {} not found", self.settings.group)))
    }
}

/// This instance's id, availability zone and private address, from the instance metadata service
/// (IMDSv2: a session token first; `AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the endpoint).
pub async fn instance_identity() -> PortResult<(String, String, String)> {
    instance_identity_with(aws_config::imds::Client::builder().build()).await
}

/// [`instance_identity`] through a given metadata client (tests pass one with a replay HTTP client).
pub async fn instance_identity_with(imds: aws_config::imds::Client) -> PortResult<(String, String, String)> {
    let get = |path: &'static str| {
        let imds = imds.clone();
        async move { imds.get(path).await.map(String::from).map_err(|e| err(format!("instance metadata {path}"), e)) }
    };
    Ok((
        get("/latest/meta-data/instance-id").await?,
        get("/latest/meta-data/placement/availability-zone").await?,
        get("/latest/meta-data/local-ipv4").await?,
    ))
}

/// EC2 reports the instance terminated or shutting down, or no longer knows it.
fn gone_in_ec2(i: Option<&aws_sdk_ec2::types::Instance>) -> bool {
    i.is_none_or(|i| {
        matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        )
    })
}

fn tag<'a>(i: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

fn lifecycle(state: Option<&LifecycleState>) -> Option<InstanceState> {
    use LifecycleState as L;
    match state? {
        L::Pending | L::PendingWait | L::PendingProceed | L::InService | L::Standby | L::EnteringStandby => {
            Some(InstanceState::Running)
        }
        L::Terminating
        | L::TerminatingWait
        | L::TerminatingProceed
        | L::TerminatingRetained
        | L::Detaching
        | L::Detached => Some(InstanceState::Terminating),
        L::Terminated => Some(InstanceState::Terminated),
        // Warm-pool and maintenance states: not part of the ensemble's decisions.
        _ => None,
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RestoreSeed {
    backup: String,
}

/// `backups/<backup>/<file>`, refusing names that could leave the prefix.
fn backup_key(backup: &str, file: &str) -> PortResult<String> {
    let ok = zkpilot_core::backup::safe_name(backup) && (file.is_empty() || zkpilot_core::backup::safe_name(file));
    if !ok {
        return Err(PortError::msg("backend", format!("unsafe backup name {backup:?}/{file:?}")));
    }
    Ok(format!("backups/{backup}/{file}"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Group for AwsBackend {
    async fn instances(&self) -> PortResult<Vec<Instance>> {
        let group = self.group().await?;
        let claims = self.claims().await?;
        let slots = match self.settings.slots {
            Some(_) => self.slot_claims().await?,
            None => BTreeMap::new(),
        };
        let by_instance: BTreeMap<&InstanceId, (&ServerId, &Claim)> =
            claims.iter().map(|(id, c)| (&c.instance, (id, c))).collect();
        let slot_of: BTreeMap<&InstanceId, (&ServerId, &Claim)> =
            slots.iter().map(|(id, c)| (&c.instance, (id, c))).collect();
        let mut ids: BTreeSet<String> =
            group.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        ids.extend(claims.values().chain(slots.values()).map(|c| c.instance.0.clone()));
        let ec2 = self.describe(&ids.iter().cloned().collect::<Vec<_>>()).await?;
        let mut out = Vec::new();
        for id in ids {
            let in_group = group.instances().iter().find(|i| i.instance_id() == Some(id.as_str()));
            let ec2i = ec2.get(&id);
            let ec2_gone = gone_in_ec2(ec2i);
            let state = match in_group {
                Some(g) => match lifecycle(g.lifecycle_state()) {
                    Some(s) => s,
                    None => continue,
                },
                // Left the group: gone only if EC2 says so; alive outside the group = leaving.
                None if ec2_gone => InstanceState::Terminated,
                None => InstanceState::Terminating,
            };
            let key = InstanceId(id.clone());
            // A slot outlives its instance: once the holder is gone the server is not "leaving"
            // but waiting for the replacement that takes the slot over, so it is attributed to
            // nobody and the planner never removes it.
            let claim =
                by_instance.get(&key).or_else(|| slot_of.get(&key).filter(|_| state != InstanceState::Terminated));
            let address = claim
                .map(|(_, c)| c.address.clone())
                .or_else(|| ec2i.and_then(|i| tag(i, TAG_ADDRESS)).map(str::to_string))
                .or_else(|| ec2i.and_then(|i| i.private_ip_address()).map(str::to_string))
                .unwrap_or_default();
            let zone = in_group
                .and_then(|g| g.availability_zone())
                .or_else(|| ec2i.and_then(|i| i.placement()).and_then(|p| p.availability_zone()))
                .unwrap_or_default()
                .to_string();
            out.push(Instance {
                id: InstanceId(id.clone()),
                address,
                zone,
                state,
                server_id: claim.map(|(sid, _)| **sid),
                protected: in_group.and_then(|g| g.protected_from_scale_in()),
                hook: match in_group.and_then(|g| g.lifecycle_state()) {
                    Some(LifecycleState::PendingWait) => Some(LifecycleHook::Launching),
                    Some(LifecycleState::TerminatingWait) => Some(LifecycleHook::Terminating),
                    _ => None,
                },
            });
        }
        Ok(out)
    }

    async fn desired_capacity(&self) -> PortResult<usize> {
        Ok(self.group().await?.desired_capacity().unwrap_or(0).max(0) as usize)
    }

    async fn set_scale_in_protection(&self, instance: &InstanceId, protected: bool) -> PortResult<()> {
        self.asg
            .set_instance_protection()
            .auto_scaling_group_name(&self.settings.group)
            .instance_ids(&instance.0)
            .protected_from_scale_in(protected)
            .send()
            .await
            .map_err(|e| err(format!("set scale-in protection of {instance}"), e))?;
        Ok(())
    }

    async fn lifecycle_heartbeat(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        let name = self.hook_name(hook);
        self.asg
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&self.settings.group)
            .lifecycle_hook_name(name)
            .instance_id(&instance.0)
            .send()
            .await
            .map_err(|e| err(format!("lifecycle heartbeat {name} of {instance}"), e))?;
        Ok(())
    }

    async fn complete_lifecycle(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        let name = self.hook_name(hook);
        self.asg
            .complete_lifecycle_action()
            .auto_scaling_group_name(&self.settings.group)
            .lifecycle_hook_name(name)
            .instance_id(&instance.0)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| err(format!("complete lifecycle action {name} of {instance}"), e))?;
        Ok(())
    }

    async fn report_unhealthy(&self, instance: &InstanceId) -> PortResult<()> {
        // The group terminates it (through the terminating hook, so the agent still gets to take
        // its server out) and launches a replacement.
        self.asg
            .set_instance_health()
            .instance_id(&instance.0)
            .health_status("Unhealthy")
            .should_respect_grace_period(true)
            .send()
            .await
            .map_err(|e| err(format!("set instance health of {instance}"), e))?;
        Ok(())
    }
}

impl Identity for AwsBackend {
    async fn claim_id(&self, instance: &InstanceId, address: &str) -> PortResult<ServerId> {
        if self.claims_in_logs() {
            return self.logs_claim_id(instance, address).await;
        }
        let claims = self.claims().await?;
        if let Some((id, _)) = claims.iter().find(|(_, c)| &c.instance == instance) {
            return Ok(*id);
        }
        let body = serde_json::to_vec(&Claim { instance: instance.clone(), address: address.to_string() })
            .map_err(|e| err("encode claim", e))?;
        for n in 1..=ServerId::MAX {
            if claims.contains_key(&ServerId(n)) {
                continue;
            }
            let key = self.key(&format!("ids/{n}.json"));
            if self.put_if(&key, body.clone(), None).await? {
                // S3's conditional writes are atomic; moto's check-then-write is not (two
                // concurrent claimants both succeeded once, under load). Reading the claim back
                // after a moment costs one GET at boot and turns that into a lost race.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                match self.get_json::<Claim>(&key).await? {
                    Some((c, _)) if &c.instance == instance => return Ok(ServerId(n)),
                    _ => tracing::warn!(%key, "claim overwritten by a concurrent claimant; trying the next id"),
                }
            }
        }
        Err(PortError::msg(
            "backend",
            format!("all server ids are claimed in s3://{}/{}ids/", self.settings.bucket, self.settings.prefix),
        ))
    }

    async fn claim_slot(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<Slot>> {
        self.claim_slot_ready(instance, zone).await
    }

    async fn release_id(&self, id: ServerId, instance: &InstanceId) -> PortResult<()> {
        if self.claims_in_logs() {
            return self.logs_release(id, instance).await;
        }
        let key = self.key(&format!("ids/{id}.json"));
        let Some((claim, etag)) = self.get_json::<Claim>(&key).await? else { return Ok(()) };
        if &claim.instance != instance {
            return Ok(());
        }
        let mut req = self.s3.delete_object().bucket(&self.settings.bucket).key(&key);
        if let Some(tag) = etag {
            req = req.if_match(tag);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if lost_race(&e) => Ok(()),
            Err(e) => Err(err(format!("delete s3 {key}"), e)),
        }
    }

    async fn announce(&self, instance: &InstanceId, id: ServerId, address: &str) -> PortResult<()> {
        self.ec2
            .create_tags()
            .resources(&instance.0)
            .tags(Tag::builder().key(TAG_SERVER_ID).value(id.to_string()).build())
            .tags(Tag::builder().key(TAG_ADDRESS).value(address).build())
            .send()
            .await
            .map_err(|e| err(format!("tag {instance}"), e))?;
        Ok(())
    }
}

impl Coordination for AwsBackend {
    async fn cluster_marker(&self) -> PortResult<Option<ClusterMarker>> {
        if self.claims_in_logs() {
            return self.logs_marker().await;
        }
        Ok(self.get_json(&self.key("cluster/marker.json")).await?.map(|(m, _)| m))
    }

    async fn create_cluster_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        if self.claims_in_logs() {
            return self.logs_create_marker(marker).await;
        }
        let key = self.key("cluster/marker.json");
        let body = serde_json::to_vec_pretty(marker).map_err(|e| err("encode marker", e))?;
        self.put_if(&key, body, None).await?;
        self.get_json(&key)
            .await?
            .map(|(m, _)| m)
            .ok_or_else(|| PortError::msg("backend", format!("s3 {key} vanished after creation")))
    }

    async fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> PortResult<bool> {
        let key = self.key("cluster/lease.json");
        let current = self.get_json::<Lease>(&key).await?;
        let free = match &current {
            None => true,
            Some((l, _)) if &l.holder == holder || l.expires_ms <= now_ms => true,
            Some((l, _)) => {
                // A holder EC2 confirms terminated frees the lease at once.
                let ec2 = self.describe(std::slice::from_ref(&l.holder.0)).await?;
                ec2.get(&l.holder.0)
                    .is_some_and(|i| matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated)))
            }
        };
        if !free {
            return Ok(false);
        }
        let body = serde_json::to_vec(&Lease { holder: holder.clone(), expires_ms: now_ms + ttl_ms })
            .map_err(|e| err("encode lease", e))?;
        let etag = current.as_ref().and_then(|(_, e)| e.as_deref());
        // Absent: create-exclusive. Present without an ETag (should not happen): refuse rather
        // than overwrite blindly.
        match (current.is_some(), etag) {
            (false, _) => self.put_if(&key, body, None).await,
            (true, Some(tag)) => self.put_if(&key, body, Some(tag)).await,
            (true, None) => Ok(false),
        }
    }

    async fn put_survivor_report(&self, report: &SurvivorReport) -> PortResult<()> {
        let body = serde_json::to_vec(report).map_err(|e| err("encode survivor report", e))?;
        self.put(&self.key(&format!("recovery/reports/{}.json", report.instance)), body).await
    }

    async fn survivor_reports(&self) -> PortResult<Vec<SurvivorReport>> {
        // A handful of objects, only read while the ensemble has no quorum.
        let mut out = Vec::new();
        for (key, _) in self.list(&self.key("recovery/reports/")).await? {
            if let Some((r, _)) = self.get_json::<SurvivorReport>(&key).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn recovery_decision(&self) -> PortResult<Option<RecoveryDecision>> {
        Ok(self.get_json(&self.key("recovery/decision.json")).await?.map(|(d, _)| d))
    }

    async fn put_recovery_decision(&self, decision: &RecoveryDecision) -> PortResult<()> {
        let body = serde_json::to_vec(decision).map_err(|e| err("encode recovery decision", e))?;
        self.put(&self.key("recovery/decision.json"), body).await
    }

    async fn operator_settings(&self) -> PortResult<Option<OperatorSettings>> {
        Ok(self.get_json(&self.key("operator.json")).await?.map(|(s, _)| s))
    }

    async fn put_operator_settings(&self, settings: &OperatorSettings) -> PortResult<()> {
        let body = serde_json::to_vec(settings).map_err(|e| err("encode operator settings", e))?;
        self.put(&self.key("operator.json"), body).await
    }

    async fn restore_seed(&self) -> PortResult<Option<String>> {
        Ok(self.get_json::<RestoreSeed>(&self.key("restore-seed.json")).await?.map(|(s, _)| s.backup))
    }

    async fn put_restore_seed(&self, backup: &str) -> PortResult<()> {
        let body = serde_json::to_vec(&RestoreSeed { backup: backup.into() }).map_err(|e| err("encode seed", e))?;
        self.put(&self.key("restore-seed.json"), body).await
    }

    async fn base_config(&self) -> PortResult<Option<String>> {
        match self.get(&self.key("base.cfg")).await? {
            None => Ok(None),
            Some((bytes, _)) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| err(format!("s3 {}base.cfg is not UTF-8", self.settings.prefix), e)),
        }
    }
}

impl Publish for AwsBackend {
    async fn publish_membership(&self, config: &EnsembleConfig) -> PortResult<()> {
        self.put(&self.key("connect-string"), format!("{}\n", config.connect_string()).into_bytes()).await?;
        let doc = serde_json::json!({
            "version": format!("{:x}", config.version),
            "connect_string": config.connect_string(),
            "servers": config.servers.values().map(|s| s.to_string()).collect::<Vec<_>>(),
            "published_ms": now_ms(),
        });
        self.put(&self.key("membership.json"), doc.to_string().into_bytes()).await
    }

    async fn publish_connections(&self, instance: &InstanceId, connections: u64) -> PortResult<()> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        // Per group (what target tracking averages) and per instance (for dashboards).
        let datum = |dims: Vec<Dimension>| {
            MetricDatum::builder()
                .metric_name(METRIC_CONNECTIONS)
                .set_dimensions(Some(dims))
                .value(connections as f64)
                .unit(StandardUnit::Count)
                .build()
        };
        let group = Dimension::builder().name("AutoScalingGroupName").value(&self.settings.group).build();
        let inst = Dimension::builder().name("InstanceId").value(&instance.0).build();
        self.cloudwatch
            .put_metric_data()
            .namespace(METRIC_NAMESPACE)
            .metric_data(datum(vec![group.clone()]))
            .metric_data(datum(vec![group, inst]))
            .send()
            .await
            .map_err(|e| err("put metric data", e))?;
        Ok(())
    }

    async fn publish_name(&self, name: &str, address: &str) -> PortResult<()> {
        use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
        let zone = self.settings.hosted_zone_id.as_deref().ok_or_else(|| {
            PortError::msg("backend", format!("no Route53 hosted zone configured for {name} ([names] route53_zone)"))
        })?;
        let build = |e: aws_sdk_route53::error::BuildError| err(format!("route53 record {name}"), e);
        // A short TTL: after a replacement, peers and clients must re-resolve within seconds.
        let record = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::A)
            .ttl(10)
            .resource_records(ResourceRecord::builder().value(address).build().map_err(build)?)
            .build()
            .map_err(build)?;
        let change =
            Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build().map_err(build)?;
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(ChangeBatch::builder().changes(change).comment("zkpilot").build().map_err(build)?)
            .send()
            .await
            .map_err(|e| err(format!("upsert route53 {name} -> {address} in {zone}"), e))?;
        Ok(())
    }

    async fn publish_status(&self, instance: &InstanceId, status_json: &str) -> PortResult<()> {
        self.put(&self.key(&format!("status/{instance}.json")), status_json.as_bytes().to_vec()).await
    }
}

impl Store for AwsBackend {
    async fn backup_put(&self, backup: &str, file: &str, from: &std::path::Path) -> PortResult<()> {
        let key = self.key(&backup_key(backup, file)?);
        self.put_file(&key, from).await
    }

    async fn backup_get(&self, backup: &str, file: &str, to: &std::path::Path) -> PortResult<()> {
        use tokio::io::AsyncWriteExt as _;
        let key = self.key(&backup_key(backup, file)?);
        let mut out = self
            .s3
            .get_object()
            .bucket(&self.settings.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| err(format!("get s3 {key}"), e))?;
        let mut f = tokio::fs::File::create(to).await.map_err(|e| err(format!("create {}", to.display()), e))?;
        while let Some(chunk) = out.body.try_next().await.map_err(|e| err(format!("read s3 {key}"), e))? {
            f.write_all(&chunk).await.map_err(|e| err(format!("write {}", to.display()), e))?;
        }
        f.sync_all().await.map_err(|e| err(format!("sync {}", to.display()), e))
    }

    async fn backups(&self) -> PortResult<Vec<zkpilot_core::backup::Manifest>> {
        let mut out = Vec::new();
        for (key, _) in self.list(&self.key("backups/")).await? {
            if key.ends_with("/manifest.json")
                && let Some((m, _)) = self.get_json(&key).await?
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn backup_delete(&self, backup: &str) -> PortResult<()> {
        let prefix = self.key(&backup_key(backup, "")?);
        let manifest = format!("{prefix}manifest.json");
        let mut keys: Vec<String> = self.list(&prefix).await?.into_iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| *k != manifest);
        for key in keys {
            self.s3
                .delete_object()
                .bucket(&self.settings.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| err(format!("delete s3 {key}"), e))?;
        }
        Ok(())
    }

    async fn ship_log(&self, instance: &InstanceId, file: &str, from: &std::path::Path) -> PortResult<()> {
        if !zkpilot_core::backup::safe_name(&instance.0) || !zkpilot_core::backup::safe_name(file) {
            return Err(PortError::msg("backend", format!("unsafe log name {instance}/{file}")));
        }
        let key = self.key(&format!("postmortem/{instance}/{file}"));
        self.put_file(&key, from).await
    }
}
