//! [`Coordination`] on AWS: the cluster marker (created exclusively), the membership-change lease
//! (a compare-and-swap on its ETag), quorum-loss recovery records, the operator's switches, the
//! restore seed and the base config, all under the S3 prefix.

use serde::{Deserialize, Serialize};
use zkpilot_core::model::InstanceId;
use zkpilot_core::ports::{ClusterMarker, Coordination, OperatorSettings, PortError, PortResult};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use crate::{AwsBackend, discovery, err};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: InstanceId,
    expires_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct RestoreSeed {
    backup: String,
}

impl Coordination for AwsBackend {
    async fn cluster_marker(&self) -> PortResult<Option<ClusterMarker>> {
        if self.claims_in_logs() {
            return self.logs_marker().await;
        }
        Ok(self.bucket.get_json(&self.bucket.key("cluster/marker.json")).await?.map(|(m, _)| m))
    }

    async fn create_cluster_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        if self.claims_in_logs() {
            return self.logs_create_marker(marker).await;
        }
        let key = self.bucket.key("cluster/marker.json");
        let body = serde_json::to_vec_pretty(marker).map_err(|e| err("encode marker", e))?;
        self.bucket.put_if(&key, body, None).await?;
        self.bucket
            .get_json(&key)
            .await?
            .map(|(m, _)| m)
            .ok_or_else(|| PortError::msg("backend", format!("s3 {key} vanished after creation")))
    }

    async fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> PortResult<bool> {
        let key = self.bucket.key("cluster/lease.json");
        let current = self.bucket.get_json::<Lease>(&key).await?;
        let free = match &current {
            None => true,
            Some((l, _)) if &l.holder == holder || l.expires_ms <= now_ms => true,
            Some((l, _)) => {
                // A holder EC2 confirms terminated frees the lease at once.
                let ec2 = discovery::describe(&self.ec2, std::slice::from_ref(&l.holder.0)).await?;
                discovery::terminated_in_ec2(ec2.get(&l.holder.0))
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
            (false, _) => self.bucket.put_if(&key, body, None).await,
            (true, Some(tag)) => self.bucket.put_if(&key, body, Some(tag)).await,
            (true, None) => Ok(false),
        }
    }

    async fn put_survivor_report(&self, report: &SurvivorReport) -> PortResult<()> {
        let body = serde_json::to_vec(report).map_err(|e| err("encode survivor report", e))?;
        self.bucket.put(&self.bucket.key(&format!("recovery/reports/{}.json", report.instance)), body).await
    }

    async fn survivor_reports(&self) -> PortResult<Vec<SurvivorReport>> {
        // A handful of objects, only read while the ensemble has no quorum.
        let mut out = Vec::new();
        for (key, _) in self.bucket.list(&self.bucket.key("recovery/reports/")).await? {
            if let Some((r, _)) = self.bucket.get_json::<SurvivorReport>(&key).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn recovery_decision(&self) -> PortResult<Option<RecoveryDecision>> {
        Ok(self.bucket.get_json(&self.bucket.key("recovery/decision.json")).await?.map(|(d, _)| d))
    }

    async fn put_recovery_decision(&self, decision: &RecoveryDecision) -> PortResult<()> {
        let body = serde_json::to_vec(decision).map_err(|e| err("encode recovery decision", e))?;
        self.bucket.put(&self.bucket.key("recovery/decision.json"), body).await
    }

    async fn operator_settings(&self) -> PortResult<Option<OperatorSettings>> {
        Ok(self.bucket.get_json(&self.bucket.key("operator.json")).await?.map(|(s, _)| s))
    }

    async fn put_operator_settings(&self, settings: &OperatorSettings) -> PortResult<()> {
        let body = serde_json::to_vec(settings).map_err(|e| err("encode operator settings", e))?;
        self.bucket.put(&self.bucket.key("operator.json"), body).await
    }

    async fn restore_seed(&self) -> PortResult<Option<String>> {
        Ok(self.bucket.get_json::<RestoreSeed>(&self.bucket.key("restore-seed.json")).await?.map(|(s, _)| s.backup))
    }

    async fn put_restore_seed(&self, backup: &str) -> PortResult<()> {
        let body = serde_json::to_vec(&RestoreSeed { backup: backup.into() }).map_err(|e| err("encode seed", e))?;
        self.bucket.put(&self.bucket.key("restore-seed.json"), body).await
    }

    async fn base_config(&self) -> PortResult<Option<String>> {
        match self.bucket.get(&self.bucket.key("base.cfg")).await? {
            None => Ok(None),
            Some((bytes, _)) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| err(format!("s3 {}base.cfg is not UTF-8", self.settings.prefix), e)),
        }
    }
}
