//! The analyst console, served by the engine at `/console`, and the JSON it reads.
//!
//! The page (`assets/`: plain HTML, JS and CSS compiled into the binary; no build step, no
//! third-party code) polls these endpoints:
//! - `GET /v1/events?after=&operator=&verdict=&entity=&flagged=&limit=` — the live view: the
//!   newest kept events ([`feed`]), newest first;
//! - `GET /v1/events/{event_id}` — one event: scored record, the contributions with the
//!   training median of each feature beside the event's value ([`medians`]), and the input
//!   (absent for a scores-only binding);
//! - `GET /v1/entities` and `GET /v1/entities/{entity}` — entity risk over time with the
//!   window statistics the operators publish with it;
//! - `POST /v1/feedback` — a verdict button: writes a `schemas/feedback.avsc` record (JSON)
//!   to `<feedback.topic_prefix><operator>`, the topic the trainer learns from, and answers
//!   once the broker acknowledged it;
//! - `GET /models` (the engine's) and, with the admin token, `POST /v1/models/{operator}/promote`
//!   and `/rollback` — the registry's champion change, as `threatflow models promote` does.
//!
//! The console's own page and reads need no token (put the port behind the cluster's
//! ingress auth like any dashboard); verdicts need `http.api.token` when it is set, model
//! changes always need `http.admin_token`.

pub mod feed;
pub mod medians;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::EngineConfig;
use crate::health::Health;

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// Most events one list call returns.
const MAX_LIST: usize = 500;
/// How long a verdict waits for the broker's acknowledgement.
const FEEDBACK_ACK_TIMEOUT: Duration = Duration::from_secs(10);

struct Console {
    health: Arc<Health>,
    config: EngineConfig,
    producer: OnceLock<Result<FutureProducer, String>>,
    medians: medians::MedianCache,
}

/// The console's routes (state: the engine's health).
pub fn routes<S: Clone + Send + Sync + 'static>(
    config: &EngineConfig,
    health: Arc<Health>,
) -> Router<S> {
    let console = Arc::new(Console {
        health,
        config: config.clone(),
        producer: OnceLock::new(),
        medians: medians::MedianCache::default(),
    });
    Router::new()
        .route(
            "/console",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/console.js",
            get(|| async { page(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/console.css",
            get(|| async { page(CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/v1/events", get(list_events))
        .route("/v1/events/{event_id}", get(event_detail))
        .route("/v1/entities", get(list_entities))
        .route("/v1/entities/{entity}", get(entity_detail))
        .route("/v1/feedback", post(feedback))
        .route("/v1/models/{operator}/promote", post(promote))
        .route("/v1/models/{operator}/rollback", post(rollback))
        .with_state(console)
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // The page loads only its own script and style and talks only to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": status.canonical_reason().unwrap_or("error"), "message": message.into()}))).into_response()
}

/// Filters of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
struct EventQuery {
    after: Option<u64>,
    operator: Option<String>,
    verdict: Option<String>,
    entity: Option<String>,
    flagged: Option<bool>,
    limit: Option<usize>,
}

async fn list_events(
    State(console): State<Arc<Console>>,
    Query(query): Query<EventQuery>,
) -> Response {
    let events = console.health.console.list(
        query.after.unwrap_or(0),
        query.limit.unwrap_or(100).min(MAX_LIST),
        |event| {
            query
                .operator
                .as_deref()
                .is_none_or(|op| op.is_empty() || event.scored.operator == op)
                && query
                    .verdict
                    .as_deref()
                    .is_none_or(|v| v.is_empty() || event.verdict == v)
                && query.flagged.is_none_or(|flagged| event.flagged == flagged)
                && query.entity.as_deref().is_none_or(|wanted| {
                    wanted.is_empty()
                        || event
                            .entity
                            .as_deref()
                            .is_some_and(|entity| entity.contains(wanted))
                })
        },
    );
    let latest = events
        .first()
        .map_or(query.after.unwrap_or(0), |event| event.seq);
    Json(json!({
        "latest_seq": latest,
        "events": events.iter().map(|event| event.summary()).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn event_detail(
    State(console): State<Arc<Console>>,
    Path(event_id): Path<String>,
) -> Response {
    let Some(event) = console.health.console.find(&event_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such event among the recent ones this engine keeps",
        );
    };
    let medians = console.medians.for_version(
        &console.health,
        &event.scored.source.topic,
        &event.scored.model_version,
    );
    let contributions: Vec<Value> = event
        .scored
        .explanation
        .iter()
        .map(|contribution| {
            json!({
                "name": contribution.name,
                "value": contribution.value,
                "contribution": contribution.contribution,
                "detail": contribution.detail,
                "training_median": medians.as_ref().and_then(|m| m.get(&contribution.name)),
            })
        })
        .collect();
    Json(json!({
        "summary": event.summary(),
        "scored": event.scored,
        "contributions": contributions,
        "input": event.input.as_ref().map(crate::events::InputEvent::to_json_value),
        "input_withheld": event.input.is_none(),
    }))
    .into_response()
}

async fn list_entities(State(console): State<Arc<Console>>) -> Response {
    let entities: Vec<Value> = console
        .health
        .console
        .entities(200)
        .into_iter()
        .map(|(entity, latest)| {
            json!({"entity": entity, "operator": latest.operator, "time_ms": latest.time_ms, "scores": latest.scores})
        })
        .collect();
    Json(json!({ "entities": entities })).into_response()
}

async fn entity_detail(
    State(console): State<Arc<Console>>,
    Path(entity): Path<String>,
) -> Response {
    let points = console.health.console.entity(&entity);
    let events: Vec<Value> = console
        .health
        .console
        .list(0, 50, |event| {
            event.entity.as_deref() == Some(entity.as_str())
        })
        .iter()
        .map(|event| event.summary())
        .collect();
    if points.is_empty() && events.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "no recent risk or event for this entity",
        );
    }
    Json(json!({
        "entity": entity,
        "points": points.iter().map(|point| json!({
            "time_ms": point.time_ms, "operator": point.operator, "scores": point.scores, "event_id": point.event_id,
        })).collect::<Vec<_>>(),
        "events": events,
    }))
    .into_response()
}

/// Body of `POST /v1/feedback`.
#[derive(Debug, Deserialize)]
struct VerdictRequest {
    event_id: String,
    /// `true_positive`, `false_positive`, `benign`, `duplicate` (a true positive already
    /// reported) or any verdict of `schemas/feedback.avsc`.
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    analyst: Option<String>,
}

async fn feedback(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = &console.config.http.api.token;
    if !token.is_empty() && !crate::http::bearer_matches(token, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "verdicts need Authorization: Bearer <http.api.token>",
        );
    }
    let request: VerdictRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(problem) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::decode::describe_without_values(&problem.to_string()),
            )
        }
    };
    let Some(event) = console.health.console.find(&request.event_id) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such event among the recent ones this engine keeps",
        );
    };
    let (verdict, label) = match request.verdict.as_str() {
        "duplicate" => ("true_positive", Some("duplicate")),
        "true_positive" | "false_positive" | "true_negative" | "false_negative" | "suspicious"
        | "benign" => (request.verdict.as_str(), None),
        _ => return error(StatusCode::UNPROCESSABLE_ENTITY, "verdict must be true_positive, false_positive, benign, duplicate, true_negative, false_negative or suspicious"),
    };
    let comment = match (request.reason.as_deref(), request.comment.as_deref()) {
        (Some(reason), Some(comment)) => Some(format!("reason={reason}; {comment}")),
        (Some(reason), None) => Some(format!("reason={reason}")),
        (None, comment) => comment.map(str::to_owned),
    };
    let record = json!({
        "event_id": event.scored.event_id,
        "operator": event.scored.operator,
        "model_version": event.scored.model_version,
        "verdict": verdict,
        "label": label,
        "analyst": request.analyst,
        "comment": comment,
        "timestamp_ms": crate::scored::now_ms(),
        "source": {
            "topic": event.scored.source.topic,
            "partition": event.scored.source.partition,
            "offset": event.scored.source.offset,
        },
        "corrected_risk": null,
    });
    let topic = format!(
        "{}{}",
        console.config.feedback.topic_prefix, event.scored.operator
    );
    let producer = match console.producer.get_or_init(|| {
        crate::pipeline::producer_client_config(&console.config)
            .create()
            .map_err(|problem: rdkafka::error::KafkaError| problem.to_string())
    }) {
        Ok(producer) => producer,
        Err(problem) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no feedback producer: {problem}"),
            )
        }
    };
    let payload = record.to_string();
    let delivered = producer
        .send(
            FutureRecord::to(&topic)
                .key(&event.scored.event_id)
                .payload(&payload),
            FEEDBACK_ACK_TIMEOUT,
        )
        .await;
    match delivered {
        Ok(delivery) => (
            StatusCode::CREATED,
            Json(json!({"topic": topic, "partition": delivery.partition, "offset": delivery.offset, "feedback": record})),
        )
            .into_response(),
        Err((problem, _)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("verdict not written: {problem}")),
    }
}

/// Body of the model admin calls.
#[derive(Debug, Default, Deserialize)]
struct ChampionRequest {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn promote(
    state: State<Arc<Console>>,
    operator: Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    change_champion(state, operator, headers, body, true).await
}

async fn rollback(
    state: State<Arc<Console>>,
    operator: Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    change_champion(state, operator, headers, body, false).await
}

async fn change_champion(
    State(console): State<Arc<Console>>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    promote: bool,
) -> Response {
    if !crate::http::bearer_matches(&console.config.http.admin_token, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "model changes need Authorization: Bearer <http.admin_token>",
        );
    }
    if !console.config.registry.enabled {
        return error(
            StatusCode::CONFLICT,
            "the model registry is off (registry.enabled = false)",
        );
    }
    let request: ChampionRequest = if body.is_empty() {
        ChampionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(problem) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    crate::decode::describe_without_values(&problem.to_string()),
                )
            }
        }
    };
    let version = match (promote, request.version) {
        (true, Some(version)) => Some(version),
        (true, None) => return error(StatusCode::UNPROCESSABLE_ENTITY, "promote needs a version"),
        (false, _) => None,
    };
    let config = console.config.clone();
    let reason = request
        .reason
        .unwrap_or_else(|| "from the console".to_owned());
    let changed = tokio::task::spawn_blocking(move || {
        crate::registry::cli::change_champion(
            &config,
            &operator,
            version.as_deref(),
            "console",
            &reason,
        )
    })
    .await;
    match changed {
        Ok(Ok(champion)) => Json(json!({"champion": champion})).into_response(),
        Ok(Err(problem)) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("{problem:#}")),
        Err(problem) => error(StatusCode::INTERNAL_SERVER_ERROR, problem.to_string()),
    }
}
