//! [`Identity`] on AWS: server-id claims created exclusively in S3 (or CloudWatch Logs), slots,
//! and the instance tags that announce an id.

use aws_sdk_ec2::types::Tag;
use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::ports::{Identity, PortError, PortResult, Slot};

use crate::{AwsBackend, Claim, TAG_ADDRESS, TAG_SERVER_ID, err};

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
            let key = self.bucket.key(&format!("ids/{n}.json"));
            if self.bucket.put_if(&key, body.clone(), None).await? {
                // S3's conditional writes are atomic; moto's check-then-write is not (two
                // concurrent claimants both succeeded once, under load). Reading the claim back
                // after a moment costs one GET at boot and turns that into a lost race.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                match self.bucket.get_json::<Claim>(&key).await? {
                    Some((c, _)) if &c.instance == instance => return Ok(ServerId(n)),
                    _ => tracing::warn!(%key, "claim overwritten by a concurrent claimant; trying the next id"),
                }
            }
        }
        Err(PortError::msg("backend", format!("all server ids are claimed in {}ids/", self.bucket.url())))
    }

    async fn claim_slot(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<Slot>> {
        self.claim_slot_ready(instance, zone).await
    }

    async fn release_id(&self, id: ServerId, instance: &InstanceId) -> PortResult<()> {
        if self.claims_in_logs() {
            return self.logs_release(id, instance).await;
        }
        let key = self.bucket.key(&format!("ids/{id}.json"));
        let Some((claim, etag)) = self.bucket.get_json::<Claim>(&key).await? else { return Ok(()) };
        if &claim.instance != instance {
            return Ok(());
        }
        self.bucket.delete_if(&key, etag.as_deref()).await
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
