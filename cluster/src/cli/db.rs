//! `martelo db migrate`: applies the sink's Postgres schema (the workspace's `migrations/`,
//! embedded in the binary) to a database, and prints what it applied.
//!
//! Nodes with `--postgres` migrate by themselves at start; this command is for operators who
//! prepare the database first, or with other credentials. Both are idempotent and safe to
//! run at the same time (sqlx's migrator holds a Postgres advisory lock).

use std::io::Write;

use clap::{Args, Subcommand};

use super::CliError;

/// `martelo db ...`: the sink's Postgres database.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the sink's schema migrations to a Postgres database (idempotent).
    Migrate(DbMigrateArgs),
}

/// The database flag of the commands that read the sink's Postgres.
#[derive(Debug, Clone, Args)]
pub struct PostgresArgs {
    /// The sink's database, `postgres://user@host:port/db`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub postgres: String,
}

impl PostgresArgs {
    /// The checked URL; the error shows it without its password.
    pub fn url(&self) -> Result<martelo_sink::PostgresUrl, CliError> {
        martelo_sink::PostgresUrl::try_from(self.postgres.clone()).map_err(|error| {
            CliError::Failed(format!(
                "--postgres {}: {error}",
                martelo_sink::redact(&self.postgres)
            ))
        })
    }
}

/// `martelo db migrate`.
#[derive(Debug, Args)]
pub struct DbMigrateArgs {
    #[command(flatten)]
    pub database: PostgresArgs,
}

impl DbMigrateArgs {
    /// Applies the pending migrations and prints each migration's version and whether it is
    /// applied now.
    pub async fn execute(&self, out: &mut dyn Write) -> Result<(), CliError> {
        let url = self.database.url()?;
        let pool = martelo_sink::connect_url(&url)
            .map_err(|error| CliError::Failed(format!("{url}: {error}")))?;
        martelo_sink::migrate(&pool)
            .await
            .map_err(|error| CliError::Failed(format!("{url}: {error}")))?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY 1")
                .fetch_all(&pool)
                .await
                .map_err(|error| CliError::Failed(format!("{url}: {error}")))?;
        pool.close().await;
        for migration in martelo_sink::MIGRATOR.iter() {
            let state = if applied.contains(&migration.version) {
                "applied"
            } else {
                "pending"
            };
            writeln!(
                out,
                "{} {} {state}",
                migration.version, migration.description
            )?;
        }
        writeln!(out, "{url}: schema up to date")?;
        Ok(())
    }
}
