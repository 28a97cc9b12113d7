//! The AWS backend of an agent config's `[backend] kind = "aws"` section.

use zkpilot_aws::slots::SlotSettings;
use zkpilot_aws::{AwsBackend, AwsSettings};
use zkpilot_runtime::config::{AgentConfig, AwsSection, IdentityMode};

/// Connects the AWS backend `aws` describes. Slot mode and Route53 names matter only to agents
/// ([`agent_backend`]); every other user passes `None` for both.
pub async fn backend(aws: &AwsSection, slots: Option<SlotSettings>, hosted_zone_id: Option<String>) -> AwsBackend {
    let settings = AwsSettings {
        group: aws.group.clone(),
        bucket: aws.bucket.clone(),
        prefix: aws.prefix.clone(),
        region: aws.region.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        launch_hook: zkpilot_aws::default_launch_hook(),
        terminate_hook: zkpilot_aws::default_terminate_hook(),
        claims: match &aws.claims_log_group {
            Some(g) => zkpilot_aws::logs::ClaimStore::Logs { log_group: g.clone() },
            None => zkpilot_aws::logs::ClaimStore::S3,
        },
        hosted_zone_id,
        slots,
    };
    AwsBackend::connect(settings).await
}

/// The backend of an agent on AWS: slot settings from `[cluster] identity` and `[backend]`, and
/// the Route53 zone of `[names]`.
pub async fn agent_backend(cfg: &AgentConfig, aws: &AwsSection) -> AwsBackend {
    let slots = match cfg.cluster.identity {
        IdentityMode::Elastic => None,
        IdentityMode::Slot => Some(SlotSettings {
            // Validated: slot identity requires it.
            cluster: aws.slot_cluster.clone().unwrap_or_default(),
            mount: aws.slot_mount.clone().unwrap_or_else(|| "/var/lib/zkpilot/slot".into()),
        }),
    };
    backend(aws, slots, cfg.names.as_ref().and_then(|n| n.route53_zone.clone())).await
}
