//! What the operator wants. Validated once, read-only afterwards.

use serde::{Deserialize, Serialize};

/// Membership policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Voters wanted; odd. Members beyond it are observers.
    pub target_voters: usize,
    /// The planner never removes or demotes voters below this many.
    pub min_voters: usize,
    /// How long a server must have served before it is promoted to voter (ms).
    pub stabilization_ms: u64,
    /// A running member whose server has not served for this long (ms) is reported unhealthy so
    /// the group replaces its instance; 0 never reports. Allow for the longest snapshot sync a
    /// joiner may need.
    pub unhealthy_after_ms: u64,
    /// Name indirection: server lines use `zk-<id>.<domain>` instead of addresses. Set from the
    /// agent config's `[names]`, not written in `[policy]`.
    #[serde(skip)]
    pub names_domain: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self { target_voters: 3, min_voters: 1, stabilization_ms: 0, unhealthy_after_ms: 120_000, names_domain: None }
    }
}

/// The stable name of server `id` under `domain`.
pub fn server_name(id: crate::model::ServerId, domain: &str) -> String {
    format!("zk-{id}.{domain}")
}

impl Policy {
    /// What server `id`'s line says as host: its stable name with name indirection, else the
    /// address it runs on.
    pub fn host_for(&self, id: crate::model::ServerId, address: &str) -> String {
        match &self.names_domain {
            Some(domain) => server_name(id, domain),
            None => address.to_string(),
        }
    }
}

/// A policy field with an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy field `{field}`: {why}")]
pub struct PolicyError {
    /// Field name as written in the agent config.
    pub field: &'static str,
    /// What is wrong.
    pub why: String,
}

impl Policy {
    /// Checks the invariants the planner relies on.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.target_voters == 0 || self.target_voters.is_multiple_of(2) {
            return Err(PolicyError {
                field: "target_voters",
                why: format!(
                    "{} is not a positive odd number (an even count adds no fault tolerance)",
                    self.target_voters
                ),
            });
        }
        if self.target_voters > 255 {
            return Err(PolicyError { field: "target_voters", why: "ZooKeeper ids stop at 255".into() });
        }
        if self.min_voters == 0 || self.min_voters > self.target_voters {
            return Err(PolicyError {
                field: "min_voters",
                why: format!("{} must be between 1 and target_voters ({})", self.min_voters, self.target_voters),
            });
        }
        Ok(())
    }
}
