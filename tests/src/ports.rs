//! Free loopback ports for the servers a test starts.

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, read back, released.
///
/// Another process may take it before the caller binds it; the harness retries a start that
/// fails with "address already in use".
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}
