//! The group the instances run in (an EC2 Auto Scaling group, or the local controller).

use std::future::Future;

use super::PortResult;
use crate::model::{Instance, InstanceId, LifecycleHook};

/// Discovery and control of the group: which instances exist, how many it wants, and the few
/// levers the agent pulls on it (protection, lifecycle hooks, health).
pub trait Group: Send + Sync {
    /// All instances of the group with their states and claimed ids.
    fn instances(&self) -> impl Future<Output = PortResult<Vec<Instance>>> + Send;
    /// How many instances the group wants.
    fn desired_capacity(&self) -> impl Future<Output = PortResult<usize>> + Send;
    /// Protects (or releases) an instance from being picked on scale-in.
    fn set_scale_in_protection(
        &self,
        instance: &InstanceId,
        protected: bool,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Extends a waiting lifecycle action's timeout.
    fn lifecycle_heartbeat(
        &self,
        instance: &InstanceId,
        hook: LifecycleHook,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Completes a lifecycle action with CONTINUE.
    fn complete_lifecycle(
        &self,
        instance: &InstanceId,
        hook: LifecycleHook,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Tells the group that `instance` is unhealthy so it is replaced (SetInstanceHealth on AWS).
    fn report_unhealthy(&self, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
}
