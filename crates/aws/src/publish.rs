//! [`Publish`] on AWS: the connection string and membership document in S3, the connection-count
//! metric in CloudWatch, server names in Route53, status snapshots in S3.

use zkpilot_core::model::{EnsembleConfig, InstanceId};
use zkpilot_core::ports::{PortError, PortResult, Publish, epoch_ms};

use crate::{AwsBackend, METRIC_CONNECTIONS, METRIC_NAMESPACE, err};

impl Publish for AwsBackend {
    async fn publish_membership(&self, config: &EnsembleConfig) -> PortResult<()> {
        self.bucket
            .put(&self.bucket.key("connect-string"), format!("{}\n", config.connect_string()).into_bytes())
            .await?;
        let doc = serde_json::json!({
            "version": format!("{:x}", config.version),
            "connect_string": config.connect_string(),
            "servers": config.servers.values().map(|s| s.to_string()).collect::<Vec<_>>(),
            "published_ms": epoch_ms(),
        });
        self.bucket.put(&self.bucket.key("membership.json"), doc.to_string().into_bytes()).await
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
        self.bucket.put(&self.bucket.key(&format!("status/{instance}.json")), status_json.as_bytes().to_vec()).await
    }
}
