//! Four-letter words (`srvr`, `mntr`) on the client port and AdminServer JSON commands.
//!
//! The 4lw protocol is "write four bytes, read until EOF", which needs no crate; the AdminServer is
//! plain HTTP/JSON, read with reqwest.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zkpilot_core::observed::{Health, Mode};

/// How long one probe may take; a LOOKING or dead server must not stall a pass.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Sends a four-letter word and returns the raw answer.
pub async fn four_letter_word(address: &str, word: &str) -> std::io::Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(address).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    };
    tokio::time::timeout(PROBE_TIMEOUT, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{word} to {address} timed out")))?
}

/// Interprets a `srvr` answer.
pub fn parse_srvr(text: &str) -> Health {
    if text.contains("not currently serving") {
        return Health { mode: Mode::NotServing, zxid: None, serving_since_ms: None };
    }
    let mut mode = None;
    let mut zxid = None;
    for line in text.lines() {
        if let Some(m) = line.strip_prefix("Mode:") {
            mode = match m.trim() {
                "leader" => Some(Mode::Leader),
                "follower" => Some(Mode::Follower),
                "observer" => Some(Mode::Observer),
                _ => Some(Mode::NotServing),
            };
        } else if let Some(z) = line.strip_prefix("Zxid:") {
            zxid = u64::from_str_radix(z.trim().trim_start_matches("0x"), 16).ok();
        }
    }
    Health { mode: mode.unwrap_or(Mode::NotServing), zxid, serving_since_ms: None }
}

/// The release number in a `srvr` answer (`Zookeeper version: 3.9.5-<git hash>, built on …`).
pub fn parse_version(text: &str) -> Option<String> {
    let v = text.lines().find_map(|l| l.strip_prefix("Zookeeper version:"))?.trim();
    let v = v.split([',', '-', ' ']).next()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The release a server runs, from its `srvr` (answered by a server that is not serving too).
pub async fn version(address: &str) -> Option<String> {
    four_letter_word(address, "srvr").await.ok().as_deref().and_then(parse_version)
}

/// `srvr` on a client address.
pub async fn srvr(address: &str) -> Health {
    match four_letter_word(address, "srvr").await {
        Ok(text) => parse_srvr(&text),
        Err(_) => Health::UNREACHABLE,
    }
}

/// `mntr` as a key → value map (keys without the `zk_` prefix).
pub async fn mntr(address: &str) -> std::io::Result<BTreeMap<String, String>> {
    let text = four_letter_word(address, "mntr").await?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim_start_matches("zk_").to_string(), v.trim().to_string()))
        .collect())
}

/// An AdminServer command that got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The HTTP client could not be built (once per process; e.g. no TLS backend).
    #[error("AdminServer client")]
    Client(#[source] std::sync::Arc<reqwest::Error>),
    /// No answer, or not JSON.
    #[error("{url}")]
    Request {
        /// The command's URL.
        url: String,
        /// Underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// ZooKeeper answered with its `error` field set (e.g. "not currently serving requests").
    #[error("{url}: {why}")]
    Refused {
        /// The command's URL.
        url: String,
        /// ZooKeeper's `error` text.
        why: String,
    },
}

/// One AdminServer command (`http://host:port/commands/<name>`). ZooKeeper answers HTTP 200 with
/// an `error` field when it is not serving, so that field is checked, not the status.
pub async fn admin_command(host: &str, port: u16, command: &str) -> Result<serde_json::Value, AdminError> {
    type Built = Result<reqwest::Client, std::sync::Arc<reqwest::Error>>;
    static CLIENT: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    let client = CLIENT
        .get_or_init(|| reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().map_err(std::sync::Arc::new))
        .as_ref()
        .map_err(|e| AdminError::Client(e.clone()))?;
    let url = format!("http://{host}:{port}/commands/{command}");
    let answer = async { client.get(&url).send().await?.json::<serde_json::Value>().await }.await;
    let v = answer.map_err(|source| AdminError::Request { url: url.clone(), source })?;
    match v.get("error") {
        Some(serde_json::Value::String(why)) => Err(AdminError::Refused { url, why: why.clone() }),
        _ => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_answers() {
        let text = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x100000003\nMode: follower\nNode count: 5\n";
        let h = parse_srvr(text);
        assert_eq!((h.mode, h.zxid), (Mode::Follower, Some(0x1_0000_0003)));
        assert_eq!(parse_srvr("This ZooKeeper instance is not currently serving requests\n").mode, Mode::NotServing);
        assert_eq!(parse_version(text).as_deref(), Some("3.8.0"));
        let v395 = "Zookeeper version: 3.9.5-9b7f2c4e1d0a2b3c, built on 2026-02-27 10:11 UTC\nMode: leader\n";
        assert_eq!(parse_version(v395).as_deref(), Some("3.9.5"));
        assert_eq!(parse_version("This ZooKeeper instance is not currently serving requests\n"), None);
    }
}
