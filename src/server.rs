//! The HTTP server: routes, shared state, the evaluation loop. `app(state)` builds the router;
//! `run(listener, state, shutdown)` serves it until the token is cancelled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use slowburn_engine::{AlertState, AlertTransition, Engine};
use slowburn_ingest::{Assembled, Decoded, Deduper, EntryError, IngestError, MAX_LISTED_ERRORS};
use slowburn_slo_defs::{Catalog, parse_duration};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::metrics::{EndpointLabels, HttpLabels, Metrics, RuleLabels};

/// How long a client may take to send its body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Alert transitions kept for `GET /v1/alerts`.
pub const RECENT_TRANSITIONS: usize = 1000;

pub struct AppState {
    pub settings: Settings,
    pub catalog: Arc<Catalog>,
    pub engine: Mutex<Engine>,
    pub dedupe: Mutex<Deduper>,
    pub live: Mutex<LiveBuffer>,
    pub metrics: Metrics,
    pub transitions: Mutex<VecDeque<AlertTransition>>,
    ingest_permits: Semaphore,
    ready: AtomicBool,
    evaluate_now: Notify,
    clock: fn() -> i64,
}

pub fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl AppState {
    pub fn new(settings: Settings, catalog: Arc<Catalog>) -> Arc<Self> {
        Arc::new(AppState {
            engine: Mutex::new(Engine::new(catalog.clone())),
            dedupe: Mutex::new(Deduper::new(settings.ingest.dedupe_window_ms, settings.ingest.dedupe_max_keys)),
            live: Mutex::new(LiveBuffer::new(settings.ingest.live_buffer_max_rows)),
            metrics: Metrics::default(),
            transitions: Mutex::new(VecDeque::new()),
            ingest_permits: Semaphore::new(settings.ingest.max_concurrent_requests),
            ready: AtomicBool::new(false),
            evaluate_now: Notify::new(),
            clock: wall_clock_ms,
            settings,
            catalog,
        })
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// A poisoned lock only means another request panicked mid-update; the data is counters, so
/// keep serving rather than turning every later request into a 500.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Recently ingested log rows as Arrow batches, bounded by rows (oldest evicted first).
/// Nothing here is durable: the write-ahead log and Parquet archive own durability.
pub struct LiveBuffer {
    batches: VecDeque<RecordBatch>,
    rows: usize,
    max_rows: usize,
    pub evicted_rows: u64,
}

impl LiveBuffer {
    pub fn new(max_rows: usize) -> Self {
        LiveBuffer { batches: VecDeque::new(), rows: 0, max_rows, evicted_rows: 0 }
    }

    pub fn push(&mut self, batch: RecordBatch) {
        self.rows += batch.num_rows();
        self.batches.push_back(batch);
        while self.rows > self.max_rows {
            let Some(old) = self.batches.pop_front() else { break };
            self.rows -= old.num_rows();
            self.evicted_rows += old.num_rows() as u64;
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches.iter().cloned().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Every error an endpoint answers with. One mapping to HTTP status; logged once, by the
/// request middleware, not here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("request body exceeds the limit of {limit_bytes} bytes{detail}")]
    TooLarge { limit_bytes: usize, detail: &'static str },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{reason}")]
    Unavailable { reason: String, retry_after_secs: u32 },
    #[error("no entry of the body could be decoded ({} errors)", errors.len())]
    NothingDecoded { errors: Vec<EntryError>, rejected: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The error text, carried to the logging middleware in the response extensions.
#[derive(Clone)]
struct LoggedError(String);

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::NothingDecoded { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::DecompressedTooLarge { limit_bytes } => ApiError::TooLarge { limit_bytes, detail: " once decompressed" },
            IngestError::BadGzip(_) | IngestError::NotUtf8 { .. } => ApiError::BadRequest(e.to_string()),
            IngestError::UnsupportedEncoding(_) => ApiError::UnsupportedMediaType(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = match &self {
            ApiError::NothingDecoded { errors, rejected } => {
                json!({"error": message, "accepted": 0, "duplicates": 0, "rejected": rejected, "errors": errors})
            }
            _ => json!({ "error": message }),
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::Unavailable { retry_after_secs, .. } = &self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        resp.extensions_mut().insert(LoggedError(message));
        resp
    }
}

// ---------------------------------------------------------------------------------------------
// Router

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/drains/vercel", get(vercel_verify).head(vercel_verify).post(vercel_drain))
        .route("/v1/logs/pino", axum::routing::post(pino_logs))
        .route("/v1/slo", get(slo_list))
        .route("/v1/slo/{name}", get(slo_one))
        .route("/v1/flows", get(flow_list))
        .route("/v1/flows/{flow}/health", get(flow_health))
        .route("/v1/alerts", get(alert_list))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Times every request, counts it by route and status, adds the Vercel verify header, and logs
/// error responses once.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    let status = resp.status();
    if let Some(code) = &state.settings.ingest.vercel_verify_code
        && let Ok(v) = HeaderValue::from_str(code)
    {
        resp.headers_mut().insert("x-vercel-verify", v);
    }
    if let Some(LoggedError(message)) = resp.extensions().get::<LoggedError>() {
        if status.is_server_error() {
            tracing::error!(%endpoint, %method, status = status.as_u16(), error = %message, "request failed");
        } else {
            tracing::warn!(%endpoint, %method, status = status.as_u16(), error = %message, "request rejected");
        }
    }
    state
        .metrics
        .http_request_duration
        .get_or_create(&HttpLabels { endpoint, status: status.as_u16().to_string() })
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see README.md for the API".into())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        Json(json!({"status": "ready"})).into_response()
    } else {
        ApiError::Unavailable { reason: "not ready: starting or shutting down".into(), retry_after_secs: 1 }.into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.live_buffer_rows.set(lock(&state.live).rows() as i64);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Ingest

#[derive(Debug, Serialize)]
pub struct IngestResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// HTTP request records made (each request counted once across deliveries).
    pub requests: usize,
    pub errors: Vec<EntryError>,
}

async fn vercel_verify() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

const VERCEL_ENDPOINT: &str = "/v1/drains/vercel";
const PINO_ENDPOINT: &str = "/v1/logs/pino";

async fn vercel_drain(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<IngestResponse>, ApiError> {
    let _permit = admit(&state)?;
    let raw = read_body(&state, &headers, body, VERCEL_ENDPOINT).await?;
    let secret = state.settings.ingest.vercel_drain_secret.clone();
    let signature = headers.get("x-vercel-signature").map(|v| v.to_str().unwrap_or("").to_owned());
    let encoding = content_encoding(&headers)?;
    let max = state.settings.ingest.max_decompressed_bytes;
    let received_ms = state.now_ms();
    let decoded = blocking(move || -> Result<Option<Decoded>, ApiError> {
        let body = slowburn_ingest::decompress(&raw, encoding.as_deref(), max)?;
        if slowburn_ingest::is_empty_ping(&body) {
            // Vercel's verification and test requests: answered, nothing stored.
            return Ok(None);
        }
        if let Some(secret) = secret {
            let Some(sig) = signature else {
                return Err(ApiError::Forbidden("missing x-vercel-signature header (a drain secret is configured)".into()));
            };
            let decompressed = matches!(body, std::borrow::Cow::Owned(_)).then_some(&*body);
            if !slowburn_ingest::verify_vercel_signature(secret.as_bytes(), &sig, &raw, decompressed) {
                return Err(ApiError::Forbidden("invalid signature".into()));
            }
        }
        Ok(Some(slowburn_ingest::decode_vercel(&body, received_ms)?))
    })
    .await?;
    store(&state, VERCEL_ENDPOINT, decoded, received_ms).map(Json)
}

#[derive(Debug, Deserialize)]
struct PinoQuery {
    service: Option<String>,
}

async fn pino_logs(
    State(state): State<Arc<AppState>>,
    Query(q): Query<PinoQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    if let Some(token) = &state.settings.ingest.pino_token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => return Err(ApiError::Unauthorized("missing `Authorization: Bearer <token>` (a pino token is configured)".into())),
            Some(given) if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) => {
                return Err(ApiError::Unauthorized("invalid bearer token".into()));
            }
            Some(_) => {}
        }
    }
    let _permit = admit(&state)?;
    let raw = read_body(&state, &headers, body, PINO_ENDPOINT).await?;
    let encoding = content_encoding(&headers)?;
    let max = state.settings.ingest.max_decompressed_bytes;
    let received_ms = state.now_ms();
    let service = q.service.filter(|s| !s.is_empty());
    let decoded = blocking(move || -> Result<Option<Decoded>, ApiError> {
        let body = slowburn_ingest::decompress(&raw, encoding.as_deref(), max)?;
        if body.trim_ascii().is_empty() {
            return Ok(None);
        }
        Ok(Some(slowburn_ingest::decode_pino(&body, service.as_deref(), received_ms)?))
    })
    .await?;
    store(&state, PINO_ENDPOINT, decoded, received_ms).map(Json)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn admit(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    state.ingest_permits.try_acquire().map_err(|_| ApiError::Unavailable {
        reason: format!("too many concurrent ingest requests (limit {}); retry shortly", state.settings.ingest.max_concurrent_requests),
        retry_after_secs: 1,
    })
}

fn content_encoding(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_owned())).map_err(|_| ApiError::UnsupportedMediaType("Content-Encoding is not ASCII".into())),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("decode task failed: {e}")))?
}

/// Reads the body, refusing more than the configured size (by Content-Length up front, and by
/// counting, for chunked bodies) and slow senders.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body, endpoint: &str) -> Result<Vec<u8>, ApiError> {
    let limit = state.settings.ingest.max_body_bytes;
    let too_large = || ApiError::TooLarge { limit_bytes: limit, detail: "" };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
            if out.len() + chunk.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    let out = tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::Timeout(format!("request body not received within {} s", BODY_READ_TIMEOUT.as_secs())))??;
    state.metrics.ingest_body_bytes.get_or_create(&EndpointLabels { endpoint: endpoint.to_owned() }).inc_by(out.len() as u64);
    Ok(out)
}

/// Deduplicates, feeds the engine and the live buffer, and builds the answer.
fn store(state: &AppState, endpoint: &str, decoded: Option<Decoded>, now_ms: i64) -> Result<IngestResponse, ApiError> {
    let Some(decoded) = decoded else {
        return Ok(IngestResponse { accepted: 0, duplicates: 0, rejected: 0, requests: 0, errors: vec![] });
    };
    let rejected = decoded.errors.len();
    let mut errors = decoded.errors;
    errors.truncate(MAX_LISTED_ERRORS);
    state.metrics.entries(endpoint, "rejected", rejected);
    if decoded.entries.is_empty() {
        if rejected == 0 {
            return Ok(IngestResponse { accepted: 0, duplicates: 0, rejected: 0, requests: 0, errors });
        }
        return Err(ApiError::NothingDecoded { errors, rejected });
    }
    let assembled: Assembled = slowburn_ingest::assemble(decoded.entries, &mut lock(&state.dedupe), now_ms);
    let batch = match slowburn_ingest::logs_to_batch(&assembled.logs) {
        Ok(b) => b,
        Err(e) => {
            // Not stored, so a redelivery must be accepted.
            let mut dedupe = lock(&state.dedupe);
            for key in &assembled.admitted_keys {
                dedupe.forget(key);
            }
            return Err(ApiError::Internal(format!("building the Arrow batch failed: {e}")));
        }
    };
    {
        let mut engine = lock(&state.engine);
        engine.advance(now_ms);
        for r in &assembled.requests {
            engine.record_request(r);
        }
        for f in &assembled.flows {
            engine.record_flow_event(f);
        }
    }
    if batch.num_rows() > 0 {
        lock(&state.live).push(batch);
    }
    if !assembled.requests.is_empty() || !assembled.flows.is_empty() {
        state.evaluate_now.notify_one();
    }
    state.metrics.entries(endpoint, "accepted", assembled.accepted);
    state.metrics.entries(endpoint, "duplicate", assembled.duplicates);
    state.metrics.ingest_requests_made.get_or_create(&EndpointLabels { endpoint: endpoint.to_owned() }).inc_by(assembled.requests.len() as u64);
    Ok(IngestResponse { accepted: assembled.accepted, duplicates: assembled.duplicates, rejected, requests: assembled.requests.len(), errors })
}

// ---------------------------------------------------------------------------------------------
// SLO state

async fn slo_list(State(state): State<Arc<AppState>>) -> Response {
    let status = {
        let mut engine = lock(&state.engine);
        engine.advance(state.now_ms());
        engine.status()
    };
    Json(status).into_response()
}

async fn slo_one(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let Some(index) = state.catalog.slos.iter().position(|s| s.name == name) else {
        let known: Vec<&str> = state.catalog.slos.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::NotFound(format!("unknown SLO `{name}`; known SLOs: {}", known.join(", "))));
    };
    let mut engine = lock(&state.engine);
    engine.advance(state.now_ms());
    Ok(Json(engine.slo_status(index)).into_response())
}

async fn flow_list(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let flows: Vec<_> = state
        .catalog
        .flows
        .iter()
        .map(|f| {
            let slos: Vec<&str> = state.catalog.slos.iter().filter(|s| s.flow == f.name).map(|s| s.name.as_str()).collect();
            json!({"name": f.name, "description": f.description, "slos": slos})
        })
        .collect();
    Json(json!(flows))
}

#[derive(Debug, Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

async fn flow_health(State(state): State<Arc<AppState>>, Path(flow): Path<String>, Query(q): Query<WindowQuery>) -> Result<Response, ApiError> {
    if state.catalog.flow(&flow).is_none() {
        let known: Vec<&str> = state.catalog.flows.iter().map(|f| f.name.as_str()).collect();
        return Err(ApiError::NotFound(format!("unknown flow `{flow}`; known flows: {}", known.join(", "))));
    }
    let window_text = q.window.unwrap_or_else(|| "1h".to_owned());
    let window_ms =
        parse_duration(&window_text).map_err(|e| ApiError::BadRequest(format!("window `{window_text}`: {e} (use for example 5m, 1h, 24h)")))?;
    let max_ms = state.catalog.slos.iter().filter(|s| s.flow == flow).map(|s| s.period_ms).max().unwrap_or(state.catalog.longest_period_ms());
    if window_ms <= 0 || window_ms > max_ms {
        return Err(ApiError::BadRequest(format!(
            "window `{window_text}` must be between 1s and {} (the flow's longest SLO period)",
            slowburn_slo_defs::format_duration(max_ms)
        )));
    }
    let mut engine = lock(&state.engine);
    engine.advance(state.now_ms());
    let health = engine.flow_health(&flow, window_ms).ok_or_else(|| ApiError::NotFound(format!("unknown flow `{flow}`")))?;
    let slos: Vec<_> = engine.status().into_iter().filter(|s| s.flow == flow).map(|s| json!({"name": s.name, "burn_rates": s.burn_rates})).collect();
    let mut body = serde_json::to_value(&health).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(obj) = body.as_object_mut() {
        obj.insert("flow".into(), json!(flow));
        obj.insert("window".into(), json!(window_text));
        obj.insert("as_of_ms".into(), json!(engine.now_ms()));
        obj.insert("slos".into(), json!(slos));
    }
    Ok(Json(body).into_response())
}

async fn alert_list(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let recent: Vec<AlertTransition> = lock(&state.transitions).iter().cloned().collect();
    Json(json!({ "transitions": recent }))
}

// ---------------------------------------------------------------------------------------------
// Serving

/// Evaluates the alert rules every `evaluate_interval_ms`, and at once after an ingest that
/// brought request records, so a burn is seen within milliseconds of the data arriving.
async fn evaluator(state: Arc<AppState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.settings.evaluate_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = state.evaluate_now.notified() => {}
        }
        evaluate_once(&state);
    }
}

pub fn evaluate_once(state: &AppState) {
    let (transitions, status, counters) = {
        let mut engine = lock(&state.engine);
        engine.advance(state.now_ms());
        let transitions = engine.evaluate();
        (transitions, engine.status(), engine.counters())
    };
    state.metrics.observe_engine(counters, &status);
    if transitions.is_empty() {
        return;
    }
    let mut recent = lock(&state.transitions);
    for t in transitions {
        let labels = RuleLabels { slo: t.slo.clone(), alert: t.alert.clone(), severity: t.severity.as_str().to_owned() };
        state.metrics.alert_transitions.get_or_create(&labels).inc();
        let state_text = match t.state {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        };
        tracing::warn!(
            slo = %t.slo, alert = %t.alert, severity = t.severity.as_str(), state = state_text, suppressed = t.suppressed,
            burn_long = ?t.burn_long, burn_short = ?t.burn_short, factor = t.factor, "alert transition"
        );
        recent.push_back(t);
        while recent.len() > RECENT_TRANSITIONS {
            recent.pop_front();
        }
    }
}

/// Serves `app(state)` on `listener` until `shutdown` is cancelled, then drains in-flight
/// requests and stops the background tasks.
pub async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    tracker.spawn(evaluator(state.clone(), shutdown.clone()));
    state.ready.store(true, Ordering::Release);
    let stop = shutdown.clone();
    let not_ready = state.clone();
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            not_ready.ready.store(false, Ordering::Release);
        })
        .await;
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    result
}
