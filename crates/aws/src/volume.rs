//! A slot's EBS volume on the instance: find the block device it appeared as, give a blank
//! volume a filesystem, mount it.
//!
//! On Nitro instances a volume attached as `/dev/sdf` shows up as `/dev/nvmeNn1` in whatever order
//! the kernel enumerated it; the NVMe controller's serial is the volume id without its dash, which
//! udev also publishes as `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`. Xen instances
//! keep the requested name (`/dev/xvdf` or `/dev/sdf`).
//!
//! Data safety: a filesystem is created only when `blkid` reports no signature at all on the
//! device (exit status 2). Any signature, or any other `blkid` outcome, is left untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Volume or mount step that failed; names the device or path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The attached volume has no block device yet (still appearing, or another name scheme).
    #[error("volume {volume}: no block device found (looked for {looked})")]
    NoDevice {
        /// Volume id.
        volume: String,
        /// Where it looked.
        looked: String,
    },
    /// A tool failed.
    #[error("{command}: {why}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        why: String,
    },
    /// Reading sysfs or /proc failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The NVMe serial number EC2 gives a volume: `vol-0abc` → `vol0abc`.
pub fn nvme_serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
}

/// The block device of `volume_id`, attached as `requested` (e.g. `/dev/sdf`). `root` is `/`
/// except in tests, which lay out a sysfs/dev fixture.
pub fn find_device(root: &Path, volume_id: &str, requested: &str) -> Result<PathBuf, VolumeError> {
    let serial = nvme_serial(volume_id);
    let by_id = root.join("dev/disk/by-id").join(format!("nvme-Amazon_Elastic_Block_Store_{serial}"));
    if by_id.exists() {
        return Ok(by_id);
    }
    // Without udev's link: the controller serial in sysfs names the namespace's disk.
    let sys = root.join("sys/block");
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("nvme") {
                continue;
            }
            let serial_path = e.path().join("device/serial");
            if let Ok(s) = std::fs::read_to_string(&serial_path)
                && s.trim() == serial
            {
                return Ok(root.join("dev").join(name));
            }
        }
    }
    let short = requested.trim_start_matches("/dev/");
    let xen = root.join("dev").join(short.replacen("sd", "xvd", 1));
    let plain = root.join("dev").join(short);
    for candidate in [&xen, &plain] {
        if candidate.exists() {
            return Ok(candidate.clone());
        }
    }
    Err(VolumeError::NoDevice {
        volume: volume_id.into(),
        looked: format!(
            "{}, {}/nvme*/device/serial, {}, {}",
            by_id.display(),
            sys.display(),
            xen.display(),
            plain.display()
        ),
    })
}

fn run(cmd: &mut Command) -> Result<std::process::Output, VolumeError> {
    let line = format!("{cmd:?}");
    cmd.output().map_err(|e| VolumeError::Command { command: line, why: e.to_string() })
}

fn check(cmd: &mut Command) -> Result<(), VolumeError> {
    let line = format!("{cmd:?}");
    let out = run(cmd)?;
    if out.status.success() {
        return Ok(());
    }
    Err(VolumeError::Command {
        command: line,
        why: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
    })
}

/// True if `device` carries no signature at all (filesystem, partition table, RAID, LVM).
fn is_blank(device: &Path) -> Result<bool, VolumeError> {
    let mut cmd = Command::new("blkid");
    cmd.arg("-p").arg(device);
    let line = format!("{cmd:?}");
    let out = run(&mut cmd)?;
    match out.status.code() {
        Some(0) => Ok(false),
        // blkid(8): 2 = no signature found. Only this is "blank".
        Some(2) => Ok(true),
        _ => Err(VolumeError::Command {
            command: line,
            why: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        }),
    }
}

/// The mount point `device` is mounted on, from `/proc/self/mountinfo`-style `/proc/mounts`.
fn mounted_at(device: &Path) -> Result<Option<PathBuf>, VolumeError> {
    let path = Path::new("/proc/self/mounts");
    let text = std::fs::read_to_string(path).map_err(|source| VolumeError::Io { path: path.into(), source })?;
    let canonical = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(src), Some(target)) = (f.next(), f.next()) else { continue };
        let src = std::fs::canonicalize(src).unwrap_or_else(|_| PathBuf::from(src));
        if src == canonical {
            // /proc/mounts escapes spaces and friends as octal.
            return Ok(Some(PathBuf::from(target.replace("\\040", " "))));
        }
    }
    Ok(None)
}

/// Makes `device` available at `mount_point`: creates an ext4 filesystem only on a blank
/// device, mounts it unless it already is. A device mounted elsewhere is an error (another
/// process owns it).
pub fn ensure_mounted(device: &Path, mount_point: &Path) -> Result<(), VolumeError> {
    if let Some(at) = mounted_at(device)? {
        if at == mount_point {
            return Ok(());
        }
        return Err(VolumeError::Command {
            command: format!("mount {} {}", device.display(), mount_point.display()),
            why: format!("already mounted at {}", at.display()),
        });
    }
    if is_blank(device)? {
        tracing::info!(device = %device.display(), "blank slot volume: creating an ext4 filesystem");
        check(Command::new("mkfs.ext4").args(["-q", "-L", "zkpilot"]).arg(device))?;
    }
    std::fs::create_dir_all(mount_point).map_err(|source| VolumeError::Io { path: mount_point.into(), source })?;
    check(Command::new("mount").args(["-o", "noatime"]).arg(device).arg(mount_point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nvme_by_udev_link_then_sysfs_serial_then_xen_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        assert!(matches!(find_device(r, "vol-0abc", "/dev/sdf"), Err(VolumeError::NoDevice { .. })));

        std::fs::create_dir_all(r.join("dev")).expect("dev");
        std::fs::write(r.join("dev/xvdf"), "").expect("xvdf");
        assert_eq!(find_device(r, "vol-0abc", "/dev/sdf").expect("xen"), r.join("dev/xvdf"));

        for (disk, serial) in [("nvme0n1", "vol0root"), ("nvme1n1", "vol0abc")] {
            std::fs::create_dir_all(r.join("sys/block").join(disk).join("device")).expect("sys");
            std::fs::write(r.join("sys/block").join(disk).join("device/serial"), format!("{serial}   \n"))
                .expect("serial");
        }
        assert_eq!(find_device(r, "vol-0abc", "/dev/sdf").expect("sysfs"), r.join("dev/nvme1n1"));

        std::fs::create_dir_all(r.join("dev/disk/by-id")).expect("by-id");
        let link = r.join("dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc");
        std::fs::write(&link, "").expect("link");
        assert_eq!(find_device(r, "vol-0abc", "/dev/sdf").expect("udev"), link);
    }

    /// Needs root and loop devices; `scripts/test.sh` runs it where `losetup` works and says so
    /// where it does not.
    #[test]
    #[ignore = "needs root and a loop device; run by scripts/test.sh when available"]
    fn loop_volume_is_formatted_once_and_mounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("volume.img");
        std::fs::File::create(&image).and_then(|f| f.set_len(64 << 20)).expect("image");
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&image).output().expect("losetup");
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        let device = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        struct Detach(PathBuf);
        impl Drop for Detach {
            fn drop(&mut self) {
                // Best effort: the test may already have unmounted.
                let _unmounted = Command::new("umount").arg(&self.0).output();
                if let Err(e) = Command::new("losetup").arg("-d").arg(&self.0).status() {
                    eprintln!("losetup -d {}: {e}", self.0.display());
                }
            }
        }
        let _detach = Detach(device.clone());
        let mnt = dir.path().join("slot");

        assert!(is_blank(&device).expect("blkid"));
        ensure_mounted(&device, &mnt).expect("first mount formats");
        std::fs::write(mnt.join("data"), "kept").expect("write");
        ensure_mounted(&device, &mnt).expect("already mounted is fine");
        check(Command::new("umount").arg(&mnt)).expect("umount");

        // A second attach (the replacement instance) must find the data, not a fresh filesystem.
        assert!(!is_blank(&device).expect("blkid"));
        ensure_mounted(&device, &mnt).expect("remount");
        assert_eq!(std::fs::read_to_string(mnt.join("data")).expect("read"), "kept");
        assert!(
            ensure_mounted(&device, &dir.path().join("elsewhere")).is_err(),
            "a device mounted elsewhere is refused"
        );
        check(Command::new("umount").arg(&mnt)).expect("umount");
    }
}
