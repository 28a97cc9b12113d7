//! moto (the AWS emulator, PyPI `moto[server]`) on 127.0.0.1, one server per test so tests stay
//! independent, and an Auto Scaling group with its bucket inside it.
//!
//! moto is found at `$ZKPILOT_MOTO_SERVER`, else `$HOME/.cache/zkpilot/venv/bin/moto_server`
//! (what `scripts/install-deps.sh` installs). A missing moto fails the test with that message: an
//! AWS test never silently passes without its emulator.
//!
//! moto runs under `moto_serial.py` (with the Python beside `moto_server`), which answers one
//! request at a time: moto's own threaded server checks a conditional S3 put and then writes, so
//! two racing claims could both win, where real S3 lets exactly one (the slot and lease tests
//! race eight claimants and caught it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::types::RequestLaunchTemplateData;

/// Region every fixture uses.
pub const REGION: &str = "us-east-1";
/// Zones of the fixture's subnets.
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// Credentials moto accepts; exported to agent processes by [`Moto::env`].
pub const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", REGION),
    // The SDK must not wait for an instance metadata service that is not there.
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

const SERIAL_LAUNCHER: &str = include_str!("moto_serial.py");

/// A moto server on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

fn moto_server() -> PathBuf {
    std::env::var_os("ZKPILOT_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/zkpilot/venv/bin/moto_server")
    })
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Self {
        let exe = moto_server();
        assert!(exe.is_file(), "moto_server not found at {}; run scripts/install-deps.sh", exe.display());
        let python = exe.with_file_name("python");
        assert!(python.is_file(), "no python beside {} (moto's venv)", exe.display());
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(&python)
            .args(["-c", SERIAL_LAUNCHER, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto with {}: {e}", python.display()));
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// SDK config pointed at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "moto"))
            // A 2-core machine running several emulators and JVMs answers slowly at times.
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(8))
            .load()
            .await
    }

    /// Environment for a process that talks to this server through the standard chain.
    pub fn env(&self) -> Vec<(String, String)> {
        ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _waited = self.child.wait();
    }
}

/// An Auto Scaling group over three zones, plus a bucket, inside moto.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Bucket name.
    pub bucket: String,
}

/// Creates a VPC with a subnet per zone, a launch template, the group (desired `n`) and a bucket.
/// The addresses are moto's bookkeeping only: nothing is ever sent to them.
pub async fn create_group(conf: &SdkConfig, name: &str, n: i32) -> Group {
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let vpc = ec2.create_vpc().cidr_block("10.77.0.0/16").send().await.expect("vpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ZONES.iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .availability_zone(*zone)
            .cidr_block(format!("10.77.{i}.0/24"))
            .send()
            .await
            .expect("subnet");
        subnets.push(s.subnet().and_then(|s| s.subnet_id()).expect("subnet id").to_string());
    }
    let lt = format!("{name}-lt");
    ec2.create_launch_template()
        .launch_template_name(&lt)
        .launch_template_data(
            RequestLaunchTemplateData::builder().image_id("ami-12c6146b").instance_type("t3.micro".into()).build(),
        )
        .send()
        .await
        .expect("launch template");
    let asg = aws_sdk_autoscaling::Client::new(conf);
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder().launch_template_name(&lt).build(),
        )
        .min_size(0)
        .max_size(10)
        .desired_capacity(n)
        .vpc_zone_identifier(subnets.join(","))
        .send()
        .await
        .expect("auto scaling group");
    let bucket = format!("{name}-state");
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(conf).force_path_style(true).build())
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    Group { name: name.to_string(), bucket }
}

/// Sets the group's desired capacity (moto launches or terminates at once).
pub async fn set_desired(conf: &SdkConfig, group: &str, n: i32) {
    aws_sdk_autoscaling::Client::new(conf)
        .set_desired_capacity()
        .auto_scaling_group_name(group)
        .desired_capacity(n)
        .send()
        .await
        .expect("set desired capacity");
}

/// (instance id, zone, protected) of the group's instances.
pub async fn group_instances(conf: &SdkConfig, group: &str) -> Vec<(String, String, bool)> {
    let out = aws_sdk_autoscaling::Client::new(conf)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .expect("describe group");
    out.auto_scaling_groups()
        .first()
        .map(|g| {
            g.instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or_default().to_string(),
                        i.availability_zone().unwrap_or_default().to_string(),
                        i.protected_from_scale_in().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Creates slot `n`'s network interface (in the group's subnet of `zone`) and volume, tagged the
/// way the template tags them. Returns (interface id, its address, volume id).
pub async fn create_slot(conf: &SdkConfig, cluster: &str, n: u32, zone: &str) -> (String, String, String) {
    use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let tags = |rt: ResourceType| {
        TagSpecification::builder()
            .resource_type(rt)
            .tags(Tag::builder().key("zkpilot:cluster").value(cluster).build())
            .tags(Tag::builder().key("zkpilot:slot").value(n.to_string()).build())
            .build()
    };
    let subnets = ec2
        .describe_subnets()
        .filters(Filter::builder().name("availability-zone").values(zone).build())
        .filters(
            Filter::builder()
                .name("cidr-block")
                .values(format!("10.77.{}.0/24", ZONES.iter().position(|z| *z == zone).expect("zone")))
                .build(),
        )
        .send()
        .await
        .expect("subnets");
    let subnet = subnets.subnets().first().and_then(|s| s.subnet_id()).expect("subnet of zone").to_string();
    let eni = ec2
        .create_network_interface()
        .subnet_id(subnet)
        .tag_specifications(tags(ResourceType::NetworkInterface))
        .send()
        .await
        .expect("network interface");
    let eni = eni.network_interface().expect("eni");
    let vol = ec2
        .create_volume()
        .availability_zone(zone)
        .size(1)
        .tag_specifications(tags(ResourceType::Volume))
        .send()
        .await
        .expect("volume");
    (
        eni.network_interface_id().expect("eni id").to_string(),
        eni.private_ip_address().expect("eni address").to_string(),
        vol.volume_id().expect("volume id").to_string(),
    )
}
