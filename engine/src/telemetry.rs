//! Logs and metrics: `tracing` subscriber setup and the Prometheus recorder.
//!
//! Metric names follow `threatflow_<noun>_<unit>[_total]` with bounded labels (`topic`,
//! `partition`, `operator`, `reason`, `stage`). They are declared here once, with their help
//! text, so the exposition and the dashboards agree on one list.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Input records read, by topic.
pub const EVENTS_CONSUMED: &str = "threatflow_events_consumed_total";
/// Events scored by an operator, by operator.
pub const EVENTS_SCORED: &str = "threatflow_events_scored_total";
/// Dead-letter records written (acknowledged by the broker), by reason and input topic.
pub const DEAD_LETTERS: &str = "threatflow_dead_letters_total";
/// Failed deliveries of output records (each is retried), by topic.
pub const PRODUCE_ERRORS: &str = "threatflow_produce_errors_total";
/// Messages behind the partition's high watermark, by topic and partition.
pub const CONSUMER_LAG: &str = "threatflow_consumer_lag_messages";
/// Partitions currently assigned to this instance.
pub const ASSIGNED_PARTITIONS: &str = "threatflow_assigned_partitions";
/// Inputs read but not yet fully acknowledged.
pub const INFLIGHT_EVENTS: &str = "threatflow_inflight_events";
/// Time of one pipeline stage over one batch, by operator and stage (decode, score, emit).
pub const BATCH_DURATION: &str = "threatflow_batch_duration_seconds";
/// Events per batch handed to an operator, by operator.
pub const BATCH_SIZE: &str = "threatflow_batch_size_events";
/// Offset commits that failed, by cause (revoke, shutdown).
pub const COMMIT_ERRORS: &str = "threatflow_commit_errors_total";
/// Counter: alerts scored by the alert operator, by predicted disposition (4 values).
pub const ALERT_DISPOSITIONS: &str = "threatflow_alert_dispositions_total";
/// Counter: addresses scored by the address operator, by decision (allow, review, block).
pub const ADDRESS_DECISIONS: &str = "threatflow_address_decisions_total";
/// Histogram: prompt tokenization time per operator batch (all views and chunks).
pub const PROMPT_TOKENIZE_DURATION: &str = "threatflow_prompt_tokenize_seconds";
/// Histogram: time a prompt sequence waited in the L2 batcher's queue before its batch ran.
pub const PROMPT_QUEUE_DURATION: &str = "threatflow_prompt_queue_seconds";
/// Histogram: ONNX Runtime time of one L2 batch.
pub const PROMPT_INFERENCE_DURATION: &str = "threatflow_prompt_inference_seconds";
/// Histogram: sequences per L2 batch.
pub const PROMPT_L2_BATCH_SIZE: &str = "threatflow_prompt_l2_batch_size_sequences";
/// Counter: prompts scored, by verdict (attack, suspicious, benign) and deciding layer.
pub const PROMPT_VERDICTS: &str = "threatflow_prompt_verdicts_total";
/// Counter: emails that arrived behind their user's window (older than the allowed lateness).
pub const EMAIL_LATE_EVENTS: &str = "threatflow_email_late_events_total";
/// Counter: emails the ensemble's 2-of-3 vote marked anomalous.
pub const EMAIL_VOTED_ANOMALIES: &str = "threatflow_email_voted_anomalies_total";
/// Gauge: users with an open window in the email operator.
pub const EMAIL_ACTIVE_USERS: &str = "threatflow_email_active_users";
/// Counter: batches an operator failed to score for an engine reason (retried, never
/// dead-lettered), by operator.
pub const SCORING_FAILURES: &str = "threatflow_scoring_failures_total";
/// Gauge: input partitions paused by flow control, by topic and cause (backlog, inflight,
/// stopped).
pub const PAUSED_PARTITIONS: &str = "threatflow_paused_partitions";
/// Gauge: the in-flight budget of a binding (records), by topic.
pub const INFLIGHT_BUDGET: &str = "threatflow_inflight_budget_events";
/// Counter: L2 inferences that failed (the batch is retried, never dead-lettered).
pub const PROMPT_L2_ERRORS: &str = "threatflow_prompt_l2_errors_total";
/// Model versions made current without a restart, by operator.
pub const MODEL_SWAPS: &str = "threatflow_model_swaps_total";
/// Model swaps the registry asked for that failed (download, verification, load), by operator.
pub const MODEL_SWAP_FAILURES: &str = "threatflow_model_swap_failures_total";
/// Gauge: 1 for the version each operator's binding scores with, by operator, topic, version.
pub const MODEL_VERSION: &str = "threatflow_model_version_info";
/// Events scored by a shadow challenger, by operator and whether its verdict agreed.
pub const SHADOW_EVENTS: &str = "threatflow_shadow_events_total";
/// Gauge: share of shadow-scored events whose verdict agreed with the champion, by operator.
pub const SHADOW_AGREEMENT: &str = "threatflow_shadow_verdict_agreement_ratio";
/// Histogram: |challenger score − champion score| of shadow-scored events, by operator.
pub const SHADOW_SCORE_DIFF: &str = "threatflow_shadow_score_abs_diff";
/// Sampled events not shadow-scored because the shadow scorer was behind, by operator.
pub const SHADOW_DROPPED: &str = "threatflow_shadow_dropped_total";
/// Drift checks (one per full window), by operator and input topic.
pub const DRIFT_CHECKS: &str = "threatflow_drift_checks_total";
/// Features found drifted in a check, by operator, input topic and feature.
pub const DRIFT_DETECTIONS: &str = "threatflow_drift_detections_total";
/// Analyst verdicts read, by operator and outcome (buffered, replaced, expired, refused, stale).
pub const FEEDBACK_VERDICTS: &str = "threatflow_feedback_verdicts_total";
/// Gauge: rows in the training buffer, by operator.
pub const TRAINING_BUFFER_ROWS: &str = "threatflow_training_buffer_rows";
/// Gauge: buffer rows added or replaced since the last training, by operator.
pub const TRAINING_NEW_ROWS: &str = "threatflow_training_rows_since_last";
/// Retrainings, by operator and outcome (challenger, rejected, failed).
pub const RETRAININGS: &str = "threatflow_retrainings_total";
/// Gauge: seconds the last retraining took, by operator.
pub const RETRAINING_SECONDS: &str = "threatflow_retraining_duration_seconds";
/// Gauge: epoch seconds of the last retraining's end, by operator.
pub const RETRAINING_LAST: &str = "threatflow_retraining_last_timestamp_seconds";
/// Gauge: live precision of the alerting decision, by operator and model version.
pub const LIVE_PRECISION: &str = "threatflow_live_precision_ratio";
/// Keyed-state records written to changelog topics, by changelog topic.
pub const STATE_CHANGELOG_RECORDS: &str = "threatflow_state_changelog_records_total";
/// Partition states restored, by input topic and source (cache, changelog, empty).
pub const STATE_RESTORES: &str = "threatflow_state_restores_total";
/// Entities held in keyed partition state, by input topic.
pub const STATE_ENTITIES: &str = "threatflow_state_entities";

/// Indicators in the alert operator's intel set after the last topic update, by topic.
pub const INTEL_INDICATORS: &str = "threatflow_intel_indicators";
/// Intel topic records read, by topic and outcome (applied, removed, invalid).
pub const INTEL_UPDATES: &str = "threatflow_intel_updates_total";
/// Counter: scoring API answers, by route (`score`, `scan_prompt`) and HTTP status.
pub const API_REQUESTS: &str = "threatflow_api_requests_total";
/// Histogram: scoring API request latency, by route (admission, decode, score, encode).
pub const API_LATENCY: &str = "threatflow_api_request_duration_seconds";

/// Histogram buckets for shadow score differences (scores are mostly 0–1 or 0–100).
const SCORE_DIFF_BUCKETS: [f64; 10] = [0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 10.0, 50.0];

/// Histogram buckets for stage durations: 50 µs to 5 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];
/// Histogram buckets for batch sizes.
const SIZE_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0, 10000.0,
];

/// Installs the global tracing subscriber; the filter comes from `RUST_LOG` (default
/// `info`). Logs go to stderr so that stdout stays for command output (`--json`).
pub fn init_tracing(format: LogFormat) {
    drop(init_tracing_with_otlp(format, ""));
}

/// Flushes and stops the OTLP exporter when dropped (keep it for the process's life).
#[must_use = "dropping the guard stops the trace export"]
pub struct TraceGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("otlp trace export did not shut down cleanly: {error}");
            }
        }
    }
}

/// [`init_tracing`], and with a non-empty `otlp_endpoint` (`http://host:4318`) an OTLP/HTTP
/// export of every span (batched off the scoring threads). An exporter that cannot be built
/// is reported and the engine runs without traces.
pub fn init_tracing_with_otlp(format: LogFormat, otlp_endpoint: &str) -> TraceGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .boxed(),
    };
    let (provider, problem) = match otlp_provider(otlp_endpoint) {
        Ok(provider) => (provider, None),
        Err(problem) => (None, Some(problem)),
    };
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("threatflow"))
    });
    // A second initialisation (tests, demo after config load) is harmless: keep the first.
    let _already_set = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    if let Some(problem) = problem {
        tracing::error!(endpoint = otlp_endpoint, %problem, "otlp trace export not started");
    } else if provider.is_some() {
        tracing::info!(endpoint = otlp_endpoint, "exporting traces over otlp/http");
    }
    TraceGuard(provider)
}

fn otlp_provider(
    endpoint: &str,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use opentelemetry_otlp::WithExportConfig;
    if endpoint.trim().is_empty() {
        return Ok(None);
    }
    let endpoint = endpoint.trim().trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|error| error.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("threatflow")
        .build();
    Ok(Some(
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// Installs the Prometheus recorder once per process and returns its handle for `/metrics`.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(BATCH_DURATION.to_owned()), &DURATION_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.to_owned()), &SIZE_BUCKETS)
            })
            .and_then(|builder| {
                [
                    PROMPT_TOKENIZE_DURATION,
                    PROMPT_QUEUE_DURATION,
                    PROMPT_INFERENCE_DURATION,
                    API_LATENCY,
                ]
                .into_iter()
                .try_fold(builder, |builder, name| {
                    builder
                        .set_buckets_for_metric(Matcher::Full(name.to_owned()), &DURATION_BUCKETS)
                })
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(PROMPT_L2_BATCH_SIZE.to_owned()),
                    &SIZE_BUCKETS,
                )
            })
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(SHADOW_SCORE_DIFF.to_owned()),
                    &SCORE_DIFF_BUCKETS,
                )
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(error) => {
                tracing::warn!(%error, "histogram buckets rejected; using summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe_metrics();
        handle
    })
}

/// What kind of Prometheus metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
}

/// One metric the engine exposes: the source of both its `# HELP` line and the metrics
/// reference (`threatflow reference metrics`, `docs/metrics.md`).
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    /// Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Unit, where it has one.
    pub unit: Option<metrics::Unit>,
    /// Help text (names its labels).
    pub help: &'static str,
}

/// Every metric the engine exposes.
pub static METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: INTEL_INDICATORS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Indicators in the alert operator's intel set after the last intel topic update, by topic",
    },
    MetricDoc {
        name: INTEL_UPDATES,
        kind: MetricKind::Counter,
        unit: None,
        help: "Intel topic records read, by topic and outcome (applied, removed, invalid)",
    },
    MetricDoc {
        name: API_REQUESTS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Scoring API answers, by route and HTTP status",
    },
    MetricDoc {
        name: API_LATENCY,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Scoring API request latency, by route",
    },
    MetricDoc {
        name: DRIFT_CHECKS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Drift checks of a full window of live inputs, by operator and topic",
    },
    MetricDoc {
        name: DRIFT_DETECTIONS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Input features found drifted from the model's reference, by operator, topic and feature",
    },
    MetricDoc {
        name: FEEDBACK_VERDICTS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Analyst verdicts read by the trainer, by operator and outcome (buffered, replaced, expired, refused, stale)",
    },
    MetricDoc {
        name: TRAINING_BUFFER_ROWS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Rows in the training buffer, by operator",
    },
    MetricDoc {
        name: TRAINING_NEW_ROWS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Training-buffer rows added or replaced since the last retraining, by operator",
    },
    MetricDoc {
        name: RETRAININGS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Retrainings, by operator and outcome (challenger, rejected, failed)",
    },
    MetricDoc {
        name: RETRAINING_SECONDS,
        kind: MetricKind::Gauge,
        unit: Some(Unit::Seconds),
        help: "Duration of the last retraining (training and gate), by operator",
    },
    MetricDoc {
        name: RETRAINING_LAST,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Unix time of the last retraining's end, by operator",
    },
    MetricDoc {
        name: LIVE_PRECISION,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Share of alerted events analysts judged threats, over the latest verdicts, by operator and model version",
    },
    MetricDoc {
        name: MODEL_SWAP_FAILURES,
        kind: MetricKind::Counter,
        unit: None,
        help: "Registry-driven model swaps that failed (the old version keeps scoring), by operator",
    },
    MetricDoc {
        name: MODEL_VERSION,
        kind: MetricKind::Gauge,
        unit: None,
        help: "1 for the model version a binding scores with, by operator, topic and version",
    },
    MetricDoc {
        name: SHADOW_EVENTS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Events also scored by the challenger, by operator and verdict agreement",
    },
    MetricDoc {
        name: SHADOW_AGREEMENT,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Share of shadow-scored events whose verdict agrees with the champion, by operator",
    },
    MetricDoc {
        name: SHADOW_SCORE_DIFF,
        kind: MetricKind::Histogram,
        unit: None,
        help: "Absolute difference of challenger and champion main score, by operator",
    },
    MetricDoc {
        name: SHADOW_DROPPED,
        kind: MetricKind::Counter,
        unit: None,
        help: "Sampled events the shadow scorer skipped because it was behind, by operator",
    },
    MetricDoc {
        name: EVENTS_CONSUMED,
        kind: MetricKind::Counter,
        unit: None,
        help: "Input records read, by topic",
    },
    MetricDoc {
        name: EVENTS_SCORED,
        kind: MetricKind::Counter,
        unit: None,
        help: "Events scored by an operator, by operator",
    },
    MetricDoc {
        name: DEAD_LETTERS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Dead-letter records written (acknowledged by the broker), by reason and input topic",
    },
    MetricDoc {
        name: PRODUCE_ERRORS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Failed deliveries of output records (retried), by topic",
    },
    MetricDoc {
        name: CONSUMER_LAG,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Messages behind the high watermark, by topic and partition",
    },
    MetricDoc {
        name: ASSIGNED_PARTITIONS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Partitions assigned to this instance",
    },
    MetricDoc {
        name: INFLIGHT_EVENTS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Inputs read but not yet fully acknowledged",
    },
    MetricDoc {
        name: BATCH_DURATION,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Pipeline stage time per batch, by operator and stage",
    },
    MetricDoc {
        name: BATCH_SIZE,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Count),
        help: "Events per batch, by operator",
    },
    MetricDoc {
        name: COMMIT_ERRORS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Offset commits that failed, by cause",
    },
    MetricDoc {
        name: MODEL_SWAPS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Model versions swapped in without a restart, by operator",
    },
    MetricDoc {
        name: STATE_CHANGELOG_RECORDS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Keyed-state entries written to changelog topics, by topic",
    },
    MetricDoc {
        name: STATE_RESTORES,
        kind: MetricKind::Counter,
        unit: None,
        help: "Partition states restored, by input topic and source (cache, changelog, empty)",
    },
    MetricDoc {
        name: STATE_ENTITIES,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Entities in keyed partition state, by input topic",
    },
    MetricDoc {
        name: ALERT_DISPOSITIONS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Alerts scored by the alert operator, by predicted disposition",
    },
    MetricDoc {
        name: PROMPT_TOKENIZE_DURATION,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Prompt tokenization time per operator batch",
    },
    MetricDoc {
        name: PROMPT_QUEUE_DURATION,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        help: "Time a prompt sequence waited in the L2 batcher queue",
    },
    MetricDoc {
        name: PROMPT_INFERENCE_DURATION,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        help: "ONNX Runtime time per L2 batch",
    },
    MetricDoc {
        name: PROMPT_L2_BATCH_SIZE,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Count),
        help: "Sequences per L2 batch",
    },
    MetricDoc {
        name: PROMPT_VERDICTS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Prompts scored, by verdict and deciding layer",
    },
    MetricDoc {
        name: PROMPT_L2_ERRORS,
        kind: MetricKind::Counter,
        unit: None,
        help: "L2 inferences that failed (the batch is retried, never dead-lettered)",
    },
    MetricDoc {
        name: EMAIL_LATE_EVENTS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Emails behind their user's window beyond the allowed lateness",
    },
    MetricDoc {
        name: EMAIL_VOTED_ANOMALIES,
        kind: MetricKind::Counter,
        unit: None,
        help: "Emails the ensemble's 2-of-3 vote marked anomalous",
    },
    MetricDoc {
        name: EMAIL_ACTIVE_USERS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Users with an open window in the email operator",
    },
    MetricDoc {
        name: SCORING_FAILURES,
        kind: MetricKind::Counter,
        unit: None,
        help: "Batches an operator failed to score for an engine reason (retried, never dead-lettered), by operator",
    },
    MetricDoc {
        name: PAUSED_PARTITIONS,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Input partitions paused by flow control, by topic and cause",
    },
    MetricDoc {
        name: INFLIGHT_BUDGET,
        kind: MetricKind::Gauge,
        unit: None,
        help: "Most input records in flight per binding (about max_inflight_ms of input at the consumed rate), by topic",
    },
    MetricDoc {
        name: ADDRESS_DECISIONS,
        kind: MetricKind::Counter,
        unit: None,
        help: "Addresses scored by the address operator, by decision",
    },
];

fn describe_metrics() {
    for doc in METRICS {
        match (doc.kind, doc.unit) {
            (MetricKind::Counter, Some(unit)) => {
                metrics::describe_counter!(doc.name, unit, doc.help)
            }
            (MetricKind::Counter, None) => metrics::describe_counter!(doc.name, doc.help),
            (MetricKind::Gauge, Some(unit)) => metrics::describe_gauge!(doc.name, unit, doc.help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(doc.name, doc.help),
            (MetricKind::Histogram, Some(unit)) => {
                metrics::describe_histogram!(doc.name, unit, doc.help)
            }
            (MetricKind::Histogram, None) => metrics::describe_histogram!(doc.name, doc.help),
        }
    }
}

/// The metrics reference as Markdown.
pub fn metrics_markdown() -> String {
    let mut out = String::from(
        "# Metrics reference\n\n\
         <!-- Generated by `threatflow reference metrics` from the engine's metric table; do not \
         edit. A test fails when this file and the command's output differ. -->\n\n\
         Prometheus text format on `GET /metrics` (the HTTP port, `http.bind`). Histograms \
         add `_bucket`, `_sum` and `_count` series. Traces go to OTLP \
         (`log.otlp_endpoint`), not here.\n\n\
         | metric | type | unit | description |\n|---|---|---|---|\n",
    );
    let mut sorted: Vec<&MetricDoc> = METRICS.iter().collect();
    sorted.sort_by_key(|doc| doc.name);
    for doc in sorted {
        let kind = match doc.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        let unit = doc.unit.map_or("", |unit| unit.as_str());
        out.push_str(&format!(
            "| `{}` | {kind} | {unit} | {} |\n",
            doc.name, doc.help
        ));
    }
    out
}

#[cfg(test)]
mod metric_table_tests {
    use super::*;

    #[test]
    fn docs_metrics_md_is_this_builds_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == metrics_markdown(),
            "docs/metrics.md is stale: run \
             `cargo run -p threatflow -- reference metrics > docs/metrics.md`"
        );
    }

    #[test]
    fn every_metric_name_constant_is_in_the_table_once() {
        let source = include_str!("telemetry.rs");
        let names: Vec<&str> = source
            .lines()
            .filter(|line| line.starts_with("pub const ") && line.contains("= \"threatflow_"))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert!(names.len() > 40, "{names:?}");
        for name in &names {
            let count = METRICS.iter().filter(|doc| doc.name == *name).count();
            assert_eq!(count, 1, "{name} is in the metric table {count} times");
        }
        assert_eq!(names.len(), METRICS.len());
    }
}
