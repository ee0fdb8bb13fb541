//! The `martelo` binary: parses the command line ([`martelo_cluster::cli::Cli`]), builds the
//! tokio runtime and runs the command. Everything else lives in `martelo_cluster::cli`.

use std::process::ExitCode;

use clap::Parser;
use martelo_cluster::cli::{Cli, entry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return entry::fail(&format!("cannot start the async runtime: {error}"), 1),
    };
    runtime.block_on(cli.command.run())
}
