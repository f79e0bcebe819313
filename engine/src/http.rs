//! The HTTP endpoint: `/health` (the process is alive), `/ready` (partitions assigned or
//! group joined, broker reachable, models loaded), `/metrics` (Prometheus text format),
//! `/models` (per input topic: operator, model version and the model's manifest summary,
//! e.g. the alert classifier's feature importances).
//!
//! `/ready` answers 503 with the failing facts in its JSON body, so a Kubernetes probe and
//! a human both see why.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::source::Health;
use crate::telemetry;

/// Binds `bind` and serves until `shutdown` is cancelled. Returns the bound address (port 0
/// picks a free port) once listening.
pub async fn serve(
    bind: &str,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let handle = telemetry::metrics_handle();
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/models", get(models))
        .route("/metrics", get(move || async move { handle.render() }))
        .with_state(health);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "http endpoint stopped");
        }
    });
    tracing::info!(%address, "http endpoint listening");
    Ok(address)
}

async fn models(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let models = health
        .models
        .lock()
        .map(|models| serde_json::json!(*models))
        .unwrap_or_else(|_| serde_json::json!({}));
    Json(models)
}

async fn ready(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "ready": health.is_ready(),
        "operators_started": health.operators_started.load(Ordering::Relaxed),
        "assignment_received": health.assignment_received.load(Ordering::Relaxed),
        "assigned_partitions": health.assigned_partitions.load(Ordering::Relaxed),
        "broker_up": health.broker_up.load(Ordering::Relaxed),
        "stopping": health.stopping.load(Ordering::Relaxed),
        "failure": health.failure(),
        "stopped_bindings": health.stopped_bindings(),
    });
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
