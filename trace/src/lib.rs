//! # martelo-trace: one bid, one trace, across processes
//!
//! Every process (node, gateway) writes `tracing` spans. With an OTLP endpoint configured
//! ([`OtlpConfig`]), [`Exporter::layer`] turns them into OpenTelemetry spans and sends them
//! over OTLP/gRPC; without one, nothing is exported and the helpers below still carry the
//! W3C `traceparent` through, as before.
//!
//! The trace crosses processes in a `traceparent` string:
//!
//! ```text
//!  gateway http/ws span ─► client propose ─► attempt ──(gRPC metadata + ProposeRequest)──►
//!  node propose ─► batch ──(traceparent stored in the Raft entry)──► apply on each replica
//!                                          └─(event record, Subscribe)─► gateway fan-out
//!                                          └─(event record)──────────► sink write
//! ```
//!
//! - [`adopt`] makes a span the child of a received `traceparent` and records its `trace_id`
//!   and `span_id` fields, so JSON log lines inside it carry them;
//! - [`outgoing`] is the `traceparent` to send on: the current span's context when spans are
//!   exported, otherwise the one received;
//! - [`link`] links a span to another trace (a batch of many proposals, a sink batch).
//!
//! Spans that should carry the ids declare the fields [`TRACE_ID`] and [`SPAN_ID`] as
//! `tracing::field::Empty`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The span field that carries the 32-hex-digit trace id into log lines.
pub const TRACE_ID: &str = "trace_id";
/// The span field that carries the 16-hex-digit span id into log lines.
pub const SPAN_ID: &str = "span_id";
/// How many other traces one span links to at most (a batch of proposals, a sink batch):
/// the rest are counted, not linked.
pub const LINKS_MAX: usize = 32;
/// How long the exporter's shutdown waits for the last spans to leave.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

#[cfg(feature = "export")]
mod export;
#[cfg(feature = "export")]
pub use export::{ExportError, Exporter, OtlpConfig};

/// Whether this process exports spans: set once an exporter exists.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans. Hot paths (apply on every replica, fan-out) create
/// their per-entry spans only then, and otherwise log as they did.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The OpenTelemetry context a `traceparent` names, if it is valid.
fn extract(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// The `traceparent` of a span, when spans are exported and the span is recorded by them.
fn traceparent_of(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of `parent` (a received `traceparent`; `None` or an invalid one
/// leaves it a root), then records its [`TRACE_ID`] and [`SPAN_ID`] fields: the exported
/// span's ids, or without export the received trace id. Call it before the span is entered.
pub fn adopt(span: &Span, parent: Option<&str>) {
    if let Some(context) = parent.and_then(extract) {
        // Fails only when no OpenTelemetry layer is installed: then nothing is exported.
        let _ = span.set_parent(context);
    }
    let exported = span.context();
    let exported = exported.span().span_context().clone();
    if exported.is_valid() {
        span.record(TRACE_ID, tracing::field::display(exported.trace_id()));
        span.record(SPAN_ID, tracing::field::display(exported.span_id()));
    } else if let Some(parent) = parent.and_then(extract) {
        span.record(
            TRACE_ID,
            tracing::field::display(parent.span().span_context().trace_id()),
        );
    }
}

/// The `traceparent` to send on from inside `span`: its own context when spans are
/// exported (so the receiver's spans become its children), otherwise `received` unchanged.
pub fn outgoing(span: &Span, received: Option<&str>) -> Option<String> {
    traceparent_of(span).or_else(|| received.map(str::to_owned))
}

/// Links `span` to the span a `traceparent` names (for a span that serves many traces at
/// once). Invalid or absent parents are skipped.
pub fn link(span: &Span, traceparent: Option<&str>) {
    if let Some(context) = traceparent.and_then(extract) {
        span.add_link(context.span().span_context().clone());
    }
}

/// For a span that serves many traces at once (a batch of proposals, a sink batch): the
/// first valid `traceparent` becomes its parent ([`adopt`]), and the next ones, up to
/// [`LINKS_MAX`], links.
pub fn adopt_many<'a>(span: &Span, traceparents: impl IntoIterator<Item = Option<&'a str>>) {
    let mut valid = traceparents
        .into_iter()
        .flatten()
        .filter(|text| extract(text).is_some());
    adopt(span, valid.next());
    for traceparent in valid.take(LINKS_MAX) {
        link(span, Some(traceparent));
    }
}

#[cfg(all(test, feature = "export"))]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn exporting() -> (Exporter, impl tracing::Subscriber) {
        let exporter = Exporter::new(&OtlpConfig {
            // Nothing listens there: spans are built and dropped, which is all these tests need.
            endpoint: "http://127.0.0.1:9".into(),
            service_name: "test".into(),
            sample_ratio: 1.0,
            attributes: vec![],
        })
        .expect("exporter");
        let subscriber = tracing_subscriber::registry().with(exporter.layer());
        (exporter, subscriber)
    }

    #[tokio::test]
    async fn an_adopted_span_joins_the_received_trace_and_sends_its_own_id_on() {
        let (_exporter, subscriber) = exporting();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "child",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            adopt(&span, Some(PARENT));
            let sent = outgoing(&span, Some(PARENT)).expect("an exported span has a traceparent");
            assert!(
                sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{sent}"
            );
            assert!(
                !sent.contains("00f067aa0ba902b7"),
                "the span's own id goes on: {sent}"
            );
            assert!(sent.ends_with("-01"), "sampled: {sent}");
        });
    }

    #[tokio::test]
    async fn a_root_span_starts_a_new_trace() {
        let (_exporter, subscriber) = exporting();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("root");
            adopt(&span, None);
            let sent = outgoing(&span, None).expect("a new trace");
            assert_eq!(sent.len(), PARENT.len());
            assert!(!sent.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn without_export_the_received_traceparent_goes_on_unchanged() {
        let span = tracing::info_span!("no subscriber");
        adopt(&span, Some(PARENT));
        assert_eq!(outgoing(&span, Some(PARENT)).as_deref(), Some(PARENT));
        assert_eq!(outgoing(&span, None), None);
    }

    #[test]
    fn invalid_parents_are_ignored() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(extract(bad).is_none(), "{bad:?}");
        }
        assert!(extract(PARENT).is_some());
    }

    #[tokio::test]
    async fn a_sample_ratio_outside_0_to_1_is_refused() {
        for ratio in [-0.1, 1.5, f64::NAN] {
            let config = OtlpConfig {
                endpoint: "http://127.0.0.1:9".into(),
                service_name: "test".into(),
                sample_ratio: ratio,
                attributes: vec![],
            };
            assert!(matches!(
                Exporter::new(&config),
                Err(ExportError::SampleRatio(_))
            ));
        }
    }
}
