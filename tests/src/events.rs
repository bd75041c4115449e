//! Publishing events onto the real JetStream streams as a service's outbox
//! relay does (CloudEvents headers, `Nats-Msg-Id` = `ce-id`), to feed
//! consumers facts with chosen dates, and to replay them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use eva_platform::bus::{CloudEvent, StreamSpec};
use futures::TryStreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// One event as published.
#[derive(Debug, Clone)]
pub struct Published {
    pub subject: String,
    pub cloud_event: CloudEvent,
    pub payload: Vec<u8>,
}

/// Publishes events and remembers them, to replay them later.
pub struct EventPublisher {
    js: jetstream::Context,
    streams: Vec<&'static str>,
    pub published: Vec<Published>,
}

impl EventPublisher {
    /// Connects to `url` and ensures the streams it will publish to.
    pub async fn connect(url: &str, streams: &[StreamSpec]) -> Result<Self> {
        let cfg = eva_platform::config::BusConfig::default();
        let bus = eva_platform::bus::Bus::connect(&cfg, url, "tests-events")
            .await
            .context("connecting to nats")?;
        for s in streams {
            bus.ensure_stream(s).await?;
        }
        Ok(Self {
            js: bus.jetstream().clone(),
            streams: streams.iter().map(|s| s.name).collect(),
            published: Vec::new(),
        })
    }

    /// Publishes `message` on `subject` (its CloudEvents type) as `service`,
    /// and waits for the stream's acknowledgement.
    pub async fn publish(
        &mut self,
        service: &str,
        subject: &str,
        message: &impl prost::Message,
    ) -> Result<Uuid> {
        let id = Uuid::now_v7();
        let cloud_event = CloudEvent {
            id: id.to_string(),
            source: format!("/eva/{service}"),
            event_type: subject.to_owned(),
            time: OffsetDateTime::now_utc().format(&Rfc3339)?,
            subject: None,
        };
        let p = Published {
            subject: subject.to_owned(),
            cloud_event,
            payload: message.encode_to_vec(),
        };
        self.send(&p, &p.cloud_event.id).await?;
        self.published.push(p);
        Ok(id)
    }

    /// Publishes every event again under a new `Nats-Msg-Id` (so JetStream
    /// keeps the copies) with its `ce-id` unchanged: what a relay that
    /// crashed before marking its outbox rows, or a replay, does.
    pub async fn replay_all(&self) -> Result<usize> {
        for p in &self.published {
            self.send(p, &Uuid::now_v7().to_string()).await?;
        }
        Ok(self.published.len())
    }

    /// Waits until the consumers named `prefix…` on the streams published
    /// to have applied everything ([`settled`]).
    pub async fn settled(&self, prefix: &str, within: Duration) -> Result<()> {
        settled(&self.js, &self.streams, prefix, within).await
    }

    async fn send(&self, p: &Published, msg_id: &str) -> Result<()> {
        let mut headers = p.cloud_event.to_headers(None);
        headers.insert("Nats-Msg-Id", msg_id);
        self.js
            .publish_with_headers(p.subject.clone(), headers, p.payload.clone().into())
            .await?
            .await
            .with_context(|| format!("publishing {}", p.subject))?;
        Ok(())
    }
}

/// Waits until every durable consumer whose name starts with `prefix`, on
/// `streams`, has applied and acked all it matches. An event put back for a
/// retry (nak) still counts as unacked, so what is read afterwards is final,
/// not a moment of an out-of-order redelivery.
pub async fn settled(
    js: &jetstream::Context,
    streams: &[&str],
    prefix: &str,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let mut busy = Vec::new();
        for name in streams {
            let stream = js.get_stream(*name).await?;
            let names: Vec<String> = stream.consumer_names().try_collect().await?;
            for durable in names.into_iter().filter(|n| n.starts_with(prefix)) {
                // A consumer gone meanwhile (a finished rebuild's) has nothing left.
                let Ok(info) = stream.consumer_info(&durable).await else {
                    continue;
                };
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    busy.push(format!(
                        "{name}/{durable}: {} to deliver, {} unacked",
                        info.num_pending, info.num_ack_pending
                    ));
                }
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{prefix}… not settled after {within:?}: {}",
                busy.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A protobuf timestamp for a day `YYYY-MM-DD` at `hour`:00 UTC.
pub fn at(day: &str, hour: u8) -> prost_types::Timestamp {
    let d = time::Date::parse(
        day,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .expect("a YYYY-MM-DD day");
    let t = d
        .with_hms(hour, 0, 0)
        .expect("an hour of the day")
        .assume_utc();
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    }
}
