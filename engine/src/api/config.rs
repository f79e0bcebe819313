//! `[http]` and `[http.api]`: the HTTP endpoint, and the scoring API's admission control and
//! access settings.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to bind, `host:port`; port 0 picks a free port. Empty disables the endpoint.
    #[serde(default = "default_http_bind")]
    pub bind: String,
    /// Serve `POST /models/<input topic>` (swap the binding's model to a version under
    /// `<model_dir>/<operator>/` without a restart). Off by default: anyone who can reach
    /// the port could change what scores the stream. Needs `admin_token`.
    #[serde(default)]
    pub model_admin: bool,
    /// Bearer token every HTTP action that changes models must carry
    /// (`Authorization: Bearer <token>`); reads need none. Set it from the environment
    /// (`THREATFLOW_HTTP__ADMIN_TOKEN`), not in a committed file.
    #[serde(default)]
    pub admin_token: String,
    /// The scoring API (`[http.api]`).
    #[serde(default)]
    pub api: ApiConfig,
}

fn default_http_bind() -> String {
    "0.0.0.0:9464".to_owned()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: default_http_bind(),
            model_admin: false,
            admin_token: String::new(),
            api: ApiConfig::default(),
        }
    }
}

impl HttpConfig {
    /// What is wrong with these settings (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.bind.is_empty() && self.bind.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "http.bind {:?} is not a host:port socket address",
                self.bind
            ));
        }
        if self.model_admin && self.admin_token.trim().is_empty() {
            problems.push(
                "http.model_admin needs http.admin_token (admin actions require a bearer token)"
                    .to_owned(),
            );
        }
        if let Err(problem) = self.api.validate() {
            problems.push(problem);
        }
        problems
    }

    /// Replaces the tokens with stars (for printing the effective configuration).
    pub fn mask_secrets(&mut self) {
        for token in [&mut self.admin_token, &mut self.api.token] {
            if !token.is_empty() {
                *token = "********".to_owned();
            }
        }
    }
}

/// Settings of `POST /v1/score/{operator}` and `POST /v1/scan/prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the scoring API on the engine's HTTP endpoint.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Requests being scored at once; beyond it a request is refused with 429 and
    /// `Retry-After` instead of queueing (a gateway should fail fast, not pile up).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// A request not answered within this many milliseconds gets 408.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Largest request body; a larger one gets 413 before it is read whole.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most events in one `{"events": [...]}` batch; more gets 413.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// When non-empty, scoring calls must carry `Authorization: Bearer <token>` (401
    /// otherwise). Set it from the environment (`THREATFLOW_HTTP__API__TOKEN`).
    #[serde(default)]
    pub token: String,
}

fn default_enabled() -> bool {
    true
}

fn default_max_in_flight() -> usize {
    64
}

fn default_request_timeout_ms() -> u64 {
    2_000
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_batch_events() -> usize {
    512
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            max_in_flight: default_max_in_flight(),
            request_timeout_ms: default_request_timeout_ms(),
            max_body_bytes: default_max_body_bytes(),
            max_batch_events: default_max_batch_events(),
            token: String::new(),
        }
    }
}

impl ApiConfig {
    /// Checks the limits are usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("http.api.max_in_flight must be at least 1".to_owned());
        }
        if self.request_timeout_ms == 0 {
            return Err("http.api.request_timeout_ms must be at least 1".to_owned());
        }
        if self.max_body_bytes < 1024 {
            return Err("http.api.max_body_bytes must be at least 1024".to_owned());
        }
        if self.max_batch_events == 0 {
            return Err("http.api.max_batch_events must be at least 1".to_owned());
        }
        Ok(())
    }
}
