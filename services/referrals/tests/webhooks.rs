//! The webhook delivery path against a real SQLite database and a real HTTP
//! endpoint (a local axum server playing the partner): retries with growing
//! delays on the referrals clock, order per webhook, restarts, signatures,
//! formats, and failures without an answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use eva_platform::crypto::Kek;
use eva_platform::db::Db;
use eva_platform::follows::{Follows, StructureRow};
use eva_platform::{Clock, Shutdown};
use eva_proto::referrals::v1::{EventFormat, ReferralSent, ReferralStatus, ReferralStatusChanged};
use eva_referrals::partners::store::{self as rows, DeliveryRow, WebhookRow};
use eva_referrals::partners::webhook::Settings;
use eva_referrals::partners::{self, Worker, signature};
use eva_referrals::store::Store;
use eva_tests::postgres::PgCluster;
use eva_tests::sandbox::Backend;
use prost::Message;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A lock, even if a panicking test poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const SENT: &str = "eva.referrals.referral.sent";
const ACCEPTED: &str = "eva.referrals.referral.accepted";

/// One call the partner received.
#[derive(Debug, Clone)]
struct Call {
    headers: HeaderMap,
    body: Bytes,
}

/// The partner's endpoint: answers the scripted statuses in turn, then
/// `then`; may be slow.
#[derive(Clone, Default)]
struct Partner {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    then: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
}

impl Partner {
    async fn start(script: &[u16], then: u16) -> R<(Self, String)> {
        let p = Partner::default();
        lock(&p.script).extend(script.iter().copied());
        *lock(&p.then) = then;
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(p.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", l.local_addr()?);
        tokio::spawn(async move { axum::serve(l, app).await });
        Ok((p, url))
    }

    fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    fn set_then(&self, status: u16) {
        *lock(&self.then) = status;
    }
}

async fn receive(State(p): State<Partner>, headers: HeaderMap, body: Bytes) -> StatusCode {
    lock(&p.calls).push(Call { headers, body });
    let delay = *lock(&p.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let then = *lock(&p.then);
    let code = lock(&p.script).pop_front().unwrap_or(then);
    StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
}

/// A migrated referrals database with one partner structure.
struct Env {
    _dir: tempfile::TempDir,
    _pg: Option<PgCluster>,
    url: String,
    db: Db,
    store: Store,
    kek: Kek,
    clock: Clock,
    partner_id: String,
}

impl Env {
    async fn new(backend: Backend) -> R<Self> {
        let dir = tempfile::tempdir()?;
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/referrals.db", dir.path().display()),
                None,
            ),
            Backend::Postgres => {
                let pg = PgCluster::start().await?;
                (pg.create_database("referrals").await?, Some(pg))
            }
        };
        let db = Db::connect(&url, 4).await?;
        db.migrate(&eva_referrals::store::MIGRATIONS).await?;
        let partner_id = uuid::Uuid::now_v7().to_string();
        let mut tx = db.begin().await?;
        Follows::upsert_structure(
            &mut tx,
            &StructureRow {
                structure_id: partner_id.clone(),
                kind: 8, // STRUCTURE_KIND_PARTNER
                ..Default::default()
            },
            0,
        )
        .await?;
        tx.commit().await?;
        Ok(Self {
            _dir: dir,
            _pg: pg,
            url,
            store: Store::new(db.clone()),
            db,
            kek: Kek::from_base64(&Kek::generate_base64())?,
            clock: Clock::system(),
            partner_id,
        })
    }

    async fn webhook(&self, url: &str, format: EventFormat) -> R<(WebhookRow, String)> {
        Ok(partners::register_webhook(
            &self.store,
            &self.kek,
            self.clock.now_us(),
            &self.partner_id,
            url,
            format as i32,
        )
        .await?)
    }

    /// Starts a worker on its own database pool (as a restarted process
    /// would); stop it with the returned `Shutdown`.
    async fn worker(&self, max_attempts: i64) -> R<(Shutdown, tokio::task::JoinHandle<()>)> {
        let db = Db::connect(&self.url, 4).await?;
        let settings = Settings {
            poll: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            max_attempts,
            backoff_ms: 60_000,
            max_backoff_ms: 200_000,
        };
        let w = Worker::new(db, self.kek.clone(), settings, self.clock.clone())?;
        let stop = Shutdown::new();
        let handle = tokio::spawn(w.run(stop.clone()));
        Ok((stop, handle))
    }

    /// Writes an event addressed to the partner, as the referral core does.
    async fn event(&self, event_type: &str, payload: &[u8]) -> R<String> {
        let event_id = uuid::Uuid::now_v7().to_string();
        self.event_with_id(&event_id, event_type, payload).await?;
        Ok(event_id)
    }

    async fn event_with_id(&self, event_id: &str, event_type: &str, payload: &[u8]) -> R<()> {
        let mut tx = self.db.begin().await?;
        partners::enqueue_deliveries(
            &mut tx,
            &self.partner_id,
            event_id,
            event_type,
            payload,
            self.clock.now_us(),
        )
        .await?;
        tx.commit().await?;
        partners::wake();
        Ok(())
    }

    /// Deliveries of a webhook, oldest first.
    async fn deliveries(&self, webhook_id: &str) -> R<Vec<DeliveryRow>> {
        let mut d = self
            .store
            .deliveries_of(webhook_id, None, None, 500)
            .await?;
        d.reverse();
        Ok(d)
    }

    /// Waits (real time, 10 s at most) until `check` holds on the
    /// deliveries of `webhook_id`.
    async fn until(
        &self,
        webhook_id: &str,
        what: &str,
        check: impl Fn(&[DeliveryRow]) -> bool,
    ) -> R<Vec<DeliveryRow>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.deliveries(webhook_id).await?;
            if check(&d) {
                return Ok(d);
            }
            assert!(Instant::now() < deadline, "{what}: {d:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn sent_event(referral: &str) -> Vec<u8> {
    ReferralSent {
        referral_id: referral.into(),
        person_id: uuid::Uuid::now_v7().to_string(),
        domains: vec!["mobilite".into()],
        ..Default::default()
    }
    .encode_to_vec()
}

fn header<'a>(c: &'a Call, name: &str) -> &'a str {
    c.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

const SEC: i64 = 1_000_000;

/// The wait before the next attempt, as scheduled.
fn wait_of(d: &DeliveryRow) -> i64 {
    match (d.next_attempt_at_us, d.last_attempt_at_us) {
        (Some(next), Some(last)) => next - last,
        _ => -1,
    }
}

async fn an_endpoint_failing_twice_gets_the_event_at_the_third_attempt(backend: Backend) -> R<()> {
    let env = Env::new(backend).await?;
    let (partner, url) = Partner::start(&[500, 500], 200).await?;
    let (hook, secret) = env.webhook(&url, EventFormat::Protobuf).await?;
    assert_eq!(secret.len(), 43, "32 bytes in base64url without padding");
    assert!(
        !hook
            .secret_sealed
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
    let (_stop, _w) = env.worker(8).await?;

    let payload = sent_event("r1");
    let event_id = env.event(SENT, &payload).await?;

    // First attempt: 500, retrying about a minute later (60 s + ≤ 10 %).
    let d = env
        .until(&hook.webhook_id, "first attempt", |d| d[0].attempts == 1)
        .await?;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, rows::RETRYING);
    assert_eq!(d[0].last_http_status, 500);
    assert_eq!(d[0].last_error, "HTTP 500");
    assert!((60 * SEC..=67 * SEC).contains(&wait_of(&d[0])), "{d:?}");
    // Nothing happens before the time comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.deliveries(&hook.webhook_id).await?[0].attempts, 1);
    assert_eq!(partner.calls().len(), 1);

    // Second attempt once a minute has passed: 500 again, about 2 minutes.
    env.clock.advance(Duration::from_secs(67));
    let d = env
        .until(&hook.webhook_id, "second attempt", |d| d[0].attempts == 2)
        .await?;
    assert_eq!(d[0].status, rows::RETRYING);
    assert!((120 * SEC..=133 * SEC).contains(&wait_of(&d[0])), "{d:?}");

    // Third: 200, delivered.
    env.clock.advance(Duration::from_secs(133));
    let d = env
        .until(&hook.webhook_id, "delivered", |d| {
            d[0].status == rows::DELIVERED
        })
        .await?;
    assert_eq!(d[0].attempts, 3);
    assert_eq!(d[0].last_http_status, 200);
    assert_eq!(d[0].last_error, "");
    assert_eq!(d[0].next_attempt_at_us, None);

    // Every call carried the event, its CloudEvents headers and a signature
    // made with the secret.
    let calls = partner.calls();
    assert_eq!(calls.len(), 3);
    let now_s = env.clock.now_us() / SEC;
    for c in &calls {
        assert_eq!(header(c, "content-type"), "application/protobuf");
        assert_eq!(header(c, "ce-specversion"), "1.0");
        assert_eq!(header(c, "ce-id"), event_id);
        assert_eq!(header(c, "ce-type"), SENT);
        assert_eq!(header(c, "ce-source"), "/eva/referrals");
        assert!(header(c, "ce-time").ends_with('Z'));
        assert_eq!(&c.body[..], &payload[..]);
        assert_eq!(ReferralSent::decode(&c.body[..])?.referral_id, "r1");
    }
    let last = calls.last().ok_or("no call")?;
    let sig = header(last, "eva-signature");
    assert_eq!(signature::verify(&secret, sig, &last.body, now_s), Ok(()));
    assert!(signature::verify("another secret", sig, &last.body, now_s).is_err());
    assert!(signature::verify(&secret, sig, b"tampered", now_s).is_err());
    // The same call replayed more than 5 minutes later is refused by a
    // receiver that checks the time.
    assert_eq!(
        signature::verify(&secret, sig, &last.body, now_s + 301),
        Err(signature::SignatureError::Stale)
    );

    // A delivery done is forgotten after 30 days, not before.
    let worker = Worker::new(
        env.db.clone(),
        env.kek.clone(),
        Settings {
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_attempts: 8,
            backoff_ms: 1,
            max_backoff_ms: 1,
        },
        env.clock.clone(),
    )?;
    env.clock.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(worker.prune().await?, 0);
    env.clock.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(worker.prune().await?, 1);
    assert!(env.deliveries(&hook.webhook_id).await?.is_empty());
    Ok(())
}

async fn an_endpoint_that_always_fails_is_retried_with_growing_delays_then_given_up(
    backend: Backend,
) -> R<()> {
    let env = Env::new(backend).await?;
    let (partner, url) = Partner::start(&[], 503).await?;
    let (hook, _secret) = env.webhook(&url, EventFormat::Protobuf).await?;
    let (_stop, _w) = env.worker(4).await?;
    env.event(SENT, &sent_event("r1")).await?;

    let mut waits = Vec::new();
    for attempt in 1..=3 {
        let d = env
            .until(&hook.webhook_id, "next attempt", |d| {
                d[0].attempts == attempt
            })
            .await?;
        assert_eq!(d[0].status, rows::RETRYING, "attempt {attempt}");
        assert_eq!(d[0].last_http_status, 503);
        let wait = wait_of(&d[0]);
        waits.push(wait);
        env.clock
            .advance(Duration::from_micros(u64::try_from(wait)? + 1));
    }
    // 60 s, 120 s, then the 200 s ceiling (each + ≤ 10 % jitter).
    assert!((60 * SEC..=67 * SEC).contains(&waits[0]), "{waits:?}");
    assert!((120 * SEC..=133 * SEC).contains(&waits[1]), "{waits:?}");
    assert!((200 * SEC..=221 * SEC).contains(&waits[2]), "{waits:?}");
    assert!(waits[0] < waits[1] && waits[1] < waits[2]);

    let d = env
        .until(&hook.webhook_id, "failed", |d| d[0].status == rows::FAILED)
        .await?;
    assert_eq!(d[0].attempts, 4);
    assert_eq!(d[0].next_attempt_at_us, None);
    assert_eq!(d[0].last_error, "HTTP 503");
    // No fifth call, however long we wait.
    env.clock.advance(Duration::from_secs(3_600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(partner.calls().len(), 4);

    // A failed delivery does not hold the line: the next event goes out.
    partner.set_then(204);
    let next = env.event(SENT, &sent_event("r2")).await?;
    let d = env
        .until(&hook.webhook_id, "next event delivered", |d| {
            d.len() == 2 && d[1].status == rows::DELIVERED
        })
        .await?;
    assert_eq!(d[1].event_id, next);
    assert_eq!(d[0].status, rows::FAILED);
    Ok(())
}

async fn events_queue_behind_a_retrying_delivery_and_none_is_lost_or_doubled(
    backend: Backend,
) -> R<()> {
    let env = Env::new(backend).await?;
    let (partner, url) = Partner::start(&[500], 200).await?;
    let (hook, _secret) = env.webhook(&url, EventFormat::Protobuf).await?;
    let (_stop, _w) = env.worker(8).await?;

    let first = env.event(SENT, &sent_event("r1")).await?;
    env.until(&hook.webhook_id, "first attempt", |d| d[0].attempts == 1)
        .await?;

    // Three more events while the first is retrying: they wait behind it.
    let mut ids = vec![first];
    for r in ["r2", "r3", "r4"] {
        let changed = ReferralStatusChanged {
            referral_id: r.into(),
            to_status: ReferralStatus::Acceptee as i32,
            ..Default::default()
        };
        ids.push(env.event(ACCEPTED, &changed.encode_to_vec()).await?);
    }
    // Replaying an event (same id) does not queue it twice.
    env.event_with_id(&ids[2], ACCEPTED, b"").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = env.deliveries(&hook.webhook_id).await?;
    assert_eq!(d.len(), 4);
    assert_eq!(
        d.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(),
        [rows::RETRYING, rows::PENDING, rows::PENDING, rows::PENDING]
    );
    assert_eq!(
        partner.calls().len(),
        1,
        "nothing overtakes the retrying delivery"
    );

    // The endpoint is back when the retry comes: all delivered, in order.
    env.clock.advance(Duration::from_secs(70));
    let d = env
        .until(&hook.webhook_id, "all delivered", |d| {
            d.iter().all(|d| d.status == rows::DELIVERED)
        })
        .await?;
    assert_eq!(
        d.iter().map(|d| d.attempts).collect::<Vec<_>>(),
        [2, 1, 1, 1]
    );
    let seen: Vec<String> = partner
        .calls()
        .iter()
        .map(|c| header(c, "ce-id").to_owned())
        .collect();
    let expected = [&ids[0], &ids[0], &ids[1], &ids[2], &ids[3]];
    assert_eq!(seen.iter().collect::<Vec<_>>(), expected);
    Ok(())
}

async fn a_restarted_worker_carries_on_where_the_last_one_stopped(backend: Backend) -> R<()> {
    let env = Env::new(backend).await?;
    let (partner, url) = Partner::start(&[502], 200).await?;
    let (hook, _secret) = env.webhook(&url, EventFormat::Protobuf).await?;

    let (stop, worker) = env.worker(8).await?;
    let first = env.event(SENT, &sent_event("r1")).await?;
    env.until(&hook.webhook_id, "first attempt", |d| d[0].attempts == 1)
        .await?;
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops")?;

    // Written while no worker runs.
    let second = env.event(SENT, &sent_event("r2")).await?;
    env.clock.advance(Duration::from_secs(70));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(partner.calls().len(), 1);

    let (_stop, _w) = env.worker(8).await?;
    let d = env
        .until(&hook.webhook_id, "both delivered", |d| {
            d.len() == 2 && d.iter().all(|d| d.status == rows::DELIVERED)
        })
        .await?;
    assert_eq!((d[0].event_id.as_str(), d[0].attempts), (first.as_str(), 2));
    assert_eq!(
        (d[1].event_id.as_str(), d[1].attempts),
        (second.as_str(), 1)
    );
    assert_eq!(partner.calls().len(), 3);
    Ok(())
}

async fn a_worker_that_died_during_a_call_leaves_the_delivery_to_the_next_after_its_lease(
    backend: Backend,
) -> R<()> {
    let env = Env::new(backend).await?;
    let (partner, url) = Partner::start(&[], 200).await?;
    let (hook, _secret) = env.webhook(&url, EventFormat::Protobuf).await?;
    let event = env.event(SENT, &sent_event("r1")).await?;
    // A worker claimed it, then the process died before recording anything.
    let d = env.deliveries(&hook.webhook_id).await?;
    let lease = env.clock.now_us() + 40 * SEC;
    assert!(
        env.store
            .claim_delivery(
                &d[0].delivery_id,
                d[0].next_attempt_at_us.ok_or("not due")?,
                lease
            )
            .await?
    );
    let (_stop, _w) = env.worker(8).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(partner.calls().is_empty(), "not while the lease holds");
    env.clock.advance(Duration::from_secs(41));
    let d = env
        .until(&hook.webhook_id, "delivered", |d| {
            d[0].status == rows::DELIVERED
        })
        .await?;
    assert_eq!(d[0].attempts, 1);
    assert_eq!(header(&partner.calls()[0], "ce-id"), event);
    Ok(())
}

async fn each_webhook_gets_its_format_and_failures_without_an_answer_are_described(
    backend: Backend,
) -> R<()> {
    let env = Env::new(backend).await?;
    let (json_partner, json_url) = Partner::start(&[], 200).await?;
    let (slow_partner, slow_url) = Partner::start(&[], 200).await?;
    *lock(&slow_partner.delay) = Duration::from_secs(3);
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let closed_url = format!("http://{}/hook", closed.local_addr()?);
    drop(closed);

    let (json_hook, secret) = env.webhook(&json_url, EventFormat::Json).await?;
    let (slow_hook, _) = env.webhook(&slow_url, EventFormat::Protobuf).await?;
    let (closed_hook, _) = env.webhook(&closed_url, EventFormat::Unspecified).await?;
    // https to a server that speaks plain http: the TLS handshake fails.
    let (plain_partner, plain_url) = Partner::start(&[], 200).await?;
    let tls_url = plain_url.replace("http://", "https://");
    let (tls_hook, _) = env.webhook(&tls_url, EventFormat::Protobuf).await?;
    assert_eq!(closed_hook.format, rows::PROTOBUF);
    let (_stop, _w) = env.worker(8).await?;

    let changed = ReferralStatusChanged {
        referral_id: "r1".into(),
        from_status: ReferralStatus::Envoyee as i32,
        to_status: ReferralStatus::Acceptee as i32,
        ..Default::default()
    };
    let event = env.event(ACCEPTED, &changed.encode_to_vec()).await?;

    let d = env
        .until(&json_hook.webhook_id, "json delivered", |d| {
            d[0].status == rows::DELIVERED
        })
        .await?;
    assert_eq!(d[0].content_type, "application/json");
    let call = &json_partner.calls()[0];
    assert_eq!(header(call, "content-type"), "application/json");
    assert_eq!(header(call, "ce-id"), event);
    let body: serde_json::Value = serde_json::from_slice(&call.body)?;
    assert_eq!(
        body,
        serde_json::json!({
            "referralId": "r1",
            "fromStatus": "REFERRAL_STATUS_ENVOYEE",
            "toStatus": "REFERRAL_STATUS_ACCEPTEE",
        })
    );
    let now_s = env.clock.now_us() / SEC;
    assert_eq!(
        signature::verify(&secret, header(call, "eva-signature"), &call.body, now_s),
        Ok(())
    );

    let d = env
        .until(&closed_hook.webhook_id, "refused connection", |d| {
            d[0].attempts == 1
        })
        .await?;
    assert_eq!(d[0].status, rows::RETRYING);
    assert_eq!(d[0].last_http_status, 0);
    assert!(d[0].last_error.starts_with("connexion impossible"), "{d:?}");

    let d = env
        .until(&slow_hook.webhook_id, "timeout", |d| d[0].attempts == 1)
        .await?;
    assert_eq!(d[0].status, rows::RETRYING);
    assert_eq!(d[0].last_http_status, 0);
    assert!(d[0].last_error.starts_with("délai dépassé"), "{d:?}");
    let d = env
        .until(&tls_hook.webhook_id, "tls handshake", |d| {
            d[0].attempts == 1
        })
        .await?;
    assert_eq!(d[0].status, rows::RETRYING);
    assert_eq!(d[0].last_http_status, 0);
    // rustls's own words: the client did speak TLS.
    assert!(d[0].last_error.contains("InvalidContentType"), "{d:?}");
    assert!(plain_partner.calls().is_empty());
    // The URL (which may hold a partner's token) is not in the error.
    assert!(!d[0].last_error.contains("127.0.0.1"), "{d:?}");
    Ok(())
}

async fn webhooks_need_a_partner_structure_a_good_url_and_at_most_five(backend: Backend) -> R<()> {
    let env = Env::new(backend).await?;
    let r = |url: &'static str| {
        let env = &env;
        async move {
            partners::register_webhook(
                &env.store,
                &env.kek,
                0,
                &env.partner_id,
                url,
                EventFormat::Json as i32,
            )
            .await
        }
    };
    assert!(matches!(
        r("http://partner.example/h").await,
        Err(partners::PartnerError::Invalid { field: "url", .. })
    ));
    for _ in 0..5 {
        r("https://partner.example/h").await?;
    }
    assert!(matches!(
        r("https://partner.example/h").await,
        Err(partners::PartnerError::TooManyWebhooks)
    ));

    // A structure that is not a partner, and one referrals does not know.
    let association = uuid::Uuid::now_v7().to_string();
    let mut tx = env.db.begin().await?;
    Follows::upsert_structure(
        &mut tx,
        &StructureRow {
            structure_id: association.clone(),
            kind: 6,
            ..Default::default()
        },
        0,
    )
    .await?;
    tx.commit().await?;
    for (id, expected) in [
        (association, "NotAPartner"),
        (uuid::Uuid::now_v7().to_string(), "UnknownStructure"),
    ] {
        let Err(e) =
            partners::register_webhook(&env.store, &env.kek, 0, &id, "https://p.example/h", 0)
                .await
        else {
            panic!("{expected}: registered");
        };
        assert!(format!("{e:?}").starts_with(expected), "{e:?}");
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }

    // The format for NATS: protobuf until the partner chooses JSON.
    let mut tx = env.db.begin().await?;
    assert_eq!(
        partners::event_format(&mut tx, &env.partner_id).await?,
        EventFormat::Protobuf
    );
    Store::set_partner_settings(&mut tx, &env.partner_id, rows::JSON, 1).await?;
    assert_eq!(
        partners::event_format(&mut tx, &env.partner_id).await?,
        EventFormat::Json
    );
    tx.commit().await?;
    Ok(())
}

/// Each story on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test]
            async fn sqlite() {
                super::$story(super::Backend::Sqlite).await.unwrap()
            }

            #[tokio::test]
            async fn postgres() {
                super::$story(super::Backend::Postgres).await.unwrap()
            }
        }
    )*};
}

on_both_backends!(
    an_endpoint_failing_twice_gets_the_event_at_the_third_attempt,
    an_endpoint_that_always_fails_is_retried_with_growing_delays_then_given_up,
    events_queue_behind_a_retrying_delivery_and_none_is_lost_or_doubled,
    a_restarted_worker_carries_on_where_the_last_one_stopped,
    a_worker_that_died_during_a_call_leaves_the_delivery_to_the_next_after_its_lease,
    each_webhook_gets_its_format_and_failures_without_an_answer_are_described,
    webhooks_need_a_partner_structure_a_good_url_and_at_most_five,
);
