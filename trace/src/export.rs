//! The OTLP exporter (feature `export`): what the `martelo` binary installs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::{EXPORTING, SHUTDOWN_WAIT};

/// Where and how spans are exported.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// The `service.name` resource attribute, e.g. `martelo-node`.
    pub service_name: String,
    /// The fraction of new traces sampled, 0.0 to 1.0. A span with a sampled remote parent
    /// is always sampled (parent-based), so one trace is never cut in the middle.
    pub sample_ratio: f64,
    /// Extra resource attributes (for example the node id).
    pub attributes: Vec<(String, String)>,
}

/// Longest service name.
pub const SERVICE_NAME_BYTES_MAX: usize = 255;

impl OtlpConfig {
    /// Checks an endpoint: `http://host:port` or `https://host:port`.
    pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
        let address = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
            .ok_or_else(|| "not http://host:port or https://host:port".to_owned())?;
        martelo_types::parse_address(address)
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Checks a service name: 1 to [`SERVICE_NAME_BYTES_MAX`] bytes, no control characters.
    pub fn check_service_name(name: &str) -> Result<(), String> {
        if name.is_empty()
            || name.len() > SERVICE_NAME_BYTES_MAX
            || name.chars().any(char::is_control)
        {
            return Err(format!(
                "1 to {SERVICE_NAME_BYTES_MAX} bytes, no control characters"
            ));
        }
        Ok(())
    }

    /// Checks a sample ratio: 0 to 1.
    pub fn check_sample_ratio(ratio: f64) -> Result<(), String> {
        if (0.0..=1.0).contains(&ratio) {
            Ok(())
        } else {
            Err("outside 0..=1".to_owned())
        }
    }

    /// A checked configuration, the first problem otherwise.
    pub fn new(
        endpoint: &str,
        service_name: &str,
        sample_ratio: f64,
    ) -> Result<OtlpConfig, String> {
        OtlpConfig::check_endpoint(endpoint)
            .map_err(|rule| format!("OTLP endpoint {endpoint:?}: {rule}"))?;
        OtlpConfig::check_service_name(service_name)
            .map_err(|rule| format!("OTLP service name {service_name:?}: {rule}"))?;
        OtlpConfig::check_sample_ratio(sample_ratio)
            .map_err(|rule| format!("OTLP sample ratio {sample_ratio}: {rule}"))?;
        Ok(OtlpConfig {
            endpoint: endpoint.to_owned(),
            service_name: service_name.to_owned(),
            sample_ratio,
            attributes: Vec::new(),
        })
    }
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTLP endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("the sample ratio {0} is not between 0 and 1")]
    SampleRatio(f64),
}

/// The OTLP exporter of one process; flush it with [`Exporter::shutdown`] before exit.
#[derive(Debug)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Builds the exporter. Call it inside a Tokio runtime: the gRPC channel is tonic's.
    /// It connects lazily, so a backend that is down costs dropped spans, never a failed
    /// start or a blocked request.
    pub fn new(config: &OtlpConfig) -> Result<Exporter, ExportError> {
        if !(0.0..=1.0).contains(&config.sample_ratio) || config.sample_ratio.is_nan() {
            return Err(ExportError::SampleRatio(config.sample_ratio));
        }
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| ExportError::Endpoint {
                endpoint: config.endpoint.clone(),
                message: error.to_string(),
            })?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes(
                config
                    .attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Exporter { provider })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("martelo"))
            .with_tracked_inactivity(false)
    }

    /// Sends what is still buffered, waiting at most [`SHUTDOWN_WAIT`].
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_WAIT) {
            tracing::warn!(%error, "the last spans were not all exported");
        }
    }
}
