//! The plot: throughput (top) and latency (bottom, log scale) per second, as a standalone SVG
//! written by hand. Two panels of lines do not need a plotting library.
//!
//! Every series is one `<path>` with a `data-series` attribute naming it, so tools and tests
//! can find them; a second without a latency sample leaves a gap in the line.

use std::fmt::Write as _;

use crate::record::SecondRow;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 640.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP_PANEL: (f64, f64) = (50.0, 290.0);
const BOTTOM_PANEL: (f64, f64) = (350.0, 590.0);

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * power)
}

fn format_count(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{}M", value / 1_000_000.0)
    } else if value >= 1_000.0 {
        format!("{}k", value / 1_000.0)
    } else {
        format!("{value}")
    }
}

fn format_latency(micros: f64) -> String {
    if micros >= 1_000_000.0 {
        format!("{} s", micros / 1_000_000.0)
    } else if micros >= 1_000.0 {
        format!("{} ms", micros / 1_000.0)
    } else {
        format!("{micros} µs")
    }
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    dashed: bool,
    values: Vec<Option<f64>>,
}

/// A line of a panel as a table row: its legend name, its colour, whether it is dashed, and
/// the column of [`SecondRow`] it plots.
type Line<T> = (&'static str, &'static str, bool, fn(&SecondRow) -> T);

/// The top panel: what happened to the bids each second.
const THROUGHPUT_LINES: [Line<u64>; 4] = [
    ("decided", "#222222", false, |row| row.decided),
    ("accepted", "#2a9d3a", false, |row| row.accepted),
    ("rejected", "#e07b00", false, |row| row.rejected),
    ("errors", "#c0392b", true, |row| row.errors + row.unknown),
];

/// The bottom panel: latency percentiles each second (none in a second without answers).
const LATENCY_LINES: [Line<Option<u64>>; 3] = [
    ("p50", "#1f77b4", false, |row| row.p50_us),
    ("p99", "#9b59b6", false, |row| row.p99_us),
    ("max", "#7f7f7f", true, |row| row.max_us),
];

/// The series of a panel's `lines`, each plotting what `values` makes of its column.
fn series<T>(
    lines: &[Line<T>],
    values: impl Fn(fn(&SecondRow) -> T) -> Vec<Option<f64>>,
) -> Vec<Series<'static>> {
    lines
        .iter()
        .map(|&(name, color, dashed, pick)| Series {
            name,
            color,
            dashed,
            values: values(pick),
        })
        .collect()
}

/// Maps a second's index to x.
fn x_of(index: usize, count: usize) -> f64 {
    let width = WIDTH - LEFT - RIGHT;
    if count <= 1 {
        LEFT + width / 2.0
    } else {
        LEFT + width * index as f64 / (count - 1) as f64
    }
}

fn path(series: &Series<'_>, count: usize, y_of: &dyn Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (index, value) in series.values.iter().enumerate() {
        match value {
            Some(value) => {
                let command = if pen_down { 'L' } else { 'M' };
                let _ = write!(d, "{command}{:.1},{:.1} ", x_of(index, count), y_of(*value));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let dash = if series.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    format!(
        "<path data-series=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{dash}/>\n",
        escape(series.name),
        d.trim_end(),
        series.color
    )
}

fn legend(out: &mut String, top: f64, series: &[Series<'_>]) {
    let x = WIDTH - RIGHT + 16.0;
    for (row, series) in series.iter().enumerate() {
        let y = top + 10.0 + row as f64 * 20.0;
        let dash = if series.dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
            x + 24.0,
            series.color
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\">{}</text>",
            x + 30.0,
            y + 4.0,
            escape(series.name)
        );
    }
}

fn frame(out: &mut String, (top, bottom): (f64, f64), label: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>",
        WIDTH - LEFT - RIGHT,
        bottom - top
    );
    let middle = (top + bottom) / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"18\" y=\"{middle}\" transform=\"rotate(-90 18 {middle})\" text-anchor=\"middle\">{}</text>",
        escape(label)
    );
}

fn y_tick(out: &mut String, y: f64, label: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>",
        WIDTH - RIGHT
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        LEFT - 6.0,
        y + 4.0,
        escape(label)
    );
}

/// Renders the per-second rows as an SVG document.
pub fn render(title: &str, rows: &[SecondRow]) -> String {
    let count = rows.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"28\" font-size=\"16\">{}</text>",
        escape(title)
    );

    // Throughput.
    let throughput = series(&THROUGHPUT_LINES, |pick| {
        rows.iter().map(|row| Some(pick(row) as f64)).collect()
    });
    frame(&mut out, TOP_PANEL, "bids per second");
    let highest = throughput
        .iter()
        .flat_map(|series| series.values.iter().flatten())
        .fold(0.0f64, |max, value| max.max(*value));
    let ceiling = nice_ceiling(highest);
    let (top, bottom) = TOP_PANEL;
    let y_count = move |value: f64| bottom - (value / ceiling) * (bottom - top);
    for step in 0..=4 {
        let value = ceiling * f64::from(step) / 4.0;
        y_tick(&mut out, y_count(value), &format_count(value));
    }
    for series in &throughput {
        out.push_str(&path(series, count, &y_count));
    }
    legend(&mut out, top, &throughput);

    // Latency, log scale: the tail is orders of magnitude above the median.
    let latency = series(&LATENCY_LINES, |pick| {
        rows.iter()
            .map(|row| pick(row).map(|micros| micros.max(1) as f64))
            .collect()
    });
    frame(&mut out, BOTTOM_PANEL, "latency (log scale)");
    let samples: Vec<f64> = latency
        .iter()
        .flat_map(|series| series.values.iter().flatten().copied())
        .collect();
    let lowest = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = samples.iter().copied().fold(0.0f64, f64::max);
    let (low_exp, mut high_exp) = if samples.is_empty() {
        (2, 5)
    } else {
        (lowest.log10().floor() as i32, highest.log10().ceil() as i32)
    };
    if high_exp <= low_exp {
        high_exp = low_exp + 1;
    }
    let (top, bottom) = BOTTOM_PANEL;
    let span = f64::from(high_exp - low_exp);
    let y_latency = move |micros: f64| {
        let position = (micros.log10() - f64::from(low_exp)) / span;
        bottom - position * (bottom - top)
    };
    for exponent in low_exp..=high_exp {
        let micros = 10f64.powi(exponent);
        y_tick(&mut out, y_latency(micros), &format_latency(micros));
    }
    for series in &latency {
        out.push_str(&path(series, count, &y_latency));
    }
    legend(&mut out, top, &latency);

    // Shared x axis: seconds since the measurement began.
    let label_every = (count / 10).max(1);
    for index in (0..count).step_by(label_every) {
        let x = x_of(index, count);
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 16.0,
            rows[index].second
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">seconds since the measurement began</text>",
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        bottom + 36.0
    );
    if count == 0 {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">no data</text>",
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            (TOP_PANEL.0 + TOP_PANEL.1) / 2.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal XML well-formedness check: tags nest and close, attributes are quoted,
    /// and no bare `&` or `<` appears in text. Enough for output this module writes.
    fn check_well_formed(xml: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open])?;
            let after = &rest[open + 1..];
            let close = after.find('>').ok_or("unterminated tag")?;
            let tag = &after[..close];
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .ok_or(format!("</{name}> without an opening tag"))?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                stack.push(name.to_owned());
            }
            rest = &after[close + 1..];
        }
        check_text(rest)?;
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    fn check_text(text: &str) -> Result<(), String> {
        for (index, _) in text.match_indices('&') {
            let entity = &text[index..];
            let known = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
            if !known.iter().any(|known| entity.starts_with(known)) {
                return Err(format!("bare & in {text:?}"));
            }
        }
        Ok(())
    }

    fn rows() -> Vec<SecondRow> {
        (0..5)
            .map(|second| SecondRow {
                second,
                decided: 100 + second * 10,
                accepted: 40,
                rejected: 60 + second * 10,
                errors: u64::from(second == 3),
                unknown: 0,
                p50_us: (second != 2).then_some(900 + second * 100),
                p99_us: (second != 2).then_some(5_000),
                max_us: (second != 2).then_some(250_000),
            })
            .collect()
    }

    fn series<'a>(svg: &'a str, name: &str) -> &'a str {
        let marker = format!("data-series=\"{name}\" d=\"");
        let start = svg
            .find(&marker)
            .unwrap_or_else(|| panic!("no series {name}"))
            + marker.len();
        let end = svg[start..].find('"').expect("closing quote") + start;
        &svg[start..end]
    }

    #[test]
    fn the_plot_is_well_formed_svg_with_every_series() {
        let svg = render("hot <auction> & friends", &rows());
        check_well_formed(&svg).expect("well-formed");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("hot &lt;auction&gt; &amp; friends"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        for name in ["decided", "accepted", "rejected", "errors"] {
            let d = series(&svg, name);
            assert_eq!(d.matches(['M', 'L']).count(), 5, "{name}: {d}");
        }
        // Second 2 had no latency sample: the latency lines break there.
        for name in ["p50", "p99", "max"] {
            let d = series(&svg, name);
            assert_eq!(d.matches('M').count(), 2, "{name}: {d}");
            assert_eq!(d.matches('L').count(), 2, "{name}: {d}");
        }
    }

    #[test]
    fn an_empty_run_still_renders_a_valid_plot() {
        let svg = render("empty", &[]);
        check_well_formed(&svg).expect("well-formed");
        assert!(svg.contains("no data"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn the_checker_itself_rejects_broken_documents() {
        assert!(check_well_formed("<svg><g></svg>").is_err());
        assert!(check_well_formed("<svg>a & b</svg>").is_err());
        assert!(check_well_formed("<svg><path d=\"M0/></svg>").is_err());
    }

    #[test]
    fn axes_use_nice_round_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(4_500.0), 5_000.0);
        assert_eq!(nice_ceiling(1_000.0), 1_000.0);
    }
}
