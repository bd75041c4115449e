//! The caller's live notifications (`GET /api/v1/notifications/stream`,
//! server-sent events) read by tests.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::Value;

use crate::sandbox::Sandbox;

/// Opens the caller's notification stream and waits for its `ready` event.
pub async fn open_stream(sb: &Sandbox, token: &str) -> Result<reqwest::Response> {
    let mut resp = sb
        .http
        .get(sb.url("/api/v1/notifications/stream"))
        .bearer_auth(token)
        .send()
        .await?;
    if resp.status() != StatusCode::OK {
        bail!("stream: {}", resp.status());
    }
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let mut seen = String::new();
    while !seen.contains("event: ready") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .context("no ready event")??
            .context("stream closed")?;
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    Ok(resp)
}

/// Reads the stream until a `notification` event arrives; returns its data.
pub async fn next_notification(resp: &mut reqwest::Response) -> Result<Value> {
    let mut buf = String::new();
    loop {
        if let Some(start) = buf.find("event: notification") {
            let rest = &buf[start..];
            if let Some(end) = rest.find("\n\n") {
                let block = &rest[..end];
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .context("no data line")?;
                return Ok(serde_json::from_str(data)?);
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(15), resp.chunk())
            .await
            .context("no notification within 15 s")??
            .context("stream closed")?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}
