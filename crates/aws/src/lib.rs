//! The AWS backend: the core's backend ports over EC2 Auto Scaling, EC2 and S3.
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
//!
//! # Layout
//!
//! One file per port it implements: [`Group`](zkpilot_core::ports::Group) (`group.rs`),
//! [`Identity`](zkpilot_core::ports::Identity) (`identity.rs`),
//! [`Coordination`](zkpilot_core::ports::Coordination) (`coordination.rs`),
//! [`Publish`](zkpilot_core::ports::Publish) (`publish.rs`) and [`Store`](zkpilot_core::ports::Store)
//! (`store.rs`), over the helpers they share: the S3 records (`s3.rs`), EC2 and Auto Scaling
//! discovery (`discovery.rs`), claims in CloudWatch Logs ([`logs`]) and slot mode ([`slots`]).
#![deny(missing_docs)]

mod coordination;
mod discovery;
mod group;
mod identity;
pub mod logs;
mod publish;
mod s3;
mod settings;
pub mod slots;
mod store;
pub mod template;
pub mod volume;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region};
use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, LifecycleHook, ServerId};
use zkpilot_core::ports::{PortError, PortResult};

pub use discovery::{instance_identity, instance_identity_with};
pub use settings::{AwsSettings, default_launch_hook, default_terminate_hook};

/// Tag holding the server id.
pub const TAG_SERVER_ID: &str = "zkpilot:server-id";
/// Tag holding the advertised address.
pub const TAG_ADDRESS: &str = "zkpilot:address";

/// CloudWatch namespace of zkpilot's metrics.
pub const METRIC_NAMESPACE: &str = "zkpilot";
/// Client connections per server; the template's target-tracking policy scales on its average.
pub const METRIC_CONNECTIONS: &str = "ClientConnections";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    instance: InstanceId,
    address: String,
}

/// Claim record key (S3 key, or log stream name) → (version: ETag or creation time, claim body).
type ClaimCache = BTreeMap<String, (Option<String>, Claim)>;

/// The backend.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    settings: AwsSettings,
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    bucket: s3::Bucket,
    cloudwatch: aws_sdk_cloudwatch::Client,
    route53: aws_sdk_route53::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    /// Claim bodies by key and version (see `Bucket::records`, `logs_claims`).
    claim_cache: Arc<Mutex<ClaimCache>>,
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

fn err(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::new("backend", what, e)
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
            bucket: s3::Bucket::new(c.s3, &settings.bucket, &settings.prefix),
            settings,
            asg: c.asg,
            ec2: c.ec2,
            cloudwatch: c.cloudwatch,
            route53: c.route53,
            logs: c.logs,
            claim_cache: Default::default(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
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

    /// Server-id claims (`ids/`).
    async fn claims(&self) -> PortResult<BTreeMap<ServerId, Claim>> {
        if self.claims_in_logs() {
            return self.logs_claims().await;
        }
        Ok(self.bucket.records("ids/", &self.claim_cache).await?.into_iter().map(|(n, (c, _))| (n, c)).collect())
    }
}
