//! Where the group and its records are: the `[backend] aws` section of the agent config.

use serde::{Deserialize, Serialize};

use crate::{logs, slots};

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
