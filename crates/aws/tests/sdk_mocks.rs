//! Calls moto 5.2.5 cannot serve, verified with the SDK's own mock clients (aws-smithy-mocks):
//! `CompleteLifecycleAction` (moto answers HTTP 500 NotImplementedError), CloudWatch
//! `PutMetricData` (the current SDK speaks CloudWatch's RPCv2-CBOR protocol, which moto answers
//! with 404), and IMDSv2 (moto's token answer lacks the TTL header the SDK requires; the SDK's
//! replay HTTP client stands in). These check the requests zkpilot sends, not AWS's behaviour.

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_smithy_mocks::{mock, mock_client};
use zkpilot_aws::{AwsBackend, AwsSettings, Clients};
use zkpilot_core::model::{InstanceId, LifecycleHook};
use zkpilot_core::ports::{Group, Publish};

fn unused_clients() -> Clients {
    // Never called in these tests; built without credentials or network.
    let region = aws_sdk_ec2::config::Region::new("us-east-1");
    let conf =
        aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).region(region).build();
    Clients {
        asg: aws_sdk_autoscaling::Client::new(&conf),
        ec2: aws_sdk_ec2::Client::new(&conf),
        s3: aws_sdk_s3::Client::new(&conf),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&conf),
        route53: aws_sdk_route53::Client::new(&conf),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
    }
}

fn settings() -> AwsSettings {
    AwsSettings {
        group: "zk1-zk".into(),
        bucket: "b".into(),
        prefix: "zkpilot/".into(),
        region: None,
        endpoint_url: None,
        launch_hook: "zkpilot-launch".into(),
        terminate_hook: "zkpilot-terminate".into(),
        claims: Default::default(),
        hosted_zone_id: None,
        slots: None,
    }
}

#[tokio::test]
async fn completes_each_hook_by_name_with_continue() {
    for (hook, name) in
        [(LifecycleHook::Launching, "zkpilot-launch"), (LifecycleHook::Terminating, "zkpilot-terminate")]
    {
        let rule = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
            .match_requests(move |r| {
                r.auto_scaling_group_name() == Some("zk1-zk")
                    && r.lifecycle_hook_name() == Some(name)
                    && r.instance_id() == Some("i-0abc")
                    && r.lifecycle_action_result() == Some("CONTINUE")
            })
            .then_output(|| CompleteLifecycleActionOutput::builder().build());
        let asg = mock_client!(aws_sdk_autoscaling, [&rule]);
        let b = AwsBackend::from_clients(settings(), Clients { asg, ..unused_clients() });
        b.complete_lifecycle(&InstanceId("i-0abc".into()), hook).await.expect("completed");
        assert_eq!(rule.num_calls(), 1, "{hook:?}");
    }
}

#[tokio::test]
async fn heartbeats_name_the_hook() {
    use aws_sdk_autoscaling::operation::record_lifecycle_action_heartbeat::RecordLifecycleActionHeartbeatOutput;
    let rule = mock!(aws_sdk_autoscaling::Client::record_lifecycle_action_heartbeat)
        .match_requests(|r| {
            r.auto_scaling_group_name() == Some("zk1-zk")
                && r.lifecycle_hook_name() == Some("zkpilot-terminate")
                && r.instance_id() == Some("i-0abc")
        })
        .then_output(|| RecordLifecycleActionHeartbeatOutput::builder().build());
    let asg = mock_client!(aws_sdk_autoscaling, [&rule]);
    let b = AwsBackend::from_clients(settings(), Clients { asg, ..unused_clients() });
    b.lifecycle_heartbeat(&InstanceId("i-0abc".into()), LifecycleHook::Terminating).await.expect("heartbeat");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn connection_count_is_put_per_group_and_per_instance() {
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    let rule = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .match_requests(|r| {
            let data = r.metric_data();
            let dims = |i: usize| -> Vec<(String, String)> {
                data[i]
                    .dimensions()
                    .iter()
                    .map(|d| (d.name().unwrap_or_default().into(), d.value().unwrap_or_default().into()))
                    .collect()
            };
            r.namespace() == Some("zkpilot")
                && data.len() == 2
                && data.iter().all(|d| d.metric_name() == Some("ClientConnections") && d.value() == Some(17.0))
                && dims(0) == vec![("AutoScalingGroupName".to_string(), "zk1-zk".to_string())]
                && dims(1).contains(&("InstanceId".to_string(), "i-0abc".to_string()))
        })
        .then_output(|| PutMetricDataOutput::builder().build());
    let cloudwatch = mock_client!(aws_sdk_cloudwatch, [&rule]);
    let b = AwsBackend::from_clients(settings(), Clients { cloudwatch, ..unused_clients() });
    b.publish_connections(&InstanceId("i-0abc".into()), 17).await.expect("published");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn identity_comes_from_imdsv2() {
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;
    let base = "http://169.254.169.254";
    let token = ReplayEvent::new(
        http::Request::builder()
            .method("PUT")
            .uri(format!("{base}/latest/api/token"))
            .body(SdkBody::empty())
            .expect("req"),
        http::Response::builder()
            .status(200)
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
            .body(SdkBody::from("tok"))
            .expect("resp"),
    );
    let get = |path: &str, value: &str| {
        ReplayEvent::new(
            http::Request::builder()
                .uri(format!("{base}/latest/meta-data/{path}"))
                .header("x-aws-ec2-metadata-token", "tok")
                .body(SdkBody::empty())
                .expect("req"),
            http::Response::builder().status(200).body(SdkBody::from(value.to_string())).expect("resp"),
        )
    };
    let replay = StaticReplayClient::new(vec![
        token,
        get("instance-id", "i-0abc"),
        get("placement/availability-zone", "eu-west-1b"),
        get("local-ipv4", "10.0.2.7"),
    ]);
    let conf = aws_config::provider_config::ProviderConfig::without_region().with_http_client(replay.clone());
    let imds = aws_config::imds::Client::builder().configure(&conf).build();
    let got = zkpilot_aws::instance_identity_with(imds).await.expect("identity");
    assert_eq!(got, ("i-0abc".into(), "eu-west-1b".into(), "10.0.2.7".into()));
    replay.assert_requests_match(&[]);
}
