//! [`Coordination`] locally: marker, lease, recovery records, operator switches, restore seed and
//! base config as files under the state directory.

use zkpilot_core::model::InstanceId;
use zkpilot_core::ports::{ClusterMarker, Coordination, OperatorSettings, PortError, PortResult};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use super::{LocalBackend, in_place, port};

impl Coordination for LocalBackend {
    async fn cluster_marker(&self) -> PortResult<Option<ClusterMarker>> {
        let dir = self.dir.clone();
        in_place(move || dir.marker()).await.map_err(port("read cluster marker"))
    }

    async fn create_cluster_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        let (dir, marker) = (self.dir.clone(), marker.clone());
        in_place(move || dir.create_marker(&marker)).await.map_err(port("create cluster marker"))
    }

    async fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> PortResult<bool> {
        let (dir, holder) = (self.dir.clone(), holder.clone());
        in_place(move || dir.acquire_lease(&holder, ttl_ms, now_ms)).await.map_err(port("acquire lease"))
    }

    async fn put_survivor_report(&self, report: &SurvivorReport) -> PortResult<()> {
        let (dir, report) = (self.dir.clone(), report.clone());
        in_place(move || dir.put_survivor_report(&report)).await.map_err(port("write survivor report"))
    }

    async fn survivor_reports(&self) -> PortResult<Vec<SurvivorReport>> {
        let dir = self.dir.clone();
        in_place(move || dir.survivor_reports()).await.map_err(port("read survivor reports"))
    }

    async fn recovery_decision(&self) -> PortResult<Option<RecoveryDecision>> {
        let dir = self.dir.clone();
        in_place(move || dir.recovery_decision()).await.map_err(port("read recovery decision"))
    }

    async fn put_recovery_decision(&self, decision: &RecoveryDecision) -> PortResult<()> {
        let (dir, decision) = (self.dir.clone(), decision.clone());
        in_place(move || dir.put_recovery_decision(&decision)).await.map_err(port("write recovery decision"))
    }

    async fn operator_settings(&self) -> PortResult<Option<OperatorSettings>> {
        let dir = self.dir.clone();
        in_place(move || dir.operator_settings()).await.map_err(port("read operator settings"))
    }

    async fn put_operator_settings(&self, settings: &OperatorSettings) -> PortResult<()> {
        let (dir, settings) = (self.dir.clone(), settings.clone());
        in_place(move || dir.put_operator_settings(&settings)).await.map_err(port("write operator settings"))
    }

    async fn restore_seed(&self) -> PortResult<Option<String>> {
        let dir = self.dir.clone();
        in_place(move || dir.restore_seed()).await.map_err(port("read restore seed"))
    }

    async fn put_restore_seed(&self, backup: &str) -> PortResult<()> {
        let (dir, backup) = (self.dir.clone(), backup.to_string());
        in_place(move || dir.put_restore_seed(&backup)).await.map_err(port("write restore seed"))
    }

    async fn base_config(&self) -> PortResult<Option<String>> {
        let path = self.dir.root().join("base.cfg");
        match tokio::fs::read_to_string(&path).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::new("backend", format!("read {}", path.display()), e)),
        }
    }
}
