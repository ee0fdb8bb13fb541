//! Reading the nodes' Prometheus endpoints: a plain HTTP/1.1 GET and a parser for the
//! `_sum` and `_count` series of one histogram, summed over every label set.
//!
//! The bench needs two numbers from each node before and after the run, so a few dozen lines
//! of HTTP over a `TcpStream` replace an HTTP client dependency. The parsing is pure and
//! tested without a socket.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest metrics page read.
const RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// A histogram's `_sum` and `_count`, added up over its label sets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistogramTotals {
    pub sum: f64,
    pub count: f64,
}

impl HistogramTotals {
    /// `self - before`, for two scrapes of the same counters.
    pub fn since(self, before: HistogramTotals) -> HistogramTotals {
        HistogramTotals {
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }
}

/// Sums `<name>_sum` and `<name>_count` over every label set in a Prometheus text
/// exposition. `None` when neither series appears (the metric was never recorded).
pub fn parse_histogram_totals(text: &str, name: &str) -> Option<HistogramTotals> {
    let sum_name = format!("{name}_sum");
    let count_name = format!("{name}_count");
    let mut totals = HistogramTotals::default();
    let mut seen = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((metric, value)) = split_sample(line) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        if metric == sum_name {
            totals.sum += value;
            seen = true;
        } else if metric == count_name {
            totals.count += value;
            seen = true;
        }
    }
    seen.then_some(totals)
}

/// Every finite sample of the metric `name` (a counter or a gauge), one per label set.
pub fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(split_sample)
        .filter(move |(metric, _)| *metric == name)
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .filter(|value| value.is_finite())
}

/// Splits `name{labels} value [timestamp]` into the name and the value. Label values may
/// hold spaces, braces and escaped quotes.
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        let mut in_quotes = false;
        let mut escaped = false;
        let mut close = None;
        for (index, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '}' if !in_quotes => {
                    close = Some(index);
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[close? + 1..];
    }
    let value = rest.split_whitespace().next()?;
    Some((name, value))
}

/// Splits `http://host:port/path`, `host:port/path` or `host:port` into the address and
/// the path (default `/metrics`).
pub fn endpoint(address: &str) -> (String, String) {
    let trimmed = address.trim();
    let without_scheme = trimmed.strip_prefix("http://").unwrap_or(trimmed);
    match without_scheme.find('/') {
        Some(slash) => (
            without_scheme[..slash].to_owned(),
            without_scheme[slash..].to_owned(),
        ),
        None => (without_scheme.to_owned(), "/metrics".to_owned()),
    }
}

/// The body of an HTTP/1.x response, which must be `200`. Handles `Content-Length`,
/// chunked transfer coding and bodies delimited by the connection closing.
pub fn decode_http_response(raw: &[u8]) -> anyhow::Result<String> {
    let header_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("the response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..header_end]).context("the headers are not UTF-8")?;
    let body = &raw[header_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        bail!("the endpoint answered {status:?}");
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        if key == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if key == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(length) = length {
        body.get(..length)
            .context("the body is shorter than its Content-Length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    String::from_utf8(body).context("the metrics page is not UTF-8")
}

fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .context("a chunk size line is not terminated")?;
        let size_line = std::str::from_utf8(&body[..line_end]).context("chunk size")?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("bad chunk size {size_hex:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).context("a chunk is cut short")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).context("a chunk lacks its line end")?;
    }
}

/// GETs the metrics page at `address` (see [`endpoint`]) within `timeout`.
pub async fn scrape(address: &str, timeout: Duration) -> anyhow::Result<String> {
    let (host, path) = endpoint(address);
    let fetch = async {
        let mut stream = TcpStream::connect(&host)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(RESPONSE_BYTES_MAX)
            .read_to_end(&mut raw)
            .await?;
        decode_http_response(&raw)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .with_context(|| format!("{address} did not answer within {timeout:?}"))?
        .with_context(|| format!("cannot scrape {address}"))
}

#[cfg(test)]
mod tests {
    use martelo_types::metric_names::PROPOSE_BATCH_ENTRIES;

    #[test]
    fn samples_of_one_metric_cover_every_label_set_and_nothing_else() {
        let page = "# TYPE martelo_sink_lag_entries gauge\n\
                    martelo_sink_lag_entries{group=\"1\"} 4\n\
                    martelo_sink_lag_entries{group=\"2\"} 9\n\
                    martelo_sink_lag_entries_other 100\n\
                    martelo_sink_lag_entries{group=\"3\"} NaN\n";
        let found: Vec<f64> = samples(page, "martelo_sink_lag_entries").collect();
        assert_eq!(found, [4.0, 9.0]);
        assert_eq!(samples(page, "absent").count(), 0);
    }

    use super::*;

    const PAGE: &str = "\
# HELP martelo_propose_batch_entries Commands per client_write_many batch, per group.
# TYPE martelo_propose_batch_entries histogram
martelo_propose_batch_entries_bucket{group=\"1\",le=\"1\"} 3
martelo_propose_batch_entries_bucket{group=\"1\",le=\"+Inf\"} 10
martelo_propose_batch_entries_sum{group=\"1\"} 42
martelo_propose_batch_entries_count{group=\"1\"} 10
martelo_propose_batch_entries_sum{group=\"2\"} 8.5 1700000000000
martelo_propose_batch_entries_count{group=\"2\"} 2
martelo_propose_batch_entries_sum{note=\"a } \\\" tricky\"} 0.5
martelo_propose_batch_entries_count{note=\"a } \\\" tricky\"} 1
martelo_propose_seconds_sum{group=\"1\"} 1000
martelo_propose_batch_entries_total 77
";

    #[test]
    fn histogram_sum_and_count_add_up_over_label_sets() {
        let totals = parse_histogram_totals(PAGE, PROPOSE_BATCH_ENTRIES).expect("present");
        assert_eq!(
            totals,
            HistogramTotals {
                sum: 51.0,
                count: 13.0
            }
        );
        assert_eq!(parse_histogram_totals(PAGE, "martelo_absent"), None);
        let unlabelled = "foo_sum 3\nfoo_count 1\nfoo_sum NaN\n";
        assert_eq!(
            parse_histogram_totals(unlabelled, "foo"),
            Some(HistogramTotals {
                sum: 3.0,
                count: 1.0
            })
        );
        let after = HistogramTotals {
            sum: 60.0,
            count: 15.0,
        };
        assert_eq!(
            after.since(totals),
            HistogramTotals {
                sum: 9.0,
                count: 2.0
            }
        );
    }

    #[test]
    fn http_bodies_are_decoded_by_length_by_chunks_or_to_the_end() {
        let by_length = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(decode_http_response(by_length).expect("ok"), "hello");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(decode_http_response(chunked).expect("ok"), "hello world");
        let to_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        assert_eq!(decode_http_response(to_close).expect("ok"), "all of it");
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert!(decode_http_response(missing).is_err());
        assert!(decode_http_response(b"garbage").is_err());
    }

    #[test]
    fn endpoints_default_to_the_metrics_path() {
        assert_eq!(
            endpoint("127.0.0.1:9100"),
            ("127.0.0.1:9100".into(), "/metrics".into())
        );
        assert_eq!(
            endpoint("http://localhost:9/m"),
            ("localhost:9".into(), "/m".into())
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        assert!(scrape(&address, Duration::from_secs(2)).await.is_err());
    }

    #[tokio::test]
    async fn a_page_served_over_tcp_is_scraped() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{PAGE}",
                PAGE.len()
            );
            socket.write_all(response.as_bytes()).await.expect("write");
        });
        let page = scrape(&address, Duration::from_secs(5))
            .await
            .expect("scraped");
        server.await.expect("server ran");
        assert_eq!(
            parse_histogram_totals(&page, PROPOSE_BATCH_ENTRIES).map(|totals| totals.count),
            Some(13.0)
        );
    }
}
