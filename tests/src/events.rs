//! Publishing events onto the real JetStream streams as a service's outbox
//! relay does (CloudEvents headers, `Nats-Msg-Id` = `ce-id`), to feed
//! consumers facts with chosen dates, and to replay them.

use anyhow::{Context, Result};
use async_nats::jetstream;
use eva_platform::bus::{CloudEvent, StreamSpec};
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
