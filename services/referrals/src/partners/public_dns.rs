//! Webhook calls reach the public Internet only. A URL's address literal is
//! checked when the webhook is registered ([`super::webhook_url`]); a *name*
//! is checked here, each time it is resolved for a call, so a name pointing
//! (or later re-pointed) at EVA's own network — a database, a metadata
//! service, the NATS monitor — is never called on a partner's behalf.
//! `localhost` stays allowed: plain http to the machine itself is how local
//! receivers and the tests work.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// An address of a network that is not the public Internet (loopback apart:
/// the caller decides about it).
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                // Carrier-grade NAT, 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || internal(IpAddr::V4(v4)))
        }
    }
}

/// Of the addresses `host` resolved to, those a webhook may call: public
/// ones, and loopback for `localhost` only. None left: refused, saying why.
pub fn callable(host: &str, resolved: &[SocketAddr]) -> Result<Vec<SocketAddr>, String> {
    let local_name = host.eq_ignore_ascii_case("localhost");
    let ok: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| {
            let ip = a.ip();
            if ip.is_loopback() {
                local_name
            } else {
                !internal(ip)
            }
        })
        .collect();
    if ok.is_empty() {
        return Err(format!(
            "{host} désigne une adresse de réseau privé, refusée / {host} points to a private network address, refused"
        ));
    }
    Ok(ok)
}

/// The resolver the webhook client uses.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok = callable(&host, &resolved)?;
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 0)
    }

    #[test]
    fn only_public_addresses_are_called() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "127.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            let e = callable("partner.example", &[at(private)]).unwrap_err();
            assert!(e.contains("partner.example"), "{private}: {e}");
        }
        // A name resolving to a mix: only its public addresses are called.
        let mixed = [at("10.0.0.7"), at("203.0.113.9"), at("2001:db8::5")];
        assert_eq!(
            callable("partner.example", &mixed).unwrap(),
            vec![at("203.0.113.9"), at("2001:db8::5")]
        );
        // `localhost` is the machine itself, and only that.
        assert_eq!(
            callable("LOCALHOST", &[at("127.0.0.1"), at("::1")])
                .unwrap()
                .len(),
            2
        );
        assert!(callable("localhost", &[at("10.0.0.1")]).is_err());
    }

    #[tokio::test]
    async fn localhost_resolves_through_it() {
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = PublicOnly.resolve(name).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
