//! What EC2 and Auto Scaling say about the instances: the group, EC2's view of an instance, the
//! lifecycle mapping, and this instance's own identity from the metadata service.

use std::collections::BTreeMap;

use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use zkpilot_core::model::InstanceState;
use zkpilot_core::ports::{PortError, PortResult};

use crate::err;

/// The Auto Scaling group `name`.
pub(crate) async fn group(asg: &aws_sdk_autoscaling::Client, name: &str) -> PortResult<AutoScalingGroup> {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| err(format!("describe auto scaling group {name}"), e))?;
    out.auto_scaling_groups()
        .first()
        .cloned()
        .ok_or_else(|| PortError::msg("backend", format!("auto scaling group {name} not found")))
}

/// EC2 view of some instances: state, private address, zone, tags.
pub(crate) async fn describe(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> PortResult<BTreeMap<String, aws_sdk_ec2::types::Instance>> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    // A filter rather than InstanceIds: an id EC2 has forgotten is then simply absent instead
    // of failing the whole call (InvalidInstanceID.NotFound).
    let filter = Filter::builder().name("instance-id").set_values(Some(ids.to_vec())).build();
    let mut token = None;
    loop {
        let page = ec2
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

/// EC2 reports the instance terminated or shutting down, or no longer knows it.
pub(crate) fn gone_in_ec2(i: Option<&aws_sdk_ec2::types::Instance>) -> bool {
    i.is_none_or(|i| {
        matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
        )
    })
}

/// EC2 reports the instance terminated (not merely shutting down).
pub(crate) fn terminated_in_ec2(i: Option<&aws_sdk_ec2::types::Instance>) -> bool {
    i.is_some_and(|i| matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated)))
}

/// The value of tag `key` on an instance.
pub(crate) fn tag<'a>(i: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The ensemble's view of an Auto Scaling lifecycle state: `Pending*`, `InService`, `Standby` are
/// running (a launching instance's agent already runs and may join); `Terminating*`, `Detaching`,
/// `Detached` are leaving.
pub(crate) fn lifecycle(state: Option<&LifecycleState>) -> Option<InstanceState> {
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
