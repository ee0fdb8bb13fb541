//! Ports for local nodes: free ports picked below the kernel's ephemeral range, consecutive
//! ranges from a base port, and the checks that no two nodes share one.
//!
//! Only port numbers live here; which node gets which port is decided by
//! [`crate::LocalCluster`], and addresses are formatted in [`crate::process`].

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};

use crate::error::LocalError;

/// Ports picked for nodes lie in `[PICKED_PORT_MIN, start of the kernel's ephemeral range)`.
const PICKED_PORT_MIN: u16 = 10_000;
/// The ephemeral range's start when `/proc` does not say (Linux's default).
const EPHEMERAL_PORT_LOW_DEFAULT: u16 = 32_768;
/// Attempts at a free port that no node of the cluster has used before.
const FREE_PORT_ATTEMPTS_MAX: usize = 16;

/// `count` distinct free ports on 127.0.0.1. Every listener is held until all are bound, so
/// the ports differ; they are released before returning.
///
/// They are picked below the kernel's ephemeral range (from a random starting point), not by
/// binding port 0: between this pick and a node's bind, the kernel hands ephemeral ports to
/// every `bind(0)` and outgoing connection on the machine (the fault suite's proxies, peers
/// dialling each other, parallel tests), and one of them could take a port picked that way.
/// Only when that range is too small does it fall back to port 0.
pub fn pick_free_ports(count: usize) -> io::Result<Vec<u16>> {
    let high = ephemeral_port_low().max(PICKED_PORT_MIN);
    let span = u32::from(high - PICKED_PORT_MIN);
    let mut listeners = Vec::with_capacity(count);
    if span > 0 {
        let start = random_seed() % span;
        for step in 0..span {
            if listeners.len() == count {
                break;
            }
            let port = PICKED_PORT_MIN + ((start + step) % span) as u16;
            if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                listeners.push(listener);
            }
        }
    }
    while listeners.len() < count {
        listeners.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?);
    }
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect()
}

/// The first port of the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_port_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_PORT_LOW_DEFAULT)
}

/// Varies from process to process and call to call, so parallel pickers start apart.
fn random_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// A free port that is not in `used` (a stopped node's port stays reserved for its restart),
/// and records it there.
pub(crate) fn pick_unused_port(used: &mut BTreeSet<u16>) -> Result<u16, LocalError> {
    for _ in 0..FREE_PORT_ATTEMPTS_MAX {
        let port = pick_free_ports(1).map_err(LocalError::FreePort)?[0];
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(LocalError::FreePort(io::Error::other(format!(
        "every free port offered in {FREE_PORT_ATTEMPTS_MAX} attempts belongs to a node"
    ))))
}

/// `count` ports from `base` on.
pub(crate) fn consecutive_ports(base: u16, count: usize) -> Vec<u16> {
    // `LocalClusterConfig::validate` checked that the range fits below 65536.
    (0..count).map(|offset| base + offset as u16).collect()
}

/// Whether `count` consecutive ports from `base` are all valid, non-zero ports.
pub(crate) fn port_range_fits(base: u16, count: usize) -> bool {
    base != 0 && u64::from(base) + count as u64 <= u64::from(u16::MAX) + 1
}

/// Rejects a port given to two listeners (API or metrics) of the cluster.
pub(crate) fn ensure_distinct_ports(
    api_ports: &[u16],
    metrics_ports: &[u16],
) -> Result<(), LocalError> {
    let mut seen = BTreeSet::new();
    for &port in api_ports.iter().chain(metrics_ports) {
        if !seen.insert(port) {
            return Err(LocalError::Config(format!(
                "port {port} is used twice (api ports {api_ports:?}, metrics ports \
                 {metrics_ports:?})"
            )));
        }
    }
    Ok(())
}

/// The port of a `host:port` address: what follows the last colon.
pub(crate) fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_non_zero_and_bindable() {
        let ports = pick_free_ports(8).expect("free ports");
        assert_eq!(ports.len(), 8);
        assert!(ports.iter().all(|&port| port != 0));
        assert_eq!(ports.iter().collect::<BTreeSet<_>>().len(), 8);
        for port in ports {
            // Released before returning, so a node can bind them.
            drop(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free"));
        }
    }

    #[test]
    fn free_ports_come_from_below_the_ephemeral_range() {
        let low = ephemeral_port_low();
        for port in pick_free_ports(8).expect("free ports") {
            assert!((PICKED_PORT_MIN..low).contains(&port), "{port} vs {low}");
        }
    }

    #[test]
    fn an_unused_port_never_repeats_a_port_of_the_cluster() {
        let mut used: BTreeSet<u16> = pick_free_ports(4).expect("ports").into_iter().collect();
        let before = used.clone();
        let port = pick_unused_port(&mut used).expect("a port");
        assert!(!before.contains(&port));
        assert!(used.contains(&port));
    }

    #[test]
    fn consecutive_ports_start_at_the_base() {
        assert_eq!(consecutive_ports(7001, 3), [7001, 7002, 7003]);
        assert!(port_range_fits(65533, 3));
        assert!(!port_range_fits(65534, 3));
        assert!(!port_range_fits(0, 1));
        assert!(port_range_fits(1, 0));
    }

    #[test]
    fn a_port_used_twice_is_rejected() {
        assert!(ensure_distinct_ports(&[7001, 7002], &[9101, 9102]).is_ok());
        let error = ensure_distinct_ports(&[7001, 7002], &[7002]).expect_err("duplicate");
        assert!(error.to_string().contains("port 7002 is used twice"));
    }

    #[test]
    fn the_port_of_an_address_is_after_the_last_colon() {
        assert_eq!(port_of("127.0.0.1:7001"), Some(7001));
        assert_eq!(port_of("[::1]:80"), Some(80));
        assert_eq!(port_of("no-port"), None);
    }
}
