//! Root-only partitions: a private network namespace and iptables (`run --net iptables`).
//!
//! ```text
//!   martelo-jepsen run --net iptables …            (root, host namespace)
//!     ip netns add martelo-jepsen-<pid>
//!     ip netns exec martelo-jepsen-<pid> ip link set lo up
//!     ip netns exec martelo-jepsen-<pid> <this exe> run … --inside-netns martelo-jepsen-<pid>
//!       node N listens on 127.0.0.(10+N), dials peers from it (--source-address)
//!       iptables -N MARTELO_JEPSEN; iptables -I INPUT -j MARTELO_JEPSEN
//!       cut a->b: iptables -A MARTELO_JEPSEN -s 127.0.0.(10+a) -d 127.0.0.(10+b) -j DROP
//!       heal:     iptables -F MARTELO_JEPSEN
//!     ip netns del martelo-jepsen-<pid>              (always, also on error or Ctrl-C)
//! ```
//!
//! Every address is on loopback inside the namespace, and every rule lives in the namespace,
//! so the host's network and firewall are never touched. Clients (the workload) connect from
//! 127.0.0.1, which no rule names: they are never cut, as in proxy mode. A dropped packet
//! stalls open TCP connections, as in a real partition (the proxies close them instead).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::proxy::{Link, LinkProxies};

/// The iptables chain holding the cuts, jumped to from INPUT.
pub const CHAIN: &str = "MARTELO_JEPSEN";

/// How partitions are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NetMode {
    /// A TCP proxy on every directed peer link (unprivileged).
    #[default]
    Proxy,
    /// A private network namespace and iptables DROP rules (root only).
    Iptables,
}

/// The namespace of the run of process `pid`.
pub fn namespace_name(pid: u32) -> String {
    format!("martelo-jepsen-{pid}")
}

/// Node `id`'s own loopback address inside the namespace: 127.0.0.(10+id).
pub fn node_ip(id: u64) -> anyhow::Result<Ipv4Addr> {
    let last = u8::try_from(10 + id)
        .ok()
        .filter(|&last| id >= 1 && last < 255)
        .ok_or_else(|| anyhow::anyhow!("node {id} has no address 127.0.0.(10+{id})"))?;
    Ok(Ipv4Addr::new(127, 0, 0, last))
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

/// `iptables` arguments creating [`CHAIN`] and jumping to it first thing in INPUT.
pub fn setup_args() -> Vec<Vec<String>> {
    vec![
        strings(&["-w", "-N", CHAIN]),
        strings(&["-w", "-I", "INPUT", "-j", CHAIN]),
    ]
}

/// `iptables` arguments removing every cut.
pub fn flush_args() -> Vec<String> {
    strings(&["-w", "-F", CHAIN])
}

/// `iptables` arguments dropping every packet of directed link `from -> to`.
pub fn drop_args((from, to): Link) -> anyhow::Result<Vec<String>> {
    Ok(vec![
        "-w".to_owned(),
        "-A".to_owned(),
        CHAIN.to_owned(),
        "-s".to_owned(),
        node_ip(from)?.to_string(),
        "-d".to_owned(),
        node_ip(to)?.to_string(),
        "-j".to_owned(),
        "DROP".to_owned(),
    ])
}

/// The `iptables` invocations that make exactly `cut` the set of cut links: a flush, then
/// one DROP per link.
pub fn cut_commands(cut: &BTreeSet<Link>) -> anyhow::Result<Vec<Vec<String>>> {
    let mut commands = vec![flush_args()];
    for &link in cut {
        commands.push(drop_args(link)?);
    }
    Ok(commands)
}

/// `ip` arguments of the outer process: create, bring up loopback, run, delete.
pub fn netns_add_args(name: &str) -> Vec<String> {
    strings(&["netns", "add", name])
}

pub fn netns_lo_up_args(name: &str) -> Vec<String> {
    strings(&["netns", "exec", name, "ip", "link", "set", "lo", "up"])
}

pub fn netns_del_args(name: &str) -> Vec<String> {
    strings(&["netns", "del", name])
}

/// `ip netns exec NAME <exe> <args…> --inside-netns NAME`.
pub fn netns_exec_args(name: &str, exe: &Path, args: &[String]) -> Vec<String> {
    let mut all = strings(&["netns", "exec", name]);
    all.push(exe.display().to_string());
    all.extend(args.iter().cloned());
    all.extend(["--inside-netns".to_owned(), name.to_owned()]);
    all
}

/// Runs `program args`, failing with its stderr.
pub fn run_command(program: &str, args: &[String]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // `/proc/self/status` has `Uid: real effective saved fs`.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        })
        .unwrap_or(false)
}

/// Refuses to touch iptables unless this process is inside the namespace `name` (so a stray
/// `--inside-netns` can never change the host's firewall).
pub fn ensure_inside(name: &str) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(["netns", "identify", &std::process::id().to_string()])
        .output()
        .context("running ip netns identify")?;
    let current = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    anyhow::ensure!(
        current == name,
        "--inside-netns {name}: this process is in network namespace {current:?}, not {name:?}"
    );
    Ok(())
}

/// The cuts of a run in the namespace, as iptables rules in [`CHAIN`].
#[derive(Debug)]
pub struct IptablesLinks {
    _private: (),
}

impl IptablesLinks {
    /// Creates [`CHAIN`] and the jump from INPUT (inside the namespace).
    pub fn setup() -> anyhow::Result<IptablesLinks> {
        for args in setup_args() {
            run_command("iptables", &args)?;
        }
        Ok(IptablesLinks { _private: () })
    }

    pub fn set_blocked(&self, cut: &BTreeSet<Link>) -> anyhow::Result<()> {
        for args in cut_commands(cut)? {
            run_command("iptables", &args)?;
        }
        Ok(())
    }

    pub fn heal(&self) -> anyhow::Result<()> {
        run_command("iptables", &flush_args())
    }
}

/// How the nemesis cuts peer links, shared by the partition shapes.
#[derive(Debug)]
pub enum Links {
    Proxy(LinkProxies),
    Iptables(IptablesLinks),
}

impl Links {
    /// Cuts exactly `cut` (both directions must be listed to cut both) and heals the rest.
    pub fn set_blocked(&self, cut: &BTreeSet<Link>) -> anyhow::Result<()> {
        match self {
            Links::Proxy(proxies) => {
                proxies.set_blocked(cut);
                Ok(())
            }
            Links::Iptables(rules) => rules.set_blocked(cut),
        }
    }

    /// Heals every link.
    pub fn heal(&self) -> anyhow::Result<()> {
        match self {
            Links::Proxy(proxies) => {
                proxies.heal();
                Ok(())
            }
            Links::Iptables(rules) => rules.heal(),
        }
    }
}

/// Whether a TCP connection from node `from`'s address to `to` (an address with port)
/// completes within `timeout`: the check that an iptables cut really drops packets.
pub async fn can_connect(from: u64, to: &str, timeout: Duration) -> anyhow::Result<bool> {
    let target: SocketAddr = to.parse().with_context(|| format!("address {to}"))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(node_ip(from)?), 0))?;
    Ok(matches!(
        tokio::time::timeout(timeout, socket.connect(target)).await,
        Ok(Ok(_))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_their_own_loopback_address() {
        assert_eq!(node_ip(1).expect("fits").to_string(), "127.0.0.11");
        assert_eq!(node_ip(5).expect("fits").to_string(), "127.0.0.15");
        assert!(node_ip(0).is_err());
        assert!(node_ip(245).is_err());
    }

    #[test]
    fn a_cut_link_drops_its_source_to_destination_packets_in_the_chain() {
        assert_eq!(
            drop_args((1, 3)).expect("valid").join(" "),
            "-w -A MARTELO_JEPSEN -s 127.0.0.11 -d 127.0.0.13 -j DROP"
        );
        assert_eq!(
            setup_args(),
            vec![
                strings(&["-w", "-N", "MARTELO_JEPSEN"]),
                strings(&["-w", "-I", "INPUT", "-j", "MARTELO_JEPSEN"]),
            ]
        );
        assert_eq!(flush_args().join(" "), "-w -F MARTELO_JEPSEN");
    }

    #[test]
    fn a_partition_is_a_flush_then_one_drop_per_directed_link() {
        let cut = crate::proxy::cut_between(&[1, 2, 3], &[vec![1, 2], vec![3]]);
        let commands: Vec<String> = cut_commands(&cut)
            .expect("valid")
            .iter()
            .map(|args| args.join(" "))
            .collect();
        assert_eq!(
            commands,
            vec![
                "-w -F MARTELO_JEPSEN",
                "-w -A MARTELO_JEPSEN -s 127.0.0.11 -d 127.0.0.13 -j DROP",
                "-w -A MARTELO_JEPSEN -s 127.0.0.12 -d 127.0.0.13 -j DROP",
                "-w -A MARTELO_JEPSEN -s 127.0.0.13 -d 127.0.0.11 -j DROP",
                "-w -A MARTELO_JEPSEN -s 127.0.0.13 -d 127.0.0.12 -j DROP",
            ]
        );
        assert_eq!(
            cut_commands(&BTreeSet::new()).expect("valid"),
            vec![flush_args()]
        );
    }

    #[test]
    fn the_outer_process_creates_runs_in_and_deletes_its_namespace() {
        let name = namespace_name(4242);
        assert_eq!(name, "martelo-jepsen-4242");
        assert_eq!(
            netns_add_args(&name).join(" "),
            "netns add martelo-jepsen-4242"
        );
        assert_eq!(
            netns_lo_up_args(&name).join(" "),
            "netns exec martelo-jepsen-4242 ip link set lo up"
        );
        assert_eq!(
            netns_exec_args(
                &name,
                Path::new("/bin/martelo-jepsen"),
                &strings(&["run", "--net", "iptables"])
            )
            .join(" "),
            "netns exec martelo-jepsen-4242 /bin/martelo-jepsen run --net iptables \
             --inside-netns martelo-jepsen-4242"
        );
        assert_eq!(
            netns_del_args(&name).join(" "),
            "netns del martelo-jepsen-4242"
        );
    }
}
