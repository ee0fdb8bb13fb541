//! The `martelo` command-line tool.

use std::io::Write;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "martelo",
    version,
    about = "martelo: a replicated real-time auction platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Replay a sample auction through the engine and print every command, reply and event
    /// as JSON lines, then the final state digest. No cluster is involved.
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Demo => {
            let mut out = std::io::stdout().lock();
            for line in martelo_cluster::demo::run()? {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}
