//! The JetStream side: durable consumers and their ack floors, streams
//! dumped to JSON lines and published back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{ErrorCode, stream};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{BackupError, DurableEntry, StreamEntry, io};
use crate::bus::{Bus, StreamSpec, streams as specs};
use crate::outbox::OUTBOX_SEQ_HEADER;

/// A stream's message as one line of `streams/<STREAM>.jsonl`.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    subject: String,
    headers: BTreeMap<String, Vec<String>>,
    payload: String,
}

/// Publishes awaiting their ack at once during a restore.
const IN_FLIGHT: usize = 256;
/// Longest wait for the next message of a dump.
const NEXT_WAIT: Duration = Duration::from_secs(30);

fn bus_err(stream: &str) -> impl Fn(String) -> BackupError + '_ {
    move |reason| BackupError::Bus {
        stream: stream.to_owned(),
        reason,
    }
}

/// The stream, `None` when it does not exist.
async fn find(bus: &Bus, name: &str) -> Result<Option<stream::Stream>, BackupError> {
    match bus.jetstream().get_stream(name).await {
        Ok(s) => Ok(Some(s)),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Ok(None)
            }
            _ => Err(bus_err(name)(e.to_string())),
        },
    }
}

/// Every durable consumer of every EVA stream, with its ack floor.
pub(super) async fn durables(bus: &Bus) -> Result<Vec<DurableEntry>, BackupError> {
    let mut all = Vec::new();
    for spec in specs::ALL {
        let Some(stream) = find(bus, spec.name).await? else {
            continue;
        };
        let infos: Vec<_> = stream
            .consumers()
            .try_collect()
            .await
            .map_err(|e| bus_err(spec.name)(e.to_string()))?;
        for info in infos {
            let c = info.config;
            let Some(name) = c.durable_name else { continue };
            let mut filter_subjects = c.filter_subjects;
            if !c.filter_subject.is_empty() {
                filter_subjects.push(c.filter_subject);
            }
            all.push(DurableEntry {
                stream: spec.name.to_owned(),
                name,
                filter_subjects,
                ack_wait_ms: c.ack_wait.as_millis() as u64,
                max_deliver: c.max_deliver,
                max_ack_pending: c.max_ack_pending,
                ack_floor: info.ack_floor.stream_sequence,
            });
        }
    }
    Ok(all)
}

fn header(h: Option<&HeaderMap>, name: &str) -> Option<String> {
    h?.get(name).map(|v| v.as_str().to_owned())
}

/// Writes the stream's messages up to its current last sequence to `file`,
/// leaving out those above their service's outbox high-water mark (keyed
/// by `ce-source`); answers the entry and the ce-ids left out.
pub(super) async fn dump(
    bus: &Bus,
    spec: &StreamSpec,
    high_water: &HashMap<String, i64>,
    file: &str,
    dir: &Path,
) -> Result<(StreamEntry, Vec<String>), BackupError> {
    let err = bus_err(spec.name);
    let path = dir.join(file);
    let mut out = BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
    let mut entry = StreamEntry {
        name: spec.name.to_owned(),
        file: file.to_owned(),
        sha256: String::new(),
        messages: 0,
        first_seq: 0,
        last_seq: 0,
        left_out: 0,
    };
    let mut left_out = Vec::new();
    let found = find(bus, spec.name).await?;
    let last = match &found {
        Some(s) => {
            let info = s.get_info().await.map_err(|e| err(e.to_string()))?;
            if info.state.messages == 0 {
                0
            } else {
                info.state.last_sequence
            }
        }
        None => 0,
    };
    if let (Some(stream), true) = (found, last > 0) {
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut messages = consumer.messages().await.map_err(|e| err(e.to_string()))?;
        loop {
            let next = tokio::time::timeout(NEXT_WAIT, messages.next())
                .await
                .map_err(|_| {
                    err(format!(
                        "aucun message après {} / no message after {}",
                        entry.last_seq, entry.last_seq
                    ))
                })?;
            let Some(m) = next else {
                return Err(err("flux interrompu / stream ended early".into()));
            };
            let m = m.map_err(|e| err(e.to_string()))?;
            let seq = m.info().map_err(|e| err(e.to_string()))?.stream_sequence;
            if seq > last {
                break;
            }
            let h = m.headers.as_ref();
            let after_copy = match (
                header(h, "ce-source").and_then(|s| high_water.get(&s).copied()),
                header(h, OUTBOX_SEQ_HEADER).and_then(|v| v.parse::<i64>().ok()),
            ) {
                (Some(mark), Some(outbox_seq)) => outbox_seq > mark,
                _ => false,
            };
            if after_copy {
                entry.left_out += 1;
                left_out.extend(header(h, "ce-id").or_else(|| header(h, "Nats-Msg-Id")));
            } else {
                let mut headers = BTreeMap::new();
                for (k, vs) in h.into_iter().flat_map(|h| h.iter()) {
                    headers.insert(
                        k.to_string(),
                        vs.iter().map(|v| v.as_str().to_owned()).collect(),
                    );
                }
                let line = Line {
                    seq,
                    subject: m.subject.to_string(),
                    headers,
                    payload: STANDARD.encode(&m.payload),
                };
                serde_json::to_writer(&mut out, &line).map_err(|e| err(e.to_string()))?;
                out.write_all(b"\n").map_err(io(&path))?;
                if entry.messages == 0 {
                    entry.first_seq = seq;
                }
                entry.messages += 1;
                entry.last_seq = seq;
            }
            if seq >= last {
                break;
            }
        }
    }
    out.into_inner()
        .map_err(|e| io(&path)(e.into_error()))?
        .sync_all()
        .map_err(io(&path))?;
    Ok((entry, left_out))
}

/// Refuses a bus whose EVA streams already hold messages.
pub(super) async fn check_empty(bus: &Bus, entries: &[StreamEntry]) -> Result<(), BackupError> {
    for e in entries {
        if let Some(s) = find(bus, &e.name).await? {
            let info = s
                .get_info()
                .await
                .map_err(|x| bus_err(&e.name)(x.to_string()))?;
            if info.state.messages > 0 {
                return Err(BackupError::Refused(format!(
                    "le flux {0} contient déjà {1} messages : restaurez sur un nats-server vide / stream {0} already holds {1} messages: restore onto an empty nats-server",
                    e.name, info.state.messages
                )));
            }
        }
    }
    Ok(())
}

/// Publishes the file's messages in order; answers (old seq, new seq)
/// sorted by old seq.
pub(super) async fn republish(
    bus: &Bus,
    e: &StreamEntry,
    dir: &Path,
) -> Result<Vec<(u64, u64)>, BackupError> {
    let err = bus_err(&e.name);
    let spec = specs::ALL
        .iter()
        .find(|s| s.name == e.name)
        .ok_or_else(|| {
            err("flux inconnu de ce programme / stream unknown to this program".into())
        })?;
    bus.ensure_stream(spec)
        .await
        .map_err(|x| err(x.to_string()))?;
    let path = dir.join(&e.file);
    let reader = std::io::BufReader::new(std::fs::File::open(&path).map_err(io(&path))?);
    let mut map = Vec::with_capacity(e.messages as usize);
    let mut pending = VecDeque::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(io(&path))?;
        let bad = |why: String| err(format!("{}:{}: {why}", e.file, n + 1));
        let l: Line = serde_json::from_str(&line).map_err(|x| bad(x.to_string()))?;
        let payload = STANDARD
            .decode(&l.payload)
            .map_err(|x| bad(x.to_string()))?;
        let mut headers = HeaderMap::new();
        for (k, vs) in &l.headers {
            for v in vs {
                headers.append(k.as_str(), v.as_str());
            }
        }
        let ack = bus
            .jetstream()
            .send_publish(
                l.subject,
                PublishMessage::build()
                    .headers(headers)
                    .payload(Bytes::from(payload)),
            )
            .await
            .map_err(|x| err(x.to_string()))?;
        pending.push_back((l.seq, ack));
        if pending.len() >= IN_FLIGHT {
            settle(&mut pending, &mut map, 1, &err).await?;
        }
    }
    settle(&mut pending, &mut map, usize::MAX, &err).await?;
    Ok(map)
}

type Pending = VecDeque<(u64, async_nats::jetstream::context::PublishAckFuture)>;

/// Awaits up to `n` acks, oldest first. A duplicate (same `Nats-Msg-Id`
/// within the window) maps to the message already stored.
async fn settle(
    pending: &mut Pending,
    map: &mut Vec<(u64, u64)>,
    n: usize,
    err: &impl Fn(String) -> BackupError,
) -> Result<(), BackupError> {
    for _ in 0..n {
        let Some((old, ack)) = pending.pop_front() else {
            break;
        };
        let ack = ack.await.map_err(|x| err(x.to_string()))?;
        map.push((old, ack.sequence));
    }
    Ok(())
}

/// Creates the durable consumer so that it starts right after its ack
/// floor, in the new stream's sequences.
pub(super) async fn create_durable(
    bus: &Bus,
    d: &DurableEntry,
    map: &[(u64, u64)],
) -> Result<(), BackupError> {
    let err = bus_err(&d.stream);
    let stream = bus
        .jetstream()
        .get_stream(&d.stream)
        .await
        .map_err(|x| err(x.to_string()))?;
    // The last message kept at or below the floor; its new sequence.
    let below = map.partition_point(|(old, _)| *old <= d.ack_floor);
    let deliver_policy = match below.checked_sub(1).map(|i| map[i].1) {
        None => DeliverPolicy::All,
        Some(new) => DeliverPolicy::ByStartSequence {
            start_sequence: new + 1,
        },
    };
    stream
        .create_consumer(pull::Config {
            durable_name: Some(d.name.clone()),
            filter_subjects: d.filter_subjects.clone(),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(d.ack_wait_ms),
            max_deliver: d.max_deliver,
            max_ack_pending: d.max_ack_pending,
            ..Default::default()
        })
        .await
        .map_err(|x| err(format!("consumer {}: {x}", d.name)))?;
    Ok(())
}
