//! The S3 records: plain and conditional writes on one bucket and prefix.
//!
//! S3's conditional writes make the bucket a small coordination store: `If-None-Match: *`
//! creates an object only if it is absent (claims, the marker), `If-Match: <etag>` replaces it
//! only if nobody else did meanwhile (the lease, slot takeovers). A lost race answers 412
//! Precondition Failed, or 409 ConditionalRequestConflict when S3 sees two writes at once
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html>).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use zkpilot_core::model::ServerId;
use zkpilot_core::ports::PortResult;

use crate::{Claim, ClaimCache, err};

/// One bucket and key prefix: everything the S3 helpers need, nothing more.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    s3: aws_sdk_s3::Client,
    name: String,
    prefix: String,
}

/// A conditional write lost (412 Precondition Failed, or 409 when S3 sees two at once).
fn lost_race<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(412 | 409)) || matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict"))
}

impl Bucket {
    pub(crate) fn new(s3: aws_sdk_s3::Client, name: &str, prefix: &str) -> Self {
        Self { s3, name: name.to_string(), prefix: prefix.to_string() }
    }

    /// `s3://<bucket>/<prefix>` for messages.
    pub(crate) fn url(&self) -> String {
        format!("s3://{}/{}", self.name, self.prefix)
    }

    /// The full key of `rest` under the prefix.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Reads an object: `Ok(None)` if absent, with its ETag.
    pub(crate) async fn get(&self, key: &str) -> PortResult<Option<(Vec<u8>, Option<String>)>> {
        match self.s3.get_object().bucket(&self.name).key(key).send().await {
            Ok(out) => {
                let etag = out.e_tag().map(str::to_string);
                let body = out.body.collect().await.map_err(|e| err(format!("read s3 {key}"), e))?;
                Ok(Some((body.into_bytes().to_vec(), etag)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(err(format!("get s3 {key}"), e)),
        }
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> PortResult<Option<(T, Option<String>)>> {
        match self.get(key).await? {
            None => Ok(None),
            Some((bytes, etag)) => {
                let v = serde_json::from_slice(&bytes).map_err(|e| err(format!("parse s3 {key}"), e))?;
                Ok(Some((v, etag)))
            }
        }
    }

    /// Downloads an object to `to`, streamed: a snapshot can be larger than the agent's memory.
    pub(crate) async fn get_file(&self, key: &str, to: &Path) -> PortResult<()> {
        use tokio::io::AsyncWriteExt as _;
        let mut out = self
            .s3
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| err(format!("get s3 {key}"), e))?;
        let mut f = tokio::fs::File::create(to).await.map_err(|e| err(format!("create {}", to.display()), e))?;
        while let Some(chunk) = out.body.try_next().await.map_err(|e| err(format!("read s3 {key}"), e))? {
            f.write_all(&chunk).await.map_err(|e| err(format!("write {}", to.display()), e))?;
        }
        f.sync_all().await.map_err(|e| err(format!("sync {}", to.display()), e))
    }

    /// Unconditional put.
    pub(crate) async fn put(&self, key: &str, body: Vec<u8>) -> PortResult<()> {
        self.s3
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| err(format!("put s3 {key}"), e))?;
        Ok(())
    }

    /// Conditional put: `If-None-Match: *` when `etag` is `None`, else `If-Match: etag`. Returns
    /// false when another writer won.
    pub(crate) async fn put_if(&self, key: &str, body: Vec<u8>, etag: Option<&str>) -> PortResult<bool> {
        let req = self.s3.put_object().bucket(&self.name).key(key).body(ByteStream::from(body));
        let req = match etag {
            None => req.if_none_match("*"),
            Some(tag) => req.if_match(tag),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) => Err(err(format!("conditional put s3 {key}"), e)),
        }
    }

    /// Uploads a file, streamed from disk: a snapshot can be larger than the agent's memory.
    pub(crate) async fn put_file(&self, key: &str, from: &Path) -> PortResult<()> {
        let body = ByteStream::from_path(from).await.map_err(|e| err(format!("read {}", from.display()), e))?;
        self.s3
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| err(format!("put s3 {key}"), e))?;
        Ok(())
    }

    /// Unconditional delete.
    pub(crate) async fn delete(&self, key: &str) -> PortResult<()> {
        self.s3
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| err(format!("delete s3 {key}"), e))?;
        Ok(())
    }

    /// Deletes an object only while it is still version `etag` (`If-Match`; unconditional without
    /// one). A lost race is no error: someone else already replaced or deleted it.
    pub(crate) async fn delete_if(&self, key: &str, etag: Option<&str>) -> PortResult<()> {
        let mut req = self.s3.delete_object().bucket(&self.name).key(key);
        if let Some(tag) = etag {
            req = req.if_match(tag);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if lost_race(&e) => Ok(()),
            Err(e) => Err(err(format!("delete s3 {key}"), e)),
        }
    }

    /// Every key under `prefix`, with its ETag.
    pub(crate) async fn list(&self, prefix: &str) -> PortResult<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| err(format!("list s3 {prefix}"), e))?;
            out.extend(
                page.contents().iter().filter_map(|o| Some((o.key()?.to_string(), o.e_tag().map(str::to_string)))),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The claim records under `dir` (`ids/` or `slots/`), with their ETags.
    pub(crate) async fn records(
        &self,
        dir: &str,
        cache: &Mutex<ClaimCache>,
    ) -> PortResult<BTreeMap<ServerId, (Claim, Option<String>)>> {
        let prefix = self.key(dir);
        let mut out = BTreeMap::new();
        for (key, etag) in self.list(&prefix).await? {
            let Some(n) = key.strip_prefix(&prefix).and_then(|k| k.strip_suffix(".json")).and_then(|k| k.parse().ok())
            else {
                continue;
            };
            // A claim body only changes together with its ETag (created once; a slot claim is
            // rewritten only by a conditional takeover), so each version is fetched once and
            // later passes only list.
            let cached = cache.lock().ok().and_then(|c| c.get(&key).filter(|(t, _)| *t == etag).cloned());
            let claim = match cached {
                Some((_, c)) => Some(c),
                None => {
                    let fetched = self.get_json::<Claim>(&key).await?.map(|(c, _)| c);
                    if let (Some(c), Ok(mut cache)) = (&fetched, cache.lock()) {
                        cache.insert(key.clone(), (etag.clone(), c.clone()));
                    }
                    fetched
                }
            };
            if let Some(c) = claim {
                out.insert(ServerId(n), (c, etag));
            }
        }
        Ok(out)
    }
}
