//! The AsyncAPI document of partner events, served by the gateway: AsyncAPI 3.0.0, one
//! channel for every event subject written in `proto/eva/referrals/v1/events.proto`
//! (parsed here, so the document and the contract cannot drift apart), no channel for
//! anything else, and every `$ref` resolving inside the document.

use anyhow::{Context, Result, bail, ensure};
use eva_tests::sandbox::{Backend, Sandbox};
use serde_json::Value;

const EVENTS_PROTO: &str = include_str!("../../../proto/eva/referrals/v1/events.proto");

/// One event of `events.proto`: its `ce-type` (the `eva.referrals…` subject) and the
/// event name partners get it under (`eva.partners.<id>.referrals.<event>`).
#[derive(Debug, PartialEq, Eq)]
struct ProtoEvent {
    ce_type: String,
    partner_event: String,
}

fn subject_chars(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == '.' || *c == '<' || *c == '>')
        .collect::<String>()
        .trim_end_matches('.')
        .to_owned()
}

/// Reads the `// subject:` and `// subjects:` comment blocks of `events.proto`.
fn proto_events(proto: &str) -> Result<Vec<ProtoEvent>> {
    let lines: Vec<&str> = proto.lines().map(str::trim).collect();
    let mut events = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let starts = lines[i].starts_with("// subject:") || lines[i].starts_with("// subjects:");
        if !starts {
            i += 1;
            continue;
        }
        let mut block = String::new();
        while i < lines.len() && lines[i].starts_with("//") && lines[i] != "//" {
            block.push_str(lines[i].trim_start_matches("//"));
            block.push(' ');
            i += 1;
        }
        let (own, partners) = block
            .split_once("(partners:")
            .with_context(|| format!("no `(partners:` in {block:?}"))?;
        let first_at = own
            .find("eva.referrals.")
            .with_context(|| format!("no subject in {block:?}"))?;
        let first = subject_chars(&own[first_at..]);
        let (base, _) = first
            .rsplit_once('.')
            .with_context(|| format!("bad subject {first}"))?;
        let mut subjects = vec![first.clone()];
        for token in own[first_at + first.len()..].split([' ', ',']) {
            if let Some(rest) = token.strip_prefix('.') {
                let name = subject_chars(rest);
                if !name.is_empty() && !name.contains('.') {
                    subjects.push(format!("{base}.{name}"));
                }
            }
        }
        let partner_at = partners
            .find("eva.partners.<partner_structure_id>.referrals.")
            .with_context(|| format!("no partner subject in {block:?}"))?;
        let partner_name = subject_chars(
            &partners[partner_at + "eva.partners.<partner_structure_id>.referrals.".len()..],
        );
        for subject in subjects {
            let partner_event = if partner_name == "<event>" {
                subject.rsplit('.').next().unwrap_or_default().to_owned()
            } else {
                ensure!(
                    !block.starts_with(" subjects:"),
                    "one partner name for several subjects in {block:?}"
                );
                partner_name.clone()
            };
            events.push(ProtoEvent {
                ce_type: subject,
                partner_event,
            });
        }
    }
    Ok(events)
}

/// Resolves a local `$ref` (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Result<&'a Value> {
    let pointer = reference
        .strip_prefix('#')
        .with_context(|| format!("$ref {reference} is not local"))?;
    doc.pointer(pointer)
        .with_context(|| format!("$ref {reference} resolves to nothing"))
}

/// Follows `$ref` until a value that is not a reference.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> Result<&'a Value> {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => value = resolve(doc, r)?,
            None => return Ok(value),
        }
    }
    bail!("$ref cycle")
}

fn every_ref(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => every_ref(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| every_ref(v, out)),
        _ => {}
    }
}

/// The `ce-type` a message's headers pin.
fn pinned_ce_type(doc: &Value, message: &Value) -> Result<String> {
    let headers = deref(
        doc,
        message.get("headers").context("message without headers")?,
    )?;
    let parts = match headers.get("allOf").and_then(Value::as_array) {
        Some(parts) => parts.iter().collect::<Vec<_>>(),
        None => vec![headers],
    };
    for part in parts {
        let part = deref(doc, part)?;
        if let Some(c) = part
            .pointer("/properties/ce-type/const")
            .and_then(Value::as_str)
        {
            return Ok(c.to_owned());
        }
    }
    bail!("no ce-type pinned in {headers}")
}

#[test]
fn the_proto_comments_are_read() -> Result<()> {
    let events = proto_events(EVENTS_PROTO)?;
    for (ce_type, partner_event) in [
        ("eva.referrals.referral.sent", "sent"),
        ("eva.referrals.referral.under_review", "under_review"),
        ("eva.referrals.referral.declined", "declined"),
        ("eva.referrals.referral.reminded", "reminded"),
        ("eva.referrals.message.posted", "message_posted"),
    ] {
        let wanted = ProtoEvent {
            ce_type: ce_type.into(),
            partner_event: partner_event.into(),
        };
        ensure!(events.contains(&wanted), "{wanted:?} not in {events:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_gateway_serves_the_partner_events_document() -> Result<()> {
    let sb = Sandbox::start(Backend::Sqlite).await?;
    // Public, like the OpenAPI document: no token.
    let response = sb.http.get(sb.url("/api/v1/asyncapi.json")).send().await?;
    ensure!(response.status().as_u16() == 200, "{}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let doc: Value = response.json().await?;
    sb.stop().await?;

    ensure!(doc["asyncapi"] == "3.0.0", "asyncapi: {}", doc["asyncapi"]);
    ensure!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every $ref resolves inside the document.
    let mut refs = Vec::new();
    every_ref(&doc, &mut refs);
    ensure!(!refs.is_empty());
    for r in &refs {
        resolve(&doc, r)?;
    }

    // One channel per event of events.proto, pinning its ce-type, and no other.
    let channels = doc["channels"].as_object().context("no channels")?;
    let events = proto_events(EVENTS_PROTO)?;
    ensure!(
        events.len() == channels.len(),
        "{} events, {} channels",
        events.len(),
        channels.len()
    );
    for event in &events {
        let address = format!(
            "eva.partners.{{partnerId}}.referrals.{}",
            event.partner_event
        );
        let (name, channel) = channels
            .iter()
            .find(|(_, c)| c["address"] == address.as_str())
            .with_context(|| format!("no channel for {address} ({})", event.ce_type))?;
        ensure!(
            channel.pointer("/parameters/partnerId").is_some(),
            "{name}: no partnerId parameter"
        );
        let messages = channel["messages"].as_object().context("no messages")?;
        ensure!(!messages.is_empty(), "{name}: no message");
        for message in messages.values() {
            let message = deref(&doc, message)?;
            let ce_type = pinned_ce_type(&doc, message)?;
            ensure!(
                ce_type == event.ce_type,
                "{name}: ce-type {ce_type}, expected {}",
                event.ce_type
            );
            let payload = deref(&doc, message.get("payload").context("no payload")?)?;
            ensure!(payload["type"] == "object", "{name}: payload {payload}");
        }
    }

    // Each channel is received by one operation.
    let operations = doc["operations"].as_object().context("no operations")?;
    for name in channels.keys() {
        let reference = format!("#/channels/{name}");
        ensure!(
            operations
                .values()
                .any(|o| o["action"] == "receive" && o["channel"]["$ref"] == reference.as_str()),
            "no receive operation for {name}"
        );
    }

    // The webhook alternative is explained.
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    ensure!(description.contains("eva-signature") && description.contains("HMAC-SHA256"));
    Ok(())
}
