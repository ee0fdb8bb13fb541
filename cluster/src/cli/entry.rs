//! The process-level glue of the `martelo` binary: running a node in the foreground,
//! `martelo demo`, and how a command's error becomes a message on stderr and an exit code.
//!
//! What does not live here: the clap tree and the dispatch ([`super::Command`]), the node
//! itself ([`crate::node`]), and the admin commands' own exit codes ([`super::error`]).

use std::io::Write;
use std::process::ExitCode;

use crate::node::{self, NodeArgs};

/// `martelo node` without a subcommand: resolves the configuration (or prints it with
/// `--print-config`), starts the logs and runs the node until it is stopped.
pub async fn run_node(args: NodeArgs) -> ExitCode {
    let print_config = args.print_config;
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => return fail(&format!("{error:#}"), 2),
    };
    if print_config {
        // `--print-config`: the effective settings, as a config file would hold them.
        return match config.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&format!("{error:#}"), 1),
        };
    }
    let exporter = match node::telemetry::init_logs(config.log_format, config.otlp.as_ref()) {
        Ok(exporter) => exporter,
        Err(error) => return fail(&format!("{error:#}"), 2),
    };
    let code = match node::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "node failed");
            fail(&format!("{error:#}"), 1)
        }
    };
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    code
}

/// `martelo demo`: prints the sample auction's JSON lines.
pub fn demo() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in crate::demo::run()? {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The exit code of a foreground command: 0, or 1 with the error chain on stderr.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&format!("{error:#}"), 1),
    }
}

/// Prints `error: message` on stderr and returns `code` as the exit code.
pub fn fail(message: &str, code: i32) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {message}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
