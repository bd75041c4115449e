//! Rate limits: a token bucket per client IP address and one per user (one
//! `Authorization` value), in memory. The gateway does not verify tokens (the
//! services do), so a forged token gets a bucket of its own, but the bucket of
//! its address still holds. Over a limit: 429 with `Retry-After`. The probes
//! (`/healthz`, `/readyz`) are never limited.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eva_platform::config::{GatewayConfig, IpNet};

use crate::Problem;

/// How often idle buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A steady rate and a burst; never zero.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    per_minute: u32,
    burst: u32,
}

impl Rate {
    /// `None` when `per_minute` is 0: no limit.
    fn new(per_minute: u32, burst: u32) -> Option<Self> {
        (per_minute > 0).then_some(Self {
            per_minute,
            burst: burst.max(1),
        })
    }

    fn per_sec(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn burst(self) -> f64 {
        f64::from(self.burst)
    }
}

/// Tokens left at an instant; refills at the rate up to the burst.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst(),
            at: now,
        }
    }

    /// Tokens at `now`.
    fn level(&self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate.per_sec()).min(rate.burst())
    }

    fn take(&mut self, rate: Rate, now: Instant) {
        self.tokens = self.level(rate, now) - 1.0;
        self.at = now;
    }
}

/// Whole seconds (at least 1) until a bucket at `level` holds one token.
fn wait_secs(level: f64, rate: Rate) -> u64 {
    let secs = ((1.0 - level) / rate.per_sec()).ceil();
    if secs.is_finite() && secs >= 1.0 {
        secs as u64
    } else {
        1
    }
}

/// Which limit a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Ip,
    User,
}

struct Buckets {
    ip: HashMap<IpAddr, Bucket>,
    user: HashMap<u64, Bucket>,
    swept: Instant,
}

/// Both kinds of bucket, shared by every request.
pub struct Limiter {
    ip: Option<Rate>,
    user: Option<Rate>,
    trusted: Vec<IpNet>,
    /// Random keys: nobody can make their `Authorization` share another's bucket.
    hasher: RandomState,
    buckets: Mutex<Buckets>,
}

impl Limiter {
    /// `None` when both limits are off.
    pub fn new(cfg: &GatewayConfig) -> Option<Arc<Self>> {
        let ip = Rate::new(cfg.rate_limit_ip_per_minute, cfg.rate_limit_ip_burst);
        let user = Rate::new(cfg.rate_limit_user_per_minute, cfg.rate_limit_user_burst);
        if ip.is_none() && user.is_none() {
            return None;
        }
        // Validated with the configuration; an unparsable entry trusts nothing.
        let trusted = cfg.trusted_proxy_nets().unwrap_or_default();
        Some(Arc::new(Self {
            ip,
            user,
            trusted,
            hasher: RandomState::new(),
            buckets: Mutex::new(Buckets {
                ip: HashMap::new(),
                user: HashMap::new(),
                swept: Instant::now(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy,
    /// the last `X-Forwarded-For` hop that is not a trusted proxy (the hops to
    /// its left are the client's to write).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else {
                return client;
            };
            for hop in value.rsplit(',') {
                let Some(ip) = parse_hop(hop) else {
                    return client;
                };
                client = ip;
                if !self.is_trusted(ip) {
                    return ip;
                }
            }
        }
        client
    }

    /// The bucket key of an `Authorization` value.
    pub fn user_key(&self, headers: &HeaderMap) -> Option<u64> {
        headers
            .get(header::AUTHORIZATION)
            .map(|v| self.hasher.hash_one(v.as_bytes()))
    }

    /// Takes a token from the request's buckets, or says which limit it is
    /// over and in how many seconds a token is back. A refused request takes
    /// nothing.
    pub fn check(
        &self,
        ip: Option<IpAddr>,
        user: Option<u64>,
        now: Instant,
    ) -> Result<(), (Limit, u64)> {
        let mut b = self.lock();
        if now.saturating_duration_since(b.swept) >= SWEEP_EVERY {
            self.sweep(&mut b, now);
        }
        let ip = self.ip.zip(ip);
        let user = self.user.zip(user);
        let mut over: Option<(Limit, u64)> = None;
        if let Some((rate, key)) = ip {
            let level = b.ip.get(&key).map_or(rate.burst(), |k| k.level(rate, now));
            if level < 1.0 {
                over = Some((Limit::Ip, wait_secs(level, rate)));
            }
        }
        if let Some((rate, key)) = user {
            let level = b
                .user
                .get(&key)
                .map_or(rate.burst(), |k| k.level(rate, now));
            if level < 1.0 {
                let wait = wait_secs(level, rate);
                if over.is_none_or(|(_, w)| wait > w) {
                    over = Some((Limit::User, wait));
                }
            }
        }
        if let Some(over) = over {
            return Err(over);
        }
        if let Some((rate, key)) = ip {
            b.ip.entry(key)
                .or_insert_with(|| Bucket::full(rate, now))
                .take(rate, now);
        }
        if let Some((rate, key)) = user {
            b.user
                .entry(key)
                .or_insert_with(|| Bucket::full(rate, now))
                .take(rate, now);
        }
        Ok(())
    }

    /// Drops the full buckets: a missing bucket is a full one.
    fn sweep(&self, b: &mut Buckets, now: Instant) {
        if let Some(rate) = self.ip {
            b.ip.retain(|_, k| k.level(rate, now) < rate.burst());
        }
        if let Some(rate) = self.user {
            b.user.retain(|_, k| k.level(rate, now) < rate.burst());
        }
        b.swept = now;
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let b = self.lock();
        (b.ip.len(), b.user.len())
    }
}

/// An `X-Forwarded-For` hop: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The middleware: `from_fn_with_state(limiter, limits::middleware)`.
pub async fn middleware(State(limiter): State<Arc<Limiter>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // Probes, and the web client's files: served from memory, a page load asks
    // for twenty of them, and counting them would lock people out of the page.
    if path == "/healthz" || path == "/readyz" || path == "/" || path.starts_with("/web/") {
        return next.run(req).await;
    }
    // Without the peer's address (a router served without connect info)
    // there is no per-address limit.
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| limiter.client_ip(c.0.ip(), req.headers()));
    let user = limiter.user_key(req.headers());
    match limiter.check(ip, user, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err((limit, secs)) => {
            tracing::debug!(?limit, ?ip, retry_after = secs, "rate limited");
            too_many(limit, secs).into_response()
        }
    }
}

fn too_many(limit: Limit, secs: u64) -> Problem {
    let which = match limit {
        Limit::Ip => "par adresse IP / per IP address",
        Limit::User => "par utilisateur / per user",
    };
    let (fr, en) = which.split_once(" / ").unwrap_or((which, which));
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        "Trop de requêtes / Too many requests",
        format!(
            "limite de requêtes {fr} atteinte, réessayez dans {secs} s / rate limit {en} reached, retry in {secs} s"
        ),
    );
    p.retry_after = Some(secs);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(ip: (u32, u32), user: (u32, u32), trusted: &[&str]) -> Arc<Limiter> {
        let cfg = GatewayConfig {
            rate_limit_ip_per_minute: ip.0,
            rate_limit_ip_burst: ip.1,
            rate_limit_user_per_minute: user.0,
            rate_limit_user_burst: user.1,
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..GatewayConfig::default()
        };
        Limiter::new(&cfg).expect("a limit is on")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_the_rate() {
        // 60 per minute: one token a second; burst 3.
        let l = limiter((60, 3), (0, 0), &[]);
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        for _ in 0..3 {
            assert_eq!(l.check(a, None, t0), Ok(()));
        }
        assert_eq!(l.check(a, None, t0), Err((Limit::Ip, 1)));
        // A refused request takes nothing: after 1 s one token is back.
        assert_eq!(
            l.check(a, None, t0 + Duration::from_millis(400)),
            Err((Limit::Ip, 1))
        );
        assert_eq!(l.check(a, None, t0 + Duration::from_secs(1)), Ok(()));
        assert!(l.check(a, None, t0 + Duration::from_secs(1)).is_err());
        // Another address has its own bucket.
        assert_eq!(l.check(Some(ip("192.0.2.2")), None, t0), Ok(()));
        // Never more than the burst, however long the wait.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(a, None, later), Ok(()));
        }
        assert!(l.check(a, None, later).is_err());
    }

    #[test]
    fn retry_after_is_the_time_until_a_token_is_back() {
        // 6 per minute: one token every 10 s.
        let l = limiter((6, 1), (0, 0), &[]);
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        assert_eq!(l.check(a, None, t0), Ok(()));
        assert_eq!(l.check(a, None, t0), Err((Limit::Ip, 10)));
        assert_eq!(
            l.check(a, None, t0 + Duration::from_millis(7_500)),
            Err((Limit::Ip, 3))
        );
        assert_eq!(l.check(a, None, t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(wait_secs(0.999_999, Rate::new(6000, 1).expect("on")), 1);
    }

    #[test]
    fn users_and_addresses_are_limited_apart_and_both_hold() {
        // Addresses: 10 tokens a second; users: one every 2 s.
        let l = limiter((600, 5), (30, 2), &[]);
        let t0 = Instant::now();
        let a = Some(ip("192.0.2.1"));
        let (alice, bob) = (Some(1), Some(2));
        assert_eq!(l.check(a, alice, t0), Ok(()));
        assert_eq!(l.check(a, alice, t0), Ok(()));
        assert_eq!(l.check(a, alice, t0), Err((Limit::User, 2)));
        // Bob, from the same address, is not blocked by Alice's bucket.
        assert_eq!(l.check(a, bob, t0), Ok(()));
        assert_eq!(l.check(a, bob, t0), Ok(()));
        // The address has one token left (5 - 4): anonymous takes it.
        assert_eq!(l.check(a, None, t0), Ok(()));
        assert_eq!(l.check(a, None, t0).map_err(|e| e.0), Err(Limit::Ip));
        // Alice is over both: the longer wait is named.
        let (limit, _) = l.check(a, alice, t0).expect_err("over");
        assert_eq!(limit, Limit::User);
    }

    #[test]
    fn full_buckets_are_swept() {
        let l = limiter((60, 2), (60, 2), &[]);
        let t0 = Instant::now();
        for i in 0..10u8 {
            let a = Some(IpAddr::from([192, 0, 2, i]));
            assert_eq!(l.check(a, Some(u64::from(i)), t0), Ok(()));
        }
        assert_eq!(l.len(), (10, 10));
        // Past the sweep period every bucket is full again.
        let later = t0 + SWEEP_EVERY + Duration::from_secs(1);
        assert_eq!(l.check(Some(ip("198.51.100.1")), None, later), Ok(()));
        assert_eq!(l.len(), (1, 0));
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let l = limiter((60, 1), (0, 0), &["10.0.0.0/8", "::1"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9".parse().expect("value"));
        // A direct client cannot choose its address.
        assert_eq!(l.client_ip(ip("198.51.100.7"), &h), ip("198.51.100.7"));
        assert_eq!(l.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(l.client_ip(ip("::1"), &h), ip("203.0.113.9"));
        // IPv4-mapped IPv6 peers are IPv4.
        assert_eq!(l.client_ip(ip("::ffff:10.1.2.3"), &h), ip("203.0.113.9"));
        // What the client wrote to the left of the proxy's hop is ignored.
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.2".parse().expect("value"),
        );
        assert_eq!(l.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        // A hop with a port; garbage stops at the last good hop.
        h.insert(
            "x-forwarded-for",
            "203.0.113.9:5555".parse().expect("value"),
        );
        assert_eq!(l.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        h.insert("x-forwarded-for", "nonsense".parse().expect("value"));
        assert_eq!(l.client_ip(ip("10.1.2.3"), &h), ip("10.1.2.3"));
        // No header: the proxy's own address.
        assert_eq!(
            l.client_ip(ip("10.1.2.3"), &HeaderMap::new()),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn the_user_key_is_the_authorization_value() {
        let l = limiter((0, 0), (60, 1), &[]);
        let mut a = HeaderMap::new();
        a.insert(header::AUTHORIZATION, "Bearer a".parse().expect("value"));
        let mut b = HeaderMap::new();
        b.insert(header::AUTHORIZATION, "Bearer b".parse().expect("value"));
        assert_eq!(l.user_key(&a), l.user_key(&a.clone()));
        assert_ne!(l.user_key(&a), l.user_key(&b));
        assert_eq!(l.user_key(&HeaderMap::new()), None);
    }

    #[test]
    fn no_limit_at_zero() {
        let off = GatewayConfig {
            rate_limit_ip_per_minute: 0,
            rate_limit_user_per_minute: 0,
            ..GatewayConfig::default()
        };
        assert!(Limiter::new(&off).is_none());
        let l = limiter((0, 0), (60, 1), &[]);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(l.check(Some(ip("192.0.2.1")), None, t0), Ok(()));
        }
    }

    #[test]
    fn the_answer_is_a_problem_with_retry_after() {
        let res = too_many(Limit::User, 7).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
