//! The synchronous scoring API, served on the engine's HTTP endpoint beside `/health`:
//!
//! - `POST /v1/score/{operator}` — one event (the JSON of the operator's input schema) or a
//!   batch `{"events": [...]}`; answers the record the stream would emit for each event plus
//!   `request_id` and `latency_ms` (`?topic=` picks the binding when an operator is bound to
//!   several topics);
//! - `POST /v1/scan/prompt` — the LLM-gateway form for prompts ([`scan`]);
//! - `GET /v1/operators` — what can be scored here;
//! - `GET /v1/openapi.json` — the OpenAPI 3 document of all of it.
//!
//! Calls share the stream's model slots and the prompt batcher ([`scoring`]). Guarantees to a
//! caller: a request is refused rather than queued when `http.api.max_in_flight` are being
//! scored (429 with `Retry-After`), answered within `http.api.request_timeout_ms` (else 408;
//! the scoring still finishes in the background and holds its admission slot until then, so
//! timeouts cannot pile up work), bodies over `http.api.max_body_bytes` are refused (413)
//! before being read whole, and invalid events get 422 naming the field — never echoing a
//! value. With `http.api.token` set, scoring needs `Authorization: Bearer <token>` (401).
//! An engine failure (model not loaded, ONNX Runtime error) is 503, never a 5xx crash.

pub mod config;
pub mod openapi;
pub mod scan;
pub mod scoring;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::decode::DecodeFailure;
use crate::health::Health;
use crate::telemetry;
use config::ApiConfig;
use scoring::{score_request, EventResult, RequestOutcome, ScoringBinding};

/// Shared by the API's handlers.
struct Api {
    health: Arc<Health>,
    config: ApiConfig,
    permits: Arc<Semaphore>,
    /// Per-process request counter (the tail of generated request ids).
    requests: AtomicU64,
    /// Random per-process prefix of generated request ids.
    prefix: u32,
}

/// The API's routes, for the engine's router (state: the engine's health).
pub fn routes<S: Clone + Send + Sync + 'static>(
    config: &ApiConfig,
    health: Arc<Health>,
) -> Router<S> {
    let api = Arc::new(Api {
        health,
        config: config.clone(),
        permits: Arc::new(Semaphore::new(config.max_in_flight)),
        requests: AtomicU64::new(0),
        prefix: rand::random(),
    });
    let token = Arc::new(config.token.clone());
    let scoring = Router::new()
        .route("/v1/score/{operator}", post(score))
        .route("/v1/scan/prompt", post(scan_prompt))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .route_layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let token = token.clone();
                async move {
                    if token.is_empty() || crate::http::bearer_matches(&token, request.headers()) {
                        next.run(request).await
                    } else {
                        ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "scoring needs Authorization: Bearer <http.api.token>",
                            "",
                        )
                        .into_response()
                    }
                }
            },
        ));
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/operators", get(operators))
        .merge(scoring)
        .with_state(api)
}

async fn openapi(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let bound: Vec<(&str, String)> = api
        .health
        .scoring
        .list()
        .into_iter()
        .map(|(operator, topic, _)| (operator, topic))
        .collect();
    Json(openapi::document_for(&bound))
}

async fn operators(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let operators: Vec<Value> = api
        .health
        .scoring
        .list()
        .into_iter()
        .map(|(operator, topic, schema)| {
            json!({ "operator": operator, "topic": topic, "schema": schema.name() })
        })
        .collect();
    Json(json!({ "operators": operators }))
}

/// `?topic=` of `POST /v1/score/{operator}`.
#[derive(Debug, serde::Deserialize)]
struct ScoreQuery {
    topic: Option<String>,
}

/// An error answer: `{"error": code, "message", "request_id", ...}`.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    request_id: String,
    extra: Vec<(&'static str, Value)>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        request_id: &str,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            request_id: request_id.to_owned(),
            extra: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra.push((key, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".to_owned(), json!(self.code));
        body.insert("message".to_owned(), json!(self.message));
        body.insert("request_id".to_owned(), json!(self.request_id));
        body.extend(
            self.extra
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value)),
        );
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl Api {
    /// The caller's `X-Request-Id` when it is a plain token, else a generated one.
    fn request_id(&self, headers: &HeaderMap) -> String {
        let supplied = headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            });
        match supplied {
            Some(id) => id.to_owned(),
            None => format!(
                "{:08x}-{:x}",
                self.prefix,
                self.requests.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Scores `events` on `binding` under admission control and the request timeout.
    async fn run(
        &self,
        binding: Arc<ScoringBinding>,
        request_id: &str,
        events: Vec<Value>,
    ) -> Result<RequestOutcome, ApiError> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!(
                    "{} requests are being scored (http.api.max_in_flight); retry later",
                    self.config.max_in_flight
                ),
                request_id,
            ));
        };
        let id = request_id.to_owned();
        let task = tokio::task::spawn_blocking(move || {
            // Held until the scoring ends, even after the caller got its 408.
            let _permit = permit;
            score_request(&binding, &id, &events)
        });
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        match tokio::time::timeout(timeout, task).await {
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "not scored within {} ms (http.api.request_timeout_ms)",
                    self.config.request_timeout_ms
                ),
                request_id,
            )),
            Ok(Err(join_error)) => {
                tracing::error!(%join_error, "API scoring task failed");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "scoring_failed",
                    "the scoring task failed",
                    request_id,
                ))
            }
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "API scoring failed");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "scoring_failed",
                    "the engine cannot score now (model or runtime failure); retry later",
                    request_id,
                ))
            }
            Ok(Ok(Ok(results))) => Ok(results),
        }
    }
}

/// The body as JSON, or the 413/400 it deserves.
fn parse_body(body: Result<Bytes, BytesRejection>, request_id: &str) -> Result<Value, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        ApiError::new(status, code, rejection.body_text(), request_id)
    })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_json",
            format!(
                "the body is not JSON: {}",
                crate::decode::describe_without_values(&error.to_string())
            ),
            request_id,
        )
    })
}

/// The schema field a decode failure's detail names, when it names one.
fn field_named(detail: &str) -> Option<String> {
    if let Some(rest) = detail.strip_prefix("field ") {
        return rest.split(':').next().map(str::to_owned);
    }
    if let Some(start) = detail.find("missing field `") {
        let rest = &detail[start + "missing field `".len()..];
        return rest.split('`').next().map(str::to_owned);
    }
    None
}

/// One event's result as the batch answer lists it.
fn batch_entry(index: usize, result: EventResult) -> Value {
    match result {
        EventResult::Scored(scored) => json!({ "index": index, "scored": scored }),
        EventResult::Rejected(detail) => json!({
            "index": index, "error": "rejected", "message": detail,
        }),
    }
}

/// The 422 of a request with invalid events: the first one's field and reason, and every
/// invalid event's index, field and reason under `invalid`.
fn invalid_events(invalid: Vec<(usize, DecodeFailure)>, request_id: &str) -> ApiError {
    let listed: Vec<Value> = invalid
        .iter()
        .map(|(index, failure)| {
            json!({
                "index": index,
                "reason": failure.reason.code(),
                "field": field_named(&failure.detail),
                "message": failure.detail,
            })
        })
        .collect();
    let (_, first) = &invalid[0];
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event",
        first.detail.clone(),
        request_id,
    )
    .with("reason", json!(first.reason.code()))
    .with("field", json!(field_named(&first.detail)))
    .with("invalid", Value::Array(listed))
}

/// A single event the operator rejected, as a 422.
fn rejected(detail: String, request_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "rejected",
        detail,
        request_id,
    )
}

fn latency_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// Counts the answer and its latency.
fn observe(route: &'static str, status: StatusCode, started: Instant) {
    metrics::counter!(telemetry::API_REQUESTS, "route" => route, "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!(telemetry::API_LATENCY, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

async fn score(
    State(api): State<Arc<Api>>,
    Path(operator): Path<String>,
    query: Result<Query<ScoreQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let request_id = api.request_id(&headers);
    let response = match query {
        Ok(Query(query)) => score_answer(
            &api,
            &operator,
            query.topic.as_deref(),
            body,
            &request_id,
            started,
        )
        .await
        .unwrap_or_else(IntoResponse::into_response),
        Err(rejection) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            rejection.body_text(),
            &request_id,
        )
        .into_response(),
    };
    observe("score", response.status(), started);
    response
}

async fn score_answer(
    api: &Api,
    operator: &str,
    topic: Option<&str>,
    body: Result<Bytes, BytesRejection>,
    request_id: &str,
    started: Instant,
) -> Result<Response, ApiError> {
    let Some(binding) = api.health.scoring.find(operator, topic) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_operator",
            "no binding of this operator (and topic) in this engine; see GET /v1/operators",
            request_id,
        ));
    };
    let body = parse_body(body, request_id)?;
    let (events, batch) = match body {
        Value::Object(mut object) if object.contains_key("events") => {
            match object.remove("events") {
                Some(Value::Array(events)) => (events, true),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request",
                        "events must be an array of events",
                        request_id,
                    )
                    .with("field", json!("events")))
                }
            }
        }
        Value::Object(_) => (vec![body], false),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "the body must be one event (a JSON object) or {\"events\": [...]}",
                request_id,
            ))
        }
    };
    if events.len() > api.config.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events exceed http.api.max_batch_events ({})",
                events.len(),
                api.config.max_batch_events
            ),
            request_id,
        ));
    }
    if events.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "events is empty",
            request_id,
        )
        .with("field", json!("events")));
    }
    let mut results = match api.run(binding, request_id, events).await? {
        RequestOutcome::Invalid(invalid) => return Err(invalid_events(invalid, request_id)),
        RequestOutcome::Scored(results) => results,
    };
    if !batch {
        let scored = match results.pop().expect("one result per event") {
            EventResult::Scored(Value::Object(scored)) => scored,
            EventResult::Scored(_) => unreachable!("a scored record is a JSON object"),
            EventResult::Rejected(detail) => return Err(rejected(detail, request_id)),
        };
        let mut scored = scored;
        scored.insert("request_id".to_owned(), json!(request_id));
        scored.insert("latency_ms".to_owned(), json!(latency_ms(started)));
        return Ok(Json(Value::Object(scored)).into_response());
    }
    let results: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| batch_entry(index, result))
        .collect();
    Ok(Json(json!({
        "request_id": request_id,
        "latency_ms": latency_ms(started),
        "results": results,
    }))
    .into_response())
}

async fn scan_prompt(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let request_id = api.request_id(&headers);
    let response = scan_answer(&api, body, &request_id, started)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    observe("scan_prompt", response.status(), started);
    response
}

async fn scan_answer(
    api: &Api,
    body: Result<Bytes, BytesRejection>,
    request_id: &str,
    started: Instant,
) -> Result<Response, ApiError> {
    let Some(binding) = api.health.scoring.find("prompt", None) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_operator",
            "no prompt binding in this engine",
            request_id,
        ));
    };
    let body = parse_body(body, request_id)?;
    let event = scan::prompt_event(body).map_err(|(field, message)| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            message,
            request_id,
        )
        .with("field", json!(field))
    })?;
    let scored = match api.run(binding, request_id, vec![event]).await? {
        RequestOutcome::Invalid(invalid) => return Err(invalid_events(invalid, request_id)),
        RequestOutcome::Scored(mut results) => match results.pop().expect("one result per event") {
            EventResult::Scored(scored) => scored,
            EventResult::Rejected(detail) => return Err(rejected(detail, request_id)),
        },
    };
    Ok(Json(scan::answer(&scored, request_id, latency_ms(started))).into_response())
}
