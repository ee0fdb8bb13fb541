//! The run directory's summary (`summary.json`, `summary.txt`) and report (`report.html`,
//! inline SVG: latency over time per operation type with nemesis intervals shaded, and
//! throughput over time).
//!
//! Everything here is computed from `history.jsonl`, `final.json` and `run.json`, so
//! `martelo-jepsen check DIR` can rebuild it from a run directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checker::{Report, Validity};
use crate::history::{Completion, Function, Operation};
use crate::nemesis::NemesisEvent;

/// What `run` knew about the run; `run.json` in the run directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunInfo {
    pub nodes: usize,
    pub shard_count: u32,
    pub clients: usize,
    pub auctions: usize,
    pub duration_s: f64,
    pub nemeses: Vec<String>,
    pub nemesis_interval_s: f64,
    pub seed: u64,
    pub binary: String,
    #[serde(default)]
    pub planted_bugs: Vec<String>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub nemesis: Vec<NemesisEvent>,
    /// Wall-clock seconds of the whole run (cluster start to report).
    #[serde(default)]
    pub wall_s: f64,
    /// How partitions were made: `proxy` or `iptables` (empty in runs from before the option:
    /// proxies).
    #[serde(default)]
    pub net: String,
    /// How workload clients reached the cluster: `grpc` or `gateway` (empty in runs from
    /// before the option: gRPC).
    #[serde(default)]
    pub via: String,
    /// The sink's database: `private`, `server`, or empty (no sink, no I6 verdict).
    #[serde(default)]
    pub sink: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CountsSummary {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VerdictSummary {
    pub checker: String,
    pub validity: String,
    pub checked: usize,
    pub anomalies_total: usize,
    /// The first few anomalies, as the checker reported them.
    pub anomalies: Vec<serde_json::Value>,
}

/// `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub valid: bool,
    pub verdicts: Vec<VerdictSummary>,
    pub operations: usize,
    pub counts: BTreeMap<String, CountsSummary>,
    pub checker_seconds: f64,
    pub run: RunInfo,
}

/// Anomalies kept in the summary per checker (the checker keeps up to 100).
const SUMMARY_ANOMALIES_MAX: usize = 5;

pub fn function_name(function: Function) -> &'static str {
    match function {
        Function::CreateAuction => "create_auction",
        Function::Bid => "bid",
        Function::Read => "read",
        Function::Close => "close",
    }
}

pub fn summarize(
    operations: &[Operation],
    report: &Report,
    checker_seconds: f64,
    run: RunInfo,
) -> Summary {
    let counts = crate::history::count(operations)
        .into_iter()
        .map(|(function, counts)| {
            let summary = CountsSummary {
                ok: counts.ok,
                fail: counts.fail,
                info: counts.info,
            };
            (function_name(function).to_owned(), summary)
        })
        .collect();
    let verdicts = report
        .verdicts
        .iter()
        .map(|verdict| VerdictSummary {
            checker: verdict.checker.to_owned(),
            validity: match verdict.validity {
                Validity::Valid => "valid",
                Validity::Invalid => "invalid",
                Validity::Unknown => "unknown",
            }
            .to_owned(),
            checked: verdict.checked,
            anomalies_total: verdict.anomalies_total,
            anomalies: verdict
                .anomalies
                .iter()
                .take(SUMMARY_ANOMALIES_MAX)
                .filter_map(|anomaly| serde_json::to_value(anomaly).ok())
                .collect(),
        })
        .collect();
    Summary {
        valid: report.is_valid(),
        verdicts,
        operations: operations.len(),
        counts,
        checker_seconds,
        run,
    }
}

/// `summary.txt`: the same, for people.
pub fn render_text(summary: &Summary) -> String {
    let mut text = String::new();
    let run = &summary.run;
    let _ = writeln!(
        text,
        "martelo-jepsen: {}",
        if summary.valid { "VALID" } else { "INVALID" }
    );
    let _ = writeln!(
        text,
        "cluster: {} nodes, {} shards; {} clients, {} auctions open at a time; {:.0} s of \
         workload (wall {:.0} s); seed {}",
        run.nodes, run.shard_count, run.clients, run.auctions, run.duration_s, run.wall_s, run.seed
    );
    let _ = writeln!(
        text,
        "nemeses: {} every {:.1} s{}; planted bugs: {}",
        if run.nemeses.is_empty() {
            "none".to_owned()
        } else {
            run.nemeses.join(",")
        },
        run.nemesis_interval_s,
        if run.net.is_empty() {
            String::new()
        } else {
            format!(" (partitions: {})", run.net)
        },
        if run.planted_bugs.is_empty() {
            "none".to_owned()
        } else {
            run.planted_bugs.join(",")
        }
    );
    if !run.via.is_empty() {
        let _ = writeln!(text, "clients via: {}", run.via);
    }
    if !run.sink.is_empty() {
        let _ = writeln!(
            text,
            "sink: Postgres ({}), checked against Raft (I6)",
            run.sink
        );
    }
    let _ = writeln!(
        text,
        "\nverdicts (checkers took {:.3} s):",
        summary.checker_seconds
    );
    for verdict in &summary.verdicts {
        let _ = writeln!(
            text,
            "  {:<13} {:<8} checked {:>7}, anomalies {}",
            verdict.checker, verdict.validity, verdict.checked, verdict.anomalies_total
        );
        for anomaly in &verdict.anomalies {
            let mut line = anomaly.to_string();
            if line.len() > 400 {
                let mut cut = 400;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push_str("...");
            }
            let _ = writeln!(text, "      {line}");
        }
    }
    let _ = writeln!(text, "\noperations: {}", summary.operations);
    let _ = writeln!(
        text,
        "  {:<15} {:>7} {:>7} {:>7}",
        "function", "ok", "fail", "info"
    );
    for (function, counts) in &summary.counts {
        let _ = writeln!(
            text,
            "  {:<15} {:>7} {:>7} {:>7}",
            function, counts.ok, counts.fail, counts.info
        );
    }
    let _ = writeln!(text, "\nnemesis timeline ({} faults):", run.nemesis.len());
    for event in &run.nemesis {
        let _ = writeln!(
            text,
            "  {:>7.2} s - {:>7} s  {:<10} {}{}",
            event.start_ns as f64 / 1e9,
            event
                .end_ns
                .map(|end| format!("{:.2}", end as f64 / 1e9))
                .unwrap_or_else(|| "-".to_owned()),
            event.kind.as_str(),
            event.detail,
            event
                .error
                .as_ref()
                .map(|error| format!(" [error: {error}]"))
                .unwrap_or_default()
        );
    }
    if !run.notes.is_empty() {
        let _ = writeln!(text, "\nnotes:");
        for note in &run.notes {
            let _ = writeln!(text, "  - {note}");
        }
    }
    text
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 130.0;
const MARGIN_TOP: f64 = 20.0;
const MARGIN_BOTTOM: f64 = 40.0;
/// Points drawn per plot; beyond this the operations are sampled evenly.
const POINTS_MAX: usize = 20_000;

fn color(function: Function) -> &'static str {
    match function {
        Function::Bid => "#1f77b4",
        Function::Read => "#2ca02c",
        Function::CreateAuction => "#9467bd",
        Function::Close => "#ff7f0e",
    }
}

fn nemesis_color(event: &NemesisEvent) -> &'static str {
    use crate::nemesis::NemesisKind::*;
    match event.kind {
        Kill => "#d62728",
        Pause => "#8c564b",
        Partition => "#e377c2",
        Clock => "#bcbd22",
        Membership => "#17becf",
        Transfer => "#7f7f7f",
        Gateway => "#2ca02c",
        Postgres => "#1f77b4",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Frame {
    t_max: f64,
}

impl Frame {
    fn x(&self, seconds: f64) -> f64 {
        MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) * (seconds / self.t_max)
    }

    fn plot_height(&self) -> f64 {
        HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    }

    fn open(&self, svg: &mut String, title: &str) {
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11"><title>{}</title><rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#,
            escape(title)
        );
    }

    fn shade(&self, svg: &mut String, nemesis: &[NemesisEvent]) {
        for event in nemesis {
            let start = event.start_ns as f64 / 1e9;
            let end = event.end_ns.map_or(self.t_max, |end| end as f64 / 1e9);
            let x = self.x(start);
            let width = (self.x(end) - x).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{MARGIN_TOP}" width="{width:.1}" height="{:.1}" fill="{}" fill-opacity="0.15"><title>{} {:.1}-{:.1} s: {}</title></rect>"#,
                self.plot_height(),
                nemesis_color(event),
                event.kind.as_str(),
                start,
                end,
                escape(&event.detail)
            );
        }
    }

    /// A horizontal grid line at height `y`, labelled on the left.
    fn y_tick(svg: &mut String, y: f64, label: &str) {
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">{label}</text>"##,
            y,
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 4.0,
            y + 4.0
        );
    }

    fn time_axis(&self, svg: &mut String) {
        let bottom = HEIGHT - MARGIN_BOTTOM;
        let _ = write!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#333"/>"##,
            WIDTH - MARGIN_RIGHT
        );
        let step = nice_step(self.t_max / 10.0);
        let mut tick = 0.0;
        while tick <= self.t_max {
            let x = self.x(tick);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{tick}</text>"##,
                bottom + 4.0,
                bottom + 16.0
            );
            tick += step;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"#,
            (MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2.0,
            HEIGHT - 6.0
        );
    }

    fn legend(&self, svg: &mut String, entries: &[(String, &str)]) {
        for (index, (label, fill)) in entries.iter().enumerate() {
            let y = MARGIN_TOP + 14.0 * index as f64 + 8.0;
            let x = WIDTH - MARGIN_RIGHT + 10.0;
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{fill}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                y - 8.0,
                x + 14.0,
                y + 1.0,
                escape(label)
            );
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    for factor in [1.0, 2.0, 5.0, 10.0] {
        if raw <= factor * magnitude {
            return factor * magnitude;
        }
    }
    10.0 * magnitude
}

/// Latency (log scale) of every completed operation at its invoke time; `info` operations
/// are drawn at the top as open circles.
pub fn latency_svg(operations: &[Operation], nemesis: &[NemesisEvent], t_max: f64) -> String {
    let frame = Frame { t_max };
    let mut svg = String::new();
    frame.open(&mut svg, "latency");
    frame.shade(&mut svg, nemesis);
    // Log scale from 0.1 ms to 100 s.
    let (low, high) = (-1.0f64, 5.0f64);
    let y = |ms: f64| {
        let value = ms.max(0.1).log10().clamp(low, high);
        MARGIN_TOP + frame.plot_height() * (1.0 - (value - low) / (high - low))
    };
    for exponent in -1..=5 {
        let ms = 10f64.powi(exponent);
        let label = if ms < 1.0 {
            "0.1 ms".to_owned()
        } else if ms < 1000.0 {
            format!("{ms} ms")
        } else {
            format!("{} s", ms / 1000.0)
        };
        Frame::y_tick(&mut svg, y(ms), &label);
    }
    let stride = operations.len().div_ceil(POINTS_MAX).max(1);
    for operation in operations.iter().step_by(stride) {
        let function = operation.call.function();
        if function == Function::Close {
            continue;
        }
        let x = frame.x(operation.invoke_ns as f64 / 1e9);
        let fill = color(function);
        match (&operation.completion, operation.complete_ns) {
            (Completion::Info, _) | (_, None) => {
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{MARGIN_TOP}" r="2.5" fill="none" stroke="{fill}"/>"#
                );
            }
            (completion, Some(complete)) => {
                let ms = complete.saturating_sub(operation.invoke_ns) as f64 / 1e6;
                let opacity = if matches!(completion, Completion::Fail) {
                    0.3
                } else {
                    0.6
                };
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{:.1}" r="1.5" fill="{fill}" fill-opacity="{opacity}"/>"#,
                    y(ms)
                );
            }
        }
    }
    frame.time_axis(&mut svg);
    let legend: Vec<(String, &str)> = [Function::Bid, Function::Read, Function::CreateAuction]
        .into_iter()
        .map(|f| (function_name(f).to_owned(), color(f)))
        .collect();
    frame.legend(&mut svg, &legend);
    svg.push_str("</svg>");
    svg
}

/// Completed `ok` operations per second, one line per function.
pub fn throughput_svg(operations: &[Operation], nemesis: &[NemesisEvent], t_max: f64) -> String {
    let frame = Frame { t_max };
    let seconds = t_max.ceil() as usize + 1;
    let mut series: BTreeMap<Function, Vec<u64>> = BTreeMap::new();
    for operation in operations {
        if let (Completion::Ok(_), Some(complete)) = (&operation.completion, operation.complete_ns)
        {
            let bucket = ((complete / 1_000_000_000) as usize).min(seconds - 1);
            series
                .entry(operation.call.function())
                .or_insert_with(|| vec![0; seconds])[bucket] += 1;
        }
    }
    let peak = series
        .values()
        .flat_map(|counts| counts.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let y_max = nice_step(peak / 4.0) * 4.0;
    let y = |value: f64| MARGIN_TOP + frame.plot_height() * (1.0 - value / y_max);
    let mut svg = String::new();
    frame.open(&mut svg, "throughput");
    frame.shade(&mut svg, nemesis);
    for tick in 0..=4 {
        let value = y_max * f64::from(tick) / 4.0;
        Frame::y_tick(&mut svg, y(value), &format!("{value}/s"));
    }
    for (function, counts) in &series {
        let points: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(second, &count)| {
                format!("{:.1},{:.1}", frame.x(second as f64 + 0.5), y(count as f64))
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            color(*function),
            points.join(" ")
        );
    }
    frame.time_axis(&mut svg);
    let legend: Vec<(String, &str)> = series
        .keys()
        .map(|&f| (format!("{} ok/s", function_name(f)), color(f)))
        .collect();
    frame.legend(&mut svg, &legend);
    svg.push_str("</svg>");
    svg
}

/// `report.html`: the summary text, the two plots and the nemesis legend.
pub fn render_html(summary: &Summary, operations: &[Operation]) -> String {
    let t_max = operations
        .iter()
        .flat_map(|operation| [Some(operation.invoke_ns), operation.complete_ns])
        .flatten()
        .chain(summary.run.nemesis.iter().filter_map(|event| event.end_ns))
        .max()
        .unwrap_or(1_000_000_000) as f64
        / 1e9;
    let t_max = t_max.max(1.0);
    let nemesis = &summary.run.nemesis;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>martelo-jepsen: {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}\
         .valid{{color:#2a7d2a}}.invalid{{color:#c62828}}</style></head><body>",
        if summary.valid { "valid" } else { "INVALID" }
    );
    let _ = write!(
        html,
        "<h1>martelo-jepsen run: <span class=\"{0}\">{0}</span></h1>",
        if summary.valid { "valid" } else { "invalid" }
    );
    html.push_str(
        "<h2>Latency by operation</h2><p>Each dot is one operation at its invoke \
        time; open circles at the top are operations with an unknown outcome (info). \
        Shaded bands are nemesis faults (hover for details).</p>",
    );
    html.push_str(&latency_svg(operations, nemesis, t_max));
    html.push_str("<h2>Throughput</h2><p>Operations completed ok per second.</p>");
    html.push_str(&throughput_svg(operations, nemesis, t_max));
    html.push_str("<h2>Nemesis colours</h2><p>");
    for (kind, sample) in [
        ("kill", "#d62728"),
        ("pause", "#8c564b"),
        ("partition", "#e377c2"),
        ("clock", "#bcbd22"),
        ("membership", "#17becf"),
        ("transfer", "#7f7f7f"),
    ] {
        let _ = write!(
            html,
            "<span style=\"background:{sample};opacity:0.5;padding:0 1em;margin-right:4px\">\
             </span>{kind} &nbsp; "
        );
    }
    html.push_str("</p><h2>Summary</h2><pre>");
    html.push_str(&escape(&render_text(summary)));
    html.push_str("</pre></body></html>\n");
    html
}

/// Writes `summary.json`, `summary.txt` and `report.html` into `dir`.
pub fn write_all(dir: &Path, summary: &Summary, operations: &[Operation]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    std::fs::write(dir.join("summary.txt"), render_text(summary))?;
    std::fs::write(dir.join("report.html"), render_html(summary, operations))?;
    Ok(())
}
