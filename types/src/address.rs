//! Node addresses: `HOST:PORT`, and `ID=HOST:PORT` as `--peers`, `--dial` and `cluster init`
//! write them. One parser with one set of checks for the node, the CLI and the dev kit.

use std::collections::BTreeMap;

use crate::ids::{InvalidNodeId, NodeId};

/// The longest address accepted (a DNS name is at most 253 bytes, plus `:65535`).
pub const ADDRESS_BYTES_MAX: usize = 262;
/// Most nodes in one `ID=HOST:PORT,...` list.
pub const NODE_LIST_MAX: usize = 1024;

/// Why an address or an address list was refused. The message names the bad text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address {0:?} is not HOST:PORT")]
    NotHostPort(String),
    #[error("{0:?} is not ID=HOST:PORT")]
    NotIdAddress(String),
    #[error("in {text:?}: {source}")]
    BadId {
        text: String,
        #[source]
        source: InvalidNodeId,
    },
    #[error("node {0} is named twice")]
    Duplicate(NodeId),
    #[error("more than {NODE_LIST_MAX} nodes")]
    TooMany,
}

/// One node and the address that serves all of its APIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddress {
    pub id: NodeId,
    pub address: String,
}

/// A node address, `HOST:PORT`: a non-empty host (a name, an IPv4 address or a bracketed IPv6
/// address) and a port number. Surrounding blanks are trimmed.
pub fn parse_address(text: &str) -> Result<String, AddressError> {
    let address = text.trim();
    let valid = address.len() <= ADDRESS_BYTES_MAX
        && address
            .rsplit_once(':')
            .is_some_and(|(host, port)| host_is_plausible(host) && port.parse::<u16>().is_ok());
    if !valid {
        return Err(AddressError::NotHostPort(address.to_owned()));
    }
    Ok(address.to_owned())
}

fn host_is_plausible(host: &str) -> bool {
    !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=')
}

/// `ID=HOST:PORT`.
pub fn parse_node(text: &str) -> Result<NodeAddress, AddressError> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| AddressError::NotIdAddress(text.to_owned()))?;
    let id = id.parse::<NodeId>().map_err(|source| AddressError::BadId {
        text: text.to_owned(),
        source,
    })?;
    Ok(NodeAddress {
        id,
        address: parse_address(address)?,
    })
}

/// A list of `ID=HOST:PORT` items (as separate arguments, or one comma-separated argument, or
/// both); blank items are skipped. A node named twice is refused.
pub fn parse_nodes<S: AsRef<str>>(items: &[S]) -> Result<BTreeMap<NodeId, String>, AddressError> {
    let mut nodes = BTreeMap::new();
    for item in items.iter().flat_map(|item| item.as_ref().split(',')) {
        if item.trim().is_empty() {
            continue;
        }
        let node = parse_node(item)?;
        if nodes.insert(node.id, node.address).is_some() {
            return Err(AddressError::Duplicate(node.id));
        }
        if nodes.len() > NODE_LIST_MAX {
            return Err(AddressError::TooMany);
        }
    }
    Ok(nodes)
}

/// The `ID=HOST:PORT,...` form that [`parse_nodes`] reads, in the given order.
pub fn format_peers<'a>(peers: impl IntoIterator<Item = (NodeId, &'a str)>) -> String {
    peers
        .into_iter()
        .map(|(id, address)| format!("{id}={address}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_host_and_a_port() {
        assert_eq!(
            parse_address(" 127.0.0.1:7001 "),
            Ok("127.0.0.1:7001".into())
        );
        assert_eq!(parse_address("[::1]:7001"), Ok("[::1]:7001".into()));
        assert_eq!(
            parse_address("node-1.example:80"),
            Ok("node-1.example:80".into())
        );
        for bad in [
            "nowhere",
            ":7001",
            "host:",
            "host:70000",
            "a b:1",
            "a=b:1",
            "",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}:1", "h".repeat(ADDRESS_BYTES_MAX));
        assert!(parse_address(&long).is_err());
    }

    #[test]
    fn node_lists_parse_with_one_set_of_checks_and_round_trip() {
        let nodes = parse_nodes(&["1=127.0.0.1:7001,2=127.0.0.1:7002", " ", "3=h:7003"])
            .expect("valid list");
        assert_eq!(
            nodes.keys().copied().collect::<Vec<_>>(),
            vec![NodeId(1), NodeId(2), NodeId(3)]
        );
        let text = format_peers(nodes.iter().map(|(id, a)| (*id, a.as_str())));
        assert_eq!(text, "1=127.0.0.1:7001,2=127.0.0.1:7002,3=h:7003");
        assert_eq!(parse_nodes(&[text]).expect("round trip"), nodes);

        assert_eq!(
            parse_nodes(&["1=a:1", "1=b:2"]),
            Err(AddressError::Duplicate(NodeId(1)))
        );
        assert!(matches!(
            parse_nodes(&["0=a:1"]),
            Err(AddressError::BadId {
                source: InvalidNodeId::Zero,
                ..
            })
        ));
        assert!(matches!(
            parse_nodes(&["a:1"]),
            Err(AddressError::NotIdAddress(_))
        ));
        assert!(matches!(
            parse_nodes(&["1=nowhere"]),
            Err(AddressError::NotHostPort(_))
        ));
        let many: Vec<String> = (1..=NODE_LIST_MAX as u64 + 1)
            .map(|i| format!("{i}=h:1"))
            .collect();
        assert_eq!(parse_nodes(&many), Err(AddressError::TooMany));
    }
}
