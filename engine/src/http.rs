//! The HTTP endpoint: `/health` (the process is alive), `/ready` (partitions assigned or
//! group joined, broker reachable, models loaded), `/metrics` (Prometheus text format),
//! `/models` (per input topic: operator, the model version scoring now and its manifest
//! summary, e.g. the alert classifier's feature importances — read live from the model
//! slots, with the registry's aliases and the shadow challenger's agreement figures). With
//! `http.model_admin` and a bearer token (`http.admin_token`), `POST /models/<input topic>` with `{"version": "v2"}`
//! swaps the binding's model to `<model_dir>/<operator>/v2` without a restart: the version is
//! loaded, verified and warmed off the scoring threads, then goes live between two batches;
//! a version that fails to load is refused (422) and the old one keeps scoring.
//!
//! With `http.api.enabled` (the default) it also serves the scoring API ([`crate::api`]) and
//! the analyst console ([`crate::console`]) at `/console`.
//!
//! `/ready` answers 503 with the failing facts in its JSON body, so a Kubernetes probe and
//! a human both see why.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::source::Health;
use crate::telemetry;

/// Binds `bind` and serves until `shutdown` is cancelled. Returns the bound address (port 0
/// picks a free port) once listening.
pub async fn serve(
    engine: &crate::config::EngineConfig,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let config = &engine.http;
    let handle = telemetry::metrics_handle();
    let listener = tokio::net::TcpListener::bind(&config.bind).await?;
    let address = listener.local_addr()?;
    let mut app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/models", get(models))
        .route("/metrics", get(move || async move { handle.render() }));
    if config.model_admin {
        let token = Arc::new(config.admin_token.clone());
        app = app.route(
            "/models/{topic}",
            post(swap_model).route_layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let token = token.clone();
                    async move { require_bearer(&token, request, next).await }
                },
            )),
        );
    }
    if config.api.enabled {
        app = app
            .merge(crate::api::routes(&config.api, health.clone()))
            .merge(crate::console::routes(engine, health.clone()));
    }
    let app = app.with_state(health);
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
    Json(health.models_json())
}

/// Lets a request through only with `Authorization: Bearer <token>` (and a non-empty token):
/// 401 otherwise.
async fn require_bearer(
    token: &str,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if bearer_matches(token, request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "admin actions need Authorization: Bearer <http.admin_token>" })),
        )
            .into_response()
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` (never for an empty token). The
/// comparison takes the same time wherever the strings differ.
pub(crate) fn bearer_matches(token: &str, headers: &axum::http::HeaderMap) -> bool {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    !token.is_empty()
        && presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Body of `POST /models/<input topic>`.
#[derive(Debug, serde::Deserialize)]
struct SwapRequest {
    /// A version directory name under `<model_dir>/<operator>/`.
    version: String,
}

async fn swap_model(
    State(health): State<Arc<Health>>,
    Path(topic): Path<String>,
    Json(request): Json<SwapRequest>,
) -> impl IntoResponse {
    let refuse =
        |status: StatusCode, error: String| (status, Json(serde_json::json!({ "error": error })));
    let version = request.version.trim().to_owned();
    let plain_name = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && version != "."
        && version != "..";
    if !plain_name {
        return refuse(
            StatusCode::BAD_REQUEST,
            "version must be a plain directory name".to_owned(),
        );
    }
    let Some(bound) = crate::sync::lock(&health.models).get(&topic).cloned() else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!("no model-backed binding for topic {topic}"),
        );
    };
    let directory = bound.versions_dir.join(&version);
    let handle = bound.handle.clone();
    let swapped = tokio::task::spawn_blocking(move || handle.swap(&directory)).await;
    match swapped {
        Ok(Ok(version)) => (
            StatusCode::OK,
            Json(serde_json::json!({ "topic": topic, "model_version": version })),
        ),
        Ok(Err(error)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
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
        "state_partitions": health.state_partitions(),
    });
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
