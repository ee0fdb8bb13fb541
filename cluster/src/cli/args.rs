//! What every admin subcommand shares: [`Connection`] (`--addr`, how to find the cluster),
//! and the clap value parsers for node addresses, node ids and read consistency.
//!
//! Addresses and node ids are parsed by `martelo_types` ([`parse_address`], [`parse_node`],
//! [`NodeId`]'s `FromStr`), the one set of checks that the node and the dev kit use too; the
//! parsers here only turn their errors into clap's messages. A bad value is a usage error:
//! clap prints it and exits 2 before anything is sent.
//!
//! Node ids stay [`NodeId`]s all the way into the client's admin calls; the client turns
//! them into wire numbers.
//!
//! What does not live here: flags that belong to one command family (`--bids` and
//! `--closing-within` are in [`super::auction`]), and the commands themselves.

use clap::Args;
use clap::builder::TypedValueParser as _;
use martelo_client::client::ReadConsistency;
use martelo_client::error::ClientError;
use martelo_types::{NodeAddress, NodeId, parse_address, parse_node};

use super::error::CliError;

/// How to find the cluster; shared by every admin subcommand.
#[derive(Clone, Debug, Args)]
pub struct Connection {
    /// Address of one or more martelo nodes, comma-separated. Any node of the cluster will
    /// do: the others are found through its address book. Tried in order. Also accepted as
    /// --cluster.
    #[arg(
        long = "addr",
        visible_alias = "cluster",
        env = "MARTELO_ADDR",
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001",
        value_parser = address_arg
    )]
    pub addr: Vec<String>,
}

impl Connection {
    /// The first address, where commands aimed at one node go.
    pub(super) fn first(&self) -> Result<&str, CliError> {
        self.addr.first().map(String::as_str).ok_or_else(|| {
            CliError::Client(ClientError::InvalidInput(
                "no node address given: pass --addr HOST:PORT or set MARTELO_ADDR".to_owned(),
            ))
        })
    }
}

/// A node address flag (`HOST:PORT`), checked by [`parse_address`].
pub(super) fn address_arg(text: &str) -> Result<String, String> {
    parse_address(text).map_err(|error| error.to_string())
}

/// `cluster init --node`: `ID=HOST:PORT`, checked by [`parse_node`].
pub(super) fn node_arg(text: &str) -> Result<NodeAddress, String> {
    parse_node(text).map_err(|error| error.to_string())
}

/// A node id flag (`--id`, `--to`): a whole number from 1 up.
pub(super) fn node_id_arg(text: &str) -> Result<NodeId, String> {
    text.parse::<NodeId>().map_err(|error| error.to_string())
}

/// `--consistency`: the client's levels, by name, with the names listed in `--help`.
pub(super) fn consistency_parser() -> impl clap::builder::TypedValueParser<Value = ReadConsistency>
{
    clap::builder::PossibleValuesParser::new(ReadConsistency::ALL.map(ReadConsistency::as_str))
        .try_map(|name| name.parse::<ReadConsistency>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::parse;

    #[test]
    fn addr_takes_a_comma_separated_list_and_defaults_to_the_local_node() {
        let Command::Status(args) = parse(&["status", "--addr", "a:1,b:2", "--json"]) else {
            panic!("status");
        };
        assert_eq!(args.connection.addr, vec!["a:1", "b:2"]);
        assert!(args.json);
        // The default applies when neither --addr nor MARTELO_ADDR is set.
        if std::env::var_os("MARTELO_ADDR").is_none() {
            let Command::Status(args) = parse(&["status"]) else {
                panic!("status");
            };
            assert_eq!(args.connection.addr, vec!["127.0.0.1:7001"]);
        }
    }

    #[test]
    fn node_specs_and_ids_are_checked_by_martelo_types() {
        assert_eq!(
            node_arg("3=10.1.2.3:7003"),
            Ok(NodeAddress {
                id: NodeId(3),
                address: "10.1.2.3:7003".to_owned()
            })
        );
        assert!(node_arg("3").unwrap_err().contains("ID=HOST:PORT"));
        assert!(node_arg("0=h:1").unwrap_err().contains("reserved"));
        assert!(node_arg("x=h:1").is_err());
        assert!(node_arg("3=h").unwrap_err().contains("HOST:PORT"));
        assert_eq!(node_id_arg("4"), Ok(NodeId(4)));
        assert!(node_id_arg("0").unwrap_err().contains("reserved"));
        assert!(node_id_arg("-1").is_err());
        assert!(address_arg("").is_err());
    }
}
