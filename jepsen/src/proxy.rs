//! Fault-injecting TCP proxies, one per directed peer link, for unprivileged partitions.
//!
//! Node `a` is started with `--test-dial-override b=127.0.0.1:<port of link a->b>`, so every
//! connection `a` opens to `b` (Raft RPCs and their answers) goes through the proxy of link
//! `a -> b`. Blocking a link closes its open connections and refuses new ones (the
//! connection is accepted and dropped at once), which the node sees as a lost peer.
//! Clients are not proxied: they reach nodes directly, as in Jepsen.
//!
//! ```text
//!   node a ──dial b──► proxy(a->b) ──► node b        blocked: accept, then close
//!   node b ──dial a──► proxy(b->a) ──► node a
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A directed link: `from` dials `to`.
pub type Link = (u64, u64);

/// The proxies of every directed link between `nodes`, running on the current runtime.
#[derive(Debug)]
pub struct LinkProxies {
    links: BTreeMap<Link, LinkProxy>,
}

#[derive(Debug)]
struct LinkProxy {
    port: u16,
    /// `true` while the link is cut.
    blocked: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for LinkProxies {
    fn drop(&mut self) {
        for proxy in self.links.values() {
            proxy.task.abort();
        }
    }
}

impl LinkProxies {
    /// Binds one proxy per directed link between nodes, forwarding to `targets[to]`.
    pub async fn start(targets: &BTreeMap<u64, String>) -> std::io::Result<LinkProxies> {
        let mut links = BTreeMap::new();
        for &from in targets.keys() {
            for (&to, target) in targets {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
                let port = listener.local_addr()?.port();
                let (blocked, watcher) = watch::channel(false);
                let target = Arc::new(target.clone());
                let task = tokio::spawn(accept_loop(listener, target, watcher));
                links.insert(
                    (from, to),
                    LinkProxy {
                        port,
                        blocked,
                        task,
                    },
                );
            }
        }
        Ok(LinkProxies { links })
    }

    /// The `--test-dial-override` arguments of node `from`.
    pub fn dial_overrides(&self, from: u64) -> Vec<String> {
        self.links
            .iter()
            .filter(|((source, _), _)| *source == from)
            .flat_map(|((_, to), proxy)| {
                [
                    "--test-dial-override".to_owned(),
                    format!("{to}=127.0.0.1:{}", proxy.port),
                ]
            })
            .collect()
    }

    /// Cuts exactly `cut` (both directions must be listed to cut both) and heals the rest.
    pub fn set_blocked(&self, cut: &BTreeSet<Link>) {
        for (link, proxy) in &self.links {
            let blocked = cut.contains(link);
            proxy.blocked.send_if_modified(|current| {
                let changed = *current != blocked;
                *current = blocked;
                changed
            });
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        self.set_blocked(&BTreeSet::new());
    }
}

async fn accept_loop(listener: TcpListener, target: Arc<String>, blocked: watch::Receiver<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if *blocked.borrow() {
            drop(inbound);
            continue;
        }
        let target = Arc::clone(&target);
        let mut blocked = blocked.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target.as_str()).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (mut inbound, mut outbound) = (inbound, outbound);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = blocked.wait_for(|blocked| *blocked) => {}
            }
            // Dropping both streams closes the connection on both sides.
        });
    }
}

/// Which links to cut so that nodes only talk within their side: every link between nodes
/// of different `sides`, both directions. A node in no side is cut from everyone.
pub fn cut_between(nodes: &[u64], sides: &[Vec<u64>]) -> BTreeSet<Link> {
    let side_of = |node: u64| sides.iter().position(|side| side.contains(&node));
    let mut cut = BTreeSet::new();
    for &a in nodes {
        for &b in nodes {
            if a != b && (side_of(a).is_none() || side_of(a) != side_of(b)) {
                cut.insert((a, b));
            }
        }
    }
    cut
}

/// Cuts every link except those between `allowed` pairs (both directions kept).
pub fn cut_except(nodes: &[u64], allowed: &[(u64, u64)]) -> BTreeSet<Link> {
    let mut cut = BTreeSet::new();
    for &a in nodes {
        for &b in nodes {
            let kept = allowed.contains(&(a, b)) || allowed.contains(&(b, a));
            if a != b && !kept {
                cut.insert((a, b));
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_minority_split_cuts_only_links_across_sides() {
        let cut = cut_between(&[1, 2, 3], &[vec![1, 2], vec![3]]);
        assert_eq!(cut, BTreeSet::from([(1, 3), (3, 1), (2, 3), (3, 2)]));
    }

    #[test]
    fn a_ring_keeps_only_neighbours() {
        let cut = cut_except(&[1, 2, 3, 4], &[(1, 2), (2, 3), (3, 4), (4, 1)]);
        assert_eq!(cut, BTreeSet::from([(1, 3), (3, 1), (2, 4), (4, 2)]));
    }

    #[tokio::test]
    async fn a_blocked_link_closes_connections_and_a_healed_one_forwards() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let echo = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let echo_address = echo.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = echo.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let targets = BTreeMap::from([(1, "127.0.0.1:1".to_owned()), (2, echo_address)]);
        let proxies = LinkProxies::start(&targets).await.expect("proxies");
        let overrides = proxies.dial_overrides(1);
        let address = overrides[1]
            .split_once('=')
            .expect("id=address")
            .1
            .to_owned();
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream.write_all(b"ping").await.expect("write");
        let mut buffer = [0u8; 4];
        stream.read_exact(&mut buffer).await.expect("echo");
        assert_eq!(&buffer, b"ping");

        proxies.set_blocked(&BTreeSet::from([(1, 2)]));
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut rest),
        )
        .await
        .expect("closed in time");
        assert_eq!(read.expect("eof"), 0);

        proxies.heal();
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream.write_all(b"pong").await.expect("write");
        stream.read_exact(&mut buffer).await.expect("echo");
        assert_eq!(&buffer, b"pong");
    }
}
