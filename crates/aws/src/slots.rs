//! Slot mode on EC2: stable identity from pre-created resources.
//!
//! Slot `n` is a network interface (its fixed private address is server `n`'s address) and an EBS
//! volume with `DeleteOnTermination=false` (server `n`'s conf, data and logs), both tagged
//! `zkpilot:cluster=<cluster>` and `zkpilot:slot=<n>` and living in one zone. An instance takes
//! a slot by creating `slots/<n>.json` in S3 with `If-None-Match: *`, or, when the holder is
//! gone (EC2 says terminated, or no longer knows it), by replacing it with `If-Match` on its ETag:
//! two replacements racing for one slot cannot both win. It then attaches the interface and the
//! volume, waits until EC2 reports both attached, finds the volume's block device (NVMe names are
//! not stable), mounts it, and waits until the interface's address is configured on the host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_ec2::types::{AttachmentStatus, Filter, VolumeAttachmentState};
use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::ports::{PortError, PortResult, Slot};

use crate::{AwsBackend, Claim, discovery, err};

/// Tag naming the cluster a slot resource belongs to.
pub const TAG_CLUSTER: &str = "zkpilot:cluster";
/// Tag holding the slot number.
pub const TAG_SLOT: &str = "zkpilot:slot";
/// Device name the volume is attached as (the kernel may call it something else, see `volume`).
pub const VOLUME_DEVICE: &str = "/dev/sdf";
/// The interface goes in as the instance's second one.
const INTERFACE_INDEX: i32 = 1;
/// How long attachments and the address may take before the pass gives up (and retries later).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(300);

/// Where slot resources are found and the volume is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSettings {
    /// Value of the `zkpilot:cluster` tag on the slot resources (the template uses the stack name).
    pub cluster: String,
    /// Mount point of the slot volume; the server's base dir is `<mount>/zookeeper`.
    #[serde(default = "default_mount")]
    pub mount: PathBuf,
}

fn default_mount() -> PathBuf {
    PathBuf::from("/var/lib/zkpilot/slot")
}

/// One slot's resources as EC2 reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotResources {
    /// Slot number = server id.
    pub id: ServerId,
    /// Availability zone (of the volume; the interface's subnet must agree).
    pub zone: String,
    /// Network interface id.
    pub interface: String,
    /// Its fixed private address.
    pub address: String,
    /// Instance the interface is attached to, if any.
    pub interface_on: Option<String>,
    /// That attachment's id.
    pub interface_attachment: Option<String>,
    /// EBS volume id.
    pub volume: String,
    /// Instance the volume is attached to, if any.
    pub volume_on: Option<String>,
    /// Both attachments report `attached` (not merely `attaching`).
    pub attached: bool,
}

fn tag_of<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

impl AwsBackend {
    fn slot_settings(&self) -> PortResult<&SlotSettings> {
        self.settings
            .slots
            .as_ref()
            .ok_or_else(|| PortError::msg("backend", "slot mode is not configured ([backend] slots)"))
    }

    /// Current slot claims (`slots/<n>.json`).
    pub(crate) async fn slot_claims(&self) -> PortResult<BTreeMap<ServerId, Claim>> {
        Ok(self.bucket.records("slots/", &self.claim_cache).await?.into_iter().map(|(n, (c, _))| (n, c)).collect())
    }

    /// Every complete slot (interface and volume) of the cluster. A slot whose interface and
    /// volume sit in different zones can never be attached together: an error naming both.
    pub async fn slot_resources(&self) -> PortResult<BTreeMap<ServerId, SlotResources>> {
        let cluster = &self.slot_settings()?.cluster;
        let filter = Filter::builder().name(format!("tag:{TAG_CLUSTER}")).values(cluster).build();
        let enis = self
            .ec2
            .describe_network_interfaces()
            .filters(filter.clone())
            .send()
            .await
            .map_err(|e| err("describe slot network interfaces", e))?;
        let vols =
            self.ec2.describe_volumes().filters(filter).send().await.map_err(|e| err("describe slot volumes", e))?;
        let slot_no = |tags: &[aws_sdk_ec2::types::Tag]| tag_of(tags, TAG_SLOT).and_then(|v| v.parse::<u32>().ok());
        // Interface half of each slot first; the volume half completes it.
        let mut partial: BTreeMap<u32, (SlotResources, Option<String>)> = BTreeMap::new();
        for eni in enis.network_interfaces() {
            let (Some(n), Some(id), Some(ip)) =
                (slot_no(eni.tag_set()), eni.network_interface_id(), eni.private_ip_address())
            else {
                continue;
            };
            let att = eni.attachment().filter(|a| !matches!(a.status(), Some(AttachmentStatus::Detached)));
            let slot = SlotResources {
                id: ServerId(n),
                zone: String::new(),
                interface: id.to_string(),
                address: ip.to_string(),
                interface_on: att.and_then(|a| a.instance_id()).map(str::to_string),
                interface_attachment: att.and_then(|a| a.attachment_id()).map(str::to_string),
                volume: String::new(),
                volume_on: None,
                attached: att.is_some_and(|a| matches!(a.status(), Some(AttachmentStatus::Attached))),
            };
            partial.insert(n, (slot, eni.availability_zone().map(str::to_string)));
        }
        let mut out = BTreeMap::new();
        for v in vols.volumes() {
            let (Some(n), Some(vid)) = (slot_no(v.tags()), v.volume_id()) else { continue };
            let Some((mut slot, eni_zone)) = partial.remove(&n) else { continue };
            let zone = v.availability_zone().unwrap_or_default().to_string();
            if let Some(z) = eni_zone.filter(|z| *z != zone) {
                return Err(PortError::msg(
                    "backend",
                    format!("slot {n}: interface {} is in {z} but volume {vid} is in {zone}", slot.interface),
                ));
            }
            let att = v.attachments().iter().find(|a| !matches!(a.state(), Some(VolumeAttachmentState::Detached)));
            slot.zone = zone;
            slot.volume = vid.to_string();
            slot.volume_on = att.and_then(|a| a.instance_id()).map(str::to_string);
            slot.attached &= att.is_some_and(|a| matches!(a.state(), Some(VolumeAttachmentState::Attached)));
            out.insert(ServerId(n), slot);
        }
        Ok(out)
    }

    /// True if EC2 reports `instance` terminated or no longer knows it.
    async fn gone(&self, instance: &InstanceId) -> PortResult<bool> {
        let ec2 = discovery::describe(&self.ec2, std::slice::from_ref(&instance.0)).await?;
        Ok(discovery::gone_in_ec2(ec2.get(&instance.0)))
    }

    /// Claims a slot of `zone` for `instance` in S3 (the one it holds, else a never-claimed one,
    /// else one whose holder is gone) and attaches its interface and volume. `None` if every slot
    /// of the zone is held by a live instance.
    pub async fn take_slot(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<SlotResources>> {
        let resources = self.slot_resources().await?;
        let records = self.bucket.records("slots/", &self.claim_cache).await?;
        let mine = records.iter().find(|(_, (c, _))| &c.instance == instance).map(|(n, _)| *n);
        let chosen = match mine {
            Some(n) => resources.get(&n).cloned(),
            None => {
                let mut won = None;
                for r in resources.values().filter(|r| r.zone == zone) {
                    let key = self.bucket.key(&format!("slots/{}.json", r.id));
                    let body = serde_json::to_vec(&Claim { instance: instance.clone(), address: r.address.clone() })
                        .map_err(|e| err("encode slot claim", e))?;
                    let taken = match records.get(&r.id) {
                        None => self.bucket.put_if(&key, body, None).await?,
                        Some((holder, Some(etag))) if self.gone(&holder.instance).await? => {
                            tracing::info!(slot = %r.id, previous = %holder.instance, "taking over the slot of a gone instance");
                            self.bucket.put_if(&key, body, Some(etag)).await?
                        }
                        Some(_) => false,
                    };
                    if taken {
                        won = Some(r.clone());
                        break;
                    }
                }
                won
            }
        };
        let Some(slot) = chosen else { return Ok(None) };
        self.attach(instance, &slot).await?;
        Ok(Some(slot))
    }

    /// Attaches the slot's interface and volume to `instance` (skipping what already is) and
    /// waits until EC2 reports both attached to it.
    async fn attach(&self, instance: &InstanceId, slot: &SlotResources) -> PortResult<()> {
        let deadline = tokio::time::Instant::now() + ATTACH_TIMEOUT;
        loop {
            let now = self.slot_resources().await?.remove(&slot.id).ok_or_else(|| {
                PortError::msg("backend", format!("slot {} lost its interface or volume while attaching", slot.id))
            })?;
            let on_me = |on: &Option<String>| on.as_deref() == Some(instance.0.as_str());
            if on_me(&now.interface_on) && on_me(&now.volume_on) && now.attached {
                return Ok(());
            }
            // Attached elsewhere: EC2 detaches both when the old instance terminates; if it still
            // shows them on an instance it reports gone, detach explicitly (nothing runs there).
            // Attached to a live instance: wait, never force.
            if let Some(other) = now.interface_on.as_deref().filter(|o| *o != instance.0)
                && self.gone(&InstanceId(other.to_string())).await?
                && let Some(att) = &now.interface_attachment
            {
                self.ec2
                    .detach_network_interface()
                    .attachment_id(att)
                    .send()
                    .await
                    .map_err(|e| err(format!("detach interface {} from gone {other}", now.interface), e))?;
            }
            if let Some(other) = now.volume_on.as_deref().filter(|o| *o != instance.0)
                && self.gone(&InstanceId(other.to_string())).await?
            {
                self.ec2
                    .detach_volume()
                    .volume_id(&now.volume)
                    .instance_id(other)
                    .send()
                    .await
                    .map_err(|e| err(format!("detach volume {} from gone {other}", now.volume), e))?;
            }
            if now.interface_on.is_none() {
                self.ec2
                    .attach_network_interface()
                    .network_interface_id(&now.interface)
                    .instance_id(&instance.0)
                    .device_index(INTERFACE_INDEX)
                    .send()
                    .await
                    .map_err(|e| err(format!("attach interface {} to {instance}", now.interface), e))?;
            }
            if now.volume_on.is_none() {
                self.ec2
                    .attach_volume()
                    .volume_id(&now.volume)
                    .instance_id(&instance.0)
                    .device(VOLUME_DEVICE)
                    .send()
                    .await
                    .map_err(|e| err(format!("attach volume {} to {instance}", now.volume), e))?;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(PortError::msg(
                    "backend",
                    format!(
                        "slot {} for {instance}: interface on {:?}, volume on {:?} after {}s",
                        slot.id,
                        now.interface_on,
                        now.volume_on,
                        ATTACH_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// The port's `claim_slot`: take and attach, then mount the volume and wait for the address.
    pub(crate) async fn claim_slot_ready(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<Slot>> {
        let mount = self.slot_settings()?.mount.clone();
        let Some(slot) = self.take_slot(instance, zone).await? else { return Ok(None) };
        let volume = slot.volume.clone();
        let mount_at = mount.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + ATTACH_TIMEOUT;
            // The block device appears a moment after EC2 reports the attachment.
            let device = loop {
                match crate::volume::find_device(std::path::Path::new("/"), &volume, VOLUME_DEVICE) {
                    Ok(d) => break d,
                    Err(e) if std::time::Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_secs(1)),
                }
            };
            crate::volume::ensure_mounted(&device, &mount_at)
        })
        .await
        .map_err(|e| err("mount slot volume", e))?
        .map_err(|e| err(format!("slot {} volume {}", slot.id, slot.volume), e))?;
        wait_for_local_address(&slot.address).await?;
        Ok(Some(Slot { id: slot.id, address: slot.address, base_dir: Some(mount.join("zookeeper")) }))
    }
}

/// Waits until `address` is configured on this host (binding it succeeds): the OS brings a
/// hot-plugged interface up by itself (Amazon Linux's ec2-net-utils, Debian's cloud images), and
/// ZooKeeper must not start before.
async fn wait_for_local_address(address: &str) -> PortResult<()> {
    let deadline = tokio::time::Instant::now() + ATTACH_TIMEOUT;
    loop {
        match std::net::TcpListener::bind((address, 0)) {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(err(format!("slot address {address} is not configured on this host"), e));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
