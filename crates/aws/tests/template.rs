//! The CloudFormation template lints clean with cfn-lint and deploys in moto.

use std::path::PathBuf;

use aws_sdk_cloudformation::types::Parameter;
use zkpilot_aws::template::{Identity, TemplateOptions, render};
use zkpilot_testkit::Moto;

fn cfn_lint() -> PathBuf {
    let p = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/zkpilot/venv/bin/cfn-lint");
    assert!(p.is_file(), "cfn-lint not found at {}; run scripts/install-deps.sh", p.display());
    p
}

#[test]
fn template_lints_clean_in_both_identity_modes() {
    for identity in [Identity::Elastic, Identity::Slot { slots: 5 }] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zkpilot.json");
        std::fs::write(&path, serde_json::to_string_pretty(&render(&TemplateOptions { identity })).expect("json"))
            .expect("write");
        let out = std::process::Command::new(cfn_lint()).arg(&path).output().expect("run cfn-lint");
        assert!(
            out.status.success(),
            "{identity:?}: cfn-lint exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stack_in_moto_creates_the_group() {
    let moto = Moto::start();
    let conf = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let vpc = ec2.create_vpc().cidr_block("10.78.0.0/16").send().await.expect("vpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_string();
    let mut params = vec![
        ("VpcId", vpc_id.clone()),
        ("ImageId", "ami-12c6146b".to_string()),
        ("ClusterSize", "3".to_string()),
        ("ZkpilotBinaryS3Uri", "s3://releases/zkpilot".to_string()),
        ("ZkpilotBinaryBucket", "releases".to_string()),
    ];
    for (i, zone) in zkpilot_testkit::ZONES.iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .availability_zone(*zone)
            .cidr_block(format!("10.78.{i}.0/24"))
            .send()
            .await
            .expect("subnet");
        params.push((["Subnet1", "Subnet2", "Subnet3"][i], s.subnet().and_then(|s| s.subnet_id()).expect("id").into()));
    }
    let cfn = aws_sdk_cloudformation::Client::new(&conf);
    let body = serde_json::to_string(&render(&TemplateOptions { identity: Identity::Elastic })).expect("json");
    cfn.create_stack()
        .stack_name("zkp")
        .template_body(body)
        .set_parameters(Some(
            params.into_iter().map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build()).collect(),
        ))
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .expect("create stack");
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    let groups = asg.describe_auto_scaling_groups().auto_scaling_group_names("zkp-zk").send().await.expect("describe");
    let g = groups.auto_scaling_groups().first().expect("the stack created the group");
    assert_eq!(g.desired_capacity(), Some(3));
    assert_eq!(g.instances().len(), 3, "moto launched the instances");
}
