//! `martelo audit`: the admin audit search over the sink's Postgres, the same search as the
//! gateway's `GET /v1/audit` (both call `martelo_sink::query`), for operators at a shell.
//!
//! It reads Postgres directly (`--postgres`, env `DATABASE_URL`), not the cluster: what it
//! shows lags the cluster by the sink's lag. Output is a table by default, `--json` (one JSON
//! document: `items` and `next_cursor`) or `--csv` (the gateway's CSV; the next cursor, if
//! any, goes to stderr so that stdout stays a clean file).
//!
//! What does not live here: the SQL, limits and cursors (`martelo_sink::query`).

use std::io::Write;

use clap::Args;
use martelo_sink::query::audit::AuditTime;
use martelo_sink::query::{self, AuditFilter, AuditQuery, AuditRow, Limit, PgPool};

use super::CliError;
use super::db::PostgresArgs;

/// `martelo audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub database: PostgresArgs,
    /// Only events about this user (bidder, seller, account).
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<u64>,
    /// Only events done by this user (admin actions, cancellations).
    #[arg(long, value_name = "USER_ID")]
    pub actor: Option<u64>,
    /// Only events of this auction.
    #[arg(long, value_name = "AUCTION_ID")]
    pub auction: Option<u64>,
    /// Only events of this kind (`user_suspended`, `bid_accepted`, …; docs/QUERIES.md).
    #[arg(long)]
    pub kind: Option<String>,
    /// From this time, inclusive: RFC 3339 (`2026-11-29T12:00:00Z`) or microseconds since
    /// the Unix epoch (cluster time).
    #[arg(long, value_name = "TIME")]
    pub from: Option<AuditTime>,
    /// Up to this time, exclusive: RFC 3339 or microseconds since the Unix epoch.
    #[arg(long, value_name = "TIME")]
    pub to: Option<AuditTime>,
    /// Rows: 1 to 200 (default 50); with --csv 1 to 100000 (default 100000).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print one JSON document (`items`, `next_cursor`).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (RFC 4180, with a header line).
    #[arg(long)]
    pub csv: bool,
}

impl AuditArgs {
    /// Runs the search and prints the rows.
    pub async fn execute(&self, out: &mut dyn Write) -> Result<(), CliError> {
        let input = |error: query::QueryError| CliError::Failed(error.to_string());
        let limit = if self.csv {
            Limit::export(self.limit)
        } else {
            Limit::page(self.limit)
        }
        .map_err(input)?;
        let filter = AuditFilter {
            user: self.user,
            actor: self.actor,
            auction: self.auction,
            kind: self.kind.clone(),
            from_us: self.from.map(|time| time.0),
            to_us: self.to.map(|time| time.0),
        };
        let search = AuditQuery::new(&filter, self.cursor.as_deref(), limit).map_err(input)?;
        let url = self.database.url()?;
        let pool: PgPool = query::connect_reader(&url, 1)
            .map_err(|error| CliError::Failed(format!("{url}: {error}")))?;
        let page = query::search_audit(&pool, &search)
            .await
            .map_err(|error| CliError::Failed(format!("{url}: {error}")))?;
        pool.close().await;
        if self.json {
            serde_json::to_writer_pretty(&mut *out, &page)
                .map_err(|error| CliError::Output(error.into()))?;
            writeln!(out)?;
        } else if self.csv {
            out.write_all(query::audit_csv(&page.items).as_bytes())?;
            if let Some(next) = &page.next_cursor {
                // stdout is the CSV file; the cursor to continue from goes beside it.
                writeln!(
                    std::io::stderr(),
                    "more rows: continue with --cursor {next}"
                )?;
            }
        } else {
            out.write_all(render_audit_table(&page.items).as_bytes())?;
            match &page.next_cursor {
                Some(next) => writeln!(out, "more rows: continue with --cursor {next}")?,
                None => writeln!(out, "{} events", page.items.len())?,
            }
        }
        Ok(())
    }
}

/// The rows as a fixed-width table (no payload: `--json` or `--csv` show it).
pub fn render_audit_table(rows: &[AuditRow]) -> String {
    let header = [
        "AT", "GROUP", "INDEX", "POS", "KIND", "AUCTION", "USER", "ACTOR",
    ];
    let optional = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for row in rows {
        lines.push([
            row.at.clone(),
            row.group_id.to_string(),
            row.log_index.to_string(),
            row.position.to_string(),
            row.kind.clone(),
            optional(row.auction_id),
            optional(row.user_id),
            optional(row.actor_id),
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::parse;

    #[test]
    fn the_flags_mirror_the_audit_search() {
        let Command::Audit(args) = parse(&[
            "audit",
            "--postgres",
            "postgres://u@127.0.0.1/db",
            "--user",
            "7",
            "--actor",
            "1",
            "--auction",
            "42",
            "--kind",
            "user_suspended",
            "--from",
            "10",
            "--to",
            "2026-11-29T12:00:00Z",
            "--limit",
            "5",
            "--cursor",
            "e1:1:2:3:4",
            "--json",
        ]) else {
            panic!("not audit");
        };
        assert_eq!(
            (
                args.user,
                args.actor,
                args.auction,
                args.from,
                args.to,
                args.limit
            ),
            (
                Some(7),
                Some(1),
                Some(42),
                Some(AuditTime(10)),
                Some(AuditTime(1_795_953_600_000_000)),
                Some(5)
            )
        );
        assert_eq!(args.kind.as_deref(), Some("user_suspended"));
        assert!(args.json && !args.csv);
    }

    #[test]
    fn the_table_lines_up_and_marks_absent_ids() {
        let row = AuditRow {
            at: "2027-01-15T08:00:00.000000Z".into(),
            at_us: 1_800_000_000_000_000,
            group_id: 0,
            log_index: 12,
            position: 0,
            kind: "user_suspended".into(),
            seq: Some(6),
            auction_id: None,
            user_id: Some(21),
            actor_id: Some(1),
            payload: serde_json::Value::Null,
            trace_id: None,
        };
        let table = render_audit_table(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("AT "), "{table}");
        assert!(
            lines[1].contains("user_suspended  -        21    1"),
            "{table}"
        );
        assert_eq!(lines[0].find("KIND"), lines[1].find("user_suspended"));
    }
}
