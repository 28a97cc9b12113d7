//! Id claims and the cluster marker as CloudWatch Logs streams: the original zookeeper-on-aws
//! design. `CreateLogStream` fails with `ResourceAlreadyExistsException` when the stream exists,
//! which makes it a create-exclusive primitive: stream `id-<n>` is server id `n`'s claim, its
//! first event names the holder; stream `cluster-marker`'s first event is the marker.
//!
//! Logs has no compare-and-swap, so the membership-change lease stays in S3 (`If-Match` on the
//! ETag) even with this store.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::ports::{ClusterMarker, PortError, PortResult};

use zkpilot_core::ports::epoch_ms;

use crate::{AwsBackend, Claim, err};

const MARKER_STREAM: &str = "cluster-marker";
/// A claimer writes its event right after creating the stream; readers wait this long for it.
const FIRST_EVENT_WAIT: Duration = Duration::from_secs(10);

/// Where claims are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "store", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClaimStore {
    /// S3 conditional writes in the state bucket (default).
    #[default]
    S3,
    /// CloudWatch Logs streams in `log_group` (which must exist).
    Logs {
        /// Log group name.
        log_group: String,
    },
}

/// One log group's streams as create-exclusive records: everything the stream helpers need.
#[derive(Debug, Clone, Copy)]
struct Streams<'a> {
    logs: &'a aws_sdk_cloudwatchlogs::Client,
    group: &'a str,
}

impl Streams<'_> {
    /// Creates `stream`; false if it already existed.
    async fn create(&self, stream: &str) -> PortResult<bool> {
        let group = self.group;
        match self.logs.create_log_stream().log_group_name(group).log_stream_name(stream).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(false),
            Err(e) => Err(err(format!("create log stream {group}/{stream}"), e)),
        }
    }

    async fn put_first_event(&self, stream: &str, body: String) -> PortResult<()> {
        let group = self.group;
        let event = InputLogEvent::builder()
            .timestamp(i64::try_from(epoch_ms()).unwrap_or(i64::MAX))
            .message(body)
            .build()
            .map_err(|e| err("build log event", e))?;
        self.logs
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .log_events(event)
            .send()
            .await
            .map_err(|e| err(format!("put log event {group}/{stream}"), e))?;
        Ok(())
    }

    /// The stream's first event, if the stream exists and has one.
    async fn first_event(&self, stream: &str) -> PortResult<Option<String>> {
        let group = self.group;
        match self
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .limit(1)
            .send()
            .await
        {
            Ok(out) => Ok(out.events().first().and_then(|e| e.message()).map(str::to_string)),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(err(format!("get log events {group}/{stream}"), e)),
        }
    }

    /// The first event of a stream that exists, waiting briefly for a claimer that has created
    /// the stream but not yet written it.
    async fn first_event_of_existing(&self, stream: &str) -> PortResult<String> {
        let deadline = tokio::time::Instant::now() + FIRST_EVENT_WAIT;
        loop {
            if let Some(e) = self.first_event(stream).await? {
                return Ok(e);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(PortError::msg(
                    "backend",
                    format!("log stream {stream} exists but its claimer never wrote it"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every stream whose name starts with `prefix`, with its creation time.
    async fn named(&self, prefix: &str) -> PortResult<Vec<(String, Option<String>)>> {
        let group = self.group;
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .logs
                .describe_log_streams()
                .log_group_name(group)
                .log_stream_name_prefix(prefix)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| err(format!("describe log streams {group}"), e))?;
            names.extend(page.log_streams().iter().filter_map(|s| {
                s.log_stream_name().map(|n| (n.to_string(), s.creation_time().map(|t| t.to_string())))
            }));
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    /// True if `stream` exists.
    async fn exists(&self, stream: &str) -> PortResult<bool> {
        let group = self.group;
        Ok(self
            .logs
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(stream)
            .send()
            .await
            .map_err(|e| err(format!("describe log streams {group}"), e))?
            .log_streams()
            .iter()
            .any(|s| s.log_stream_name() == Some(stream)))
    }

    /// Deletes `stream`; one already gone is no error.
    async fn delete(&self, stream: &str) -> PortResult<()> {
        let group = self.group;
        match self.logs.delete_log_stream().log_group_name(group).log_stream_name(stream).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(err(format!("delete log stream {group}/{stream}"), e)),
        }
    }
}

impl AwsBackend {
    fn streams(&self) -> PortResult<Streams<'_>> {
        match &self.settings.claims {
            ClaimStore::Logs { log_group } => Ok(Streams { logs: &self.logs, group: log_group }),
            ClaimStore::S3 => Err(PortError::msg("backend", "claims are not in CloudWatch Logs")),
        }
    }

    /// Id claims from the `id-<n>` streams.
    pub(crate) async fn logs_claims(&self) -> PortResult<BTreeMap<ServerId, Claim>> {
        let streams = self.streams()?;
        let mut out = BTreeMap::new();
        for (name, created) in streams.named("id-").await? {
            let Some(n) = name.strip_prefix("id-").and_then(|n| n.parse().ok()) else { continue };
            // A claim stream is written once; one re-created after a release has a new creation
            // time, which is what the cached body is checked against.
            let cached = self
                .claim_cache
                .lock()
                .ok()
                .and_then(|c| c.get(&name).filter(|(t, _)| *t == created).map(|(_, c)| c.clone()));
            let claim = match cached {
                Some(c) => c,
                None => {
                    let body = streams.first_event_of_existing(&name).await?;
                    let c: Claim =
                        serde_json::from_str(&body).map_err(|e| err(format!("parse log stream {name}"), e))?;
                    if let Ok(mut cache) = self.claim_cache.lock() {
                        cache.insert(name.clone(), (created, c.clone()));
                    }
                    c
                }
            };
            out.insert(ServerId(n), claim);
        }
        Ok(out)
    }

    pub(crate) async fn logs_claim_id(&self, instance: &InstanceId, address: &str) -> PortResult<ServerId> {
        let streams = self.streams()?;
        let claims = self.logs_claims().await?;
        if let Some((id, _)) = claims.iter().find(|(_, c)| &c.instance == instance) {
            return Ok(*id);
        }
        let body = serde_json::to_string(&Claim { instance: instance.clone(), address: address.to_string() })
            .map_err(|e| err("encode claim", e))?;
        for n in 1..=ServerId::MAX {
            if claims.contains_key(&ServerId(n)) {
                continue;
            }
            if streams.create(&format!("id-{n}")).await? {
                streams.put_first_event(&format!("id-{n}"), body).await?;
                return Ok(ServerId(n));
            }
        }
        Err(PortError::msg("backend", format!("all server ids are claimed in log group {}", streams.group)))
    }

    pub(crate) async fn logs_release(&self, id: ServerId, instance: &InstanceId) -> PortResult<()> {
        let streams = self.streams()?;
        let name = format!("id-{id}");
        let Some(body) = streams.first_event(&name).await? else { return Ok(()) };
        let claim: Claim = serde_json::from_str(&body).map_err(|e| err(format!("parse log stream {name}"), e))?;
        if &claim.instance != instance {
            return Ok(());
        }
        streams.delete(&name).await?;
        if let Ok(mut cache) = self.claim_cache.lock() {
            cache.remove(&name);
        }
        Ok(())
    }

    pub(crate) async fn logs_marker(&self) -> PortResult<Option<ClusterMarker>> {
        let streams = self.streams()?;
        if !streams.exists(MARKER_STREAM).await? {
            return Ok(None);
        }
        let body = streams.first_event_of_existing(MARKER_STREAM).await?;
        serde_json::from_str(&body).map(Some).map_err(|e| err("parse cluster marker stream", e))
    }

    pub(crate) async fn logs_create_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        let streams = self.streams()?;
        if streams.create(MARKER_STREAM).await? {
            let body = serde_json::to_string(marker).map_err(|e| err("encode marker", e))?;
            streams.put_first_event(MARKER_STREAM, body).await?;
        }
        self.logs_marker()
            .await?
            .ok_or_else(|| PortError::msg("backend", "cluster marker stream vanished after creation"))
    }
}
