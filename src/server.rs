//! The HTTP server: routes, shared state, the evaluation loop. `app(state)` builds the router;
//! `run(listener, state, shutdown)` serves it until the token is cancelled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
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
use slowburn_archive::{AppendError, Archive};
use slowburn_engine::{AlertState, AlertTransition, Engine};
use slowburn_ingest::{Assembled, Decoded, Deduper, EntryError, IngestError, MAX_LISTED_ERRORS};
use slowburn_notify::{AlertNotice, Notifier, NotifyConfig, RuleSnapshot};
use slowburn_query::{EngineState, QueryEngine, QueryError, QueryInputs};
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
    pub metrics: Metrics,
    pub transitions: Mutex<VecDeque<AlertTransition>>,
    archive: OnceLock<Archive>,
    query: OnceLock<QueryEngine>,
    ingest_permits: Semaphore,
    ready: AtomicBool,
    evaluate_now: Notify,
    clock: fn() -> i64,
    /// When the engine's state became trustworthy (after the rebuild), for the notifier's warm-up.
    ready_ms: AtomicI64,
    notifier: OnceLock<Notifier>,
    external_url: OnceLock<String>,
    pub recovery: Mutex<Option<crate::recovery::RecoveryReport>>,
    /// Who may call `/mcp` and `/v1/sql`.
    pub auth: slowburn_mcp::AuthPolicy,
    /// Cancelled when the server stops: ends the MCP sessions.
    mcp_shutdown: CancellationToken,
}

/// Tokens when configured; without them, open on loopback and refused beyond it.
pub fn auth_policy(settings: &Settings) -> slowburn_mcp::AuthPolicy {
    use slowburn_mcp::AuthPolicy;
    if !settings.mcp.tokens.is_empty() {
        AuthPolicy::Tokens(Arc::new(settings.mcp.tokens.clone()))
    } else if settings.listen.ip().is_loopback() {
        AuthPolicy::LoopbackOpen
    } else {
        AuthPolicy::Refuse
    }
}

pub fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl AppState {
    pub fn new(settings: Settings, catalog: Arc<Catalog>) -> Arc<Self> {
        Arc::new(AppState {
            engine: Mutex::new(Engine::new(catalog.clone())),
            dedupe: Mutex::new(Deduper::new(
                settings.ingest.dedupe_window_ms,
                settings.ingest.dedupe_max_keys,
            )),
            metrics: Metrics::default(),
            transitions: Mutex::new(VecDeque::new()),
            archive: OnceLock::new(),
            query: OnceLock::new(),
            ingest_permits: Semaphore::new(settings.ingest.max_concurrent_requests),
            ready: AtomicBool::new(false),
            evaluate_now: Notify::new(),
            clock: wall_clock_ms,
            ready_ms: AtomicI64::new(i64::MAX),
            notifier: OnceLock::new(),
            external_url: OnceLock::new(),
            recovery: Mutex::new(None),
            auth: auth_policy(&settings),
            mcp_shutdown: CancellationToken::new(),
            settings,
            catalog,
        })
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The archive, once recovery has finished.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.get()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The engine's state as the query engine's `slo_status`, `alerts`, `alert_transitions`.
    pub fn engine_state(&self) -> EngineState {
        let slos = {
            let mut engine = lock(&self.engine);
            engine.advance(self.now_ms());
            engine.status()
        };
        EngineState {
            slos,
            transitions: lock(&self.transitions).iter().cloned().collect(),
            catalog: Some(self.catalog.clone()),
        }
    }

    /// Runs a read-only SQL statement over the archive, the live rows and the engine's state.
    pub async fn sql(
        &self,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<slowburn_query::QueryOutput, QueryError> {
        let (Some(archive), Some(query)) = (self.archive.get(), self.query.get()) else {
            return Err(QueryError::Unavailable(
                "starting: the archive is still being recovered".into(),
            ));
        };
        let inputs = QueryInputs {
            snapshot: archive.snapshot(),
            state: Some(self.engine_state()),
        };
        query.run(sql, inputs, max_rows).await
    }
}

/// A poisoned lock only means another request panicked mid-update; the data is counters, so
/// keep serving rather than turning every later request into a 500.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    TooLarge {
        limit_bytes: usize,
        detail: &'static str,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{reason}")]
    Unavailable {
        reason: String,
        retry_after_secs: u32,
    },
    #[error("no entry of the body could be decoded ({} errors)", errors.len())]
    NothingDecoded {
        errors: Vec<EntryError>,
        rejected: usize,
    },
    #[error("{0}")]
    Query(QueryError),
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
            ApiError::Query(q) => {
                StatusCode::from_u16(q.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        // A full WAL drains only as fast as the object store comes back: ask for a longer wait.
        let retry_after_secs = match e {
            AppendError::Full { .. } => 10,
            _ => 1,
        };
        ApiError::Unavailable {
            reason: format!("not stored: {e}"),
            retry_after_secs,
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::DecompressedTooLarge { limit_bytes } => ApiError::TooLarge {
                limit_bytes,
                detail: " once decompressed",
            },
            IngestError::BadGzip(_) | IngestError::NotUtf8 { .. } => {
                ApiError::BadRequest(e.to_string())
            }
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
        let retry_after = match &self {
            ApiError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Query(QueryError::Busy(_)) | ApiError::Query(QueryError::Unavailable(_)) => {
                Some(1)
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
        .route(
            "/v1/drains/vercel",
            get(vercel_verify).head(vercel_verify).post(vercel_drain),
        )
        .route("/v1/logs/pino", axum::routing::post(pino_logs))
        .route("/v1/slo", get(slo_list))
        .route("/v1/slo/{name}", get(slo_one))
        .route("/v1/flows", get(flow_list))
        .route("/v1/flows/{flow}/health", get(flow_health))
        .route("/v1/alerts", get(alert_list))
        .route("/v1/sql", axum::routing::post(sql_endpoint))
        .merge(mcp_router(&state))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `/mcp`: the ops server over streamable HTTP, answering from this server's tables.
fn mcp_router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let m = &state.settings.mcp;
    let runbooks = match crate::mcp_wiring::load_runbooks(m.runbooks_dir.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot load runbooks; ops://runbooks is empty");
            Vec::new()
        }
    };
    let ops = Arc::new(slowburn_mcp::Ops::new(
        Arc::new(crate::mcp_wiring::LocalSource {
            state: state.clone(),
        }),
        Arc::new(runbooks),
        m.max_rows,
    ));
    slowburn_mcp::http_router(
        ops,
        slowburn_mcp::HttpConfig {
            allowed_hosts: m.allowed_hosts.clone(),
            auth: state.auth.clone(),
            max_request_bytes: m.max_request_bytes,
        },
        state.mcp_shutdown.clone(),
    )
    .with_state(())
}

/// Times every request, counts it by route and status, adds the Vercel verify header, and logs
/// error responses once.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
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
        .get_or_create(&HttpLabels {
            endpoint,
            status: status.as_u16().to_string(),
        })
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
        ApiError::Unavailable { reason: "not ready: recovering the write-ahead log and rebuilding SLO state, or shutting down".into(), retry_after_secs: 1 }
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(archive) = state.archive.get() {
        state.metrics.observe_archive(archive);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
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

async fn vercel_drain(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, ApiError> {
    let _permit = admit(&state)?;
    let raw = read_body(&state, &headers, body, VERCEL_ENDPOINT).await?;
    let secret = state.settings.ingest.vercel_drain_secret.clone();
    let signature = headers
        .get("x-vercel-signature")
        .map(|v| v.to_str().unwrap_or("").to_owned());
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
                return Err(ApiError::Forbidden(
                    "missing x-vercel-signature header (a drain secret is configured)".into(),
                ));
            };
            let decompressed = matches!(body, std::borrow::Cow::Owned(_)).then_some(&*body);
            if !slowburn_ingest::verify_vercel_signature(
                secret.as_bytes(),
                &sig,
                &raw,
                decompressed,
            ) {
                return Err(ApiError::Forbidden("invalid signature".into()));
            }
        }
        Ok(Some(slowburn_ingest::decode_vercel(&body, received_ms)?))
    })
    .await?;
    store(&state, VERCEL_ENDPOINT, decoded, received_ms)
        .await
        .map(Json)
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
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return Err(ApiError::Unauthorized(
                    "missing `Authorization: Bearer <token>` (a pino token is configured)".into(),
                ));
            }
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
        Ok(Some(slowburn_ingest::decode_pino(
            &body,
            service.as_deref(),
            received_ms,
        )?))
    })
    .await?;
    store(&state, PINO_ENDPOINT, decoded, received_ms)
        .await
        .map(Json)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn admit(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::Unavailable {
            reason:
                "starting: recovering the write-ahead log and rebuilding SLO state; retry shortly"
                    .into(),
            retry_after_secs: 2,
        });
    }
    state
        .ingest_permits
        .try_acquire()
        .map_err(|_| ApiError::Unavailable {
            reason: format!(
                "too many concurrent ingest requests (limit {}); retry shortly",
                state.settings.ingest.max_concurrent_requests
            ),
            retry_after_secs: 1,
        })
}

fn content_encoding(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::UnsupportedMediaType("Content-Encoding is not ASCII".into())),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("decode task failed: {e}")))?
}

/// The request's `Content-Length`, refused with 413 up front when it exceeds `limit`.
fn declared_length(headers: &HeaderMap, limit: usize) -> Result<Option<u64>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge {
            limit_bytes: limit,
            detail: "",
        });
    }
    Ok(declared)
}

/// Reads the body, refusing more than the configured size (by Content-Length up front, and by
/// counting, for chunked bodies) and slow senders.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: &str,
) -> Result<Vec<u8>, ApiError> {
    let limit = state.settings.ingest.max_body_bytes;
    let too_large = || ApiError::TooLarge {
        limit_bytes: limit,
        detail: "",
    };
    let declared = declared_length(headers, limit)?;
    let read = async {
        let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            })?;
            if out.len() + chunk.len() > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    };
    let out = tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "request body not received within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ))
        })??;
    state
        .metrics
        .ingest_body_bytes
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.to_owned(),
        })
        .inc_by(out.len() as u64);
    Ok(out)
}

/// What one body becomes before it is made durable.
struct Prepared {
    assembled: Assembled,
    logs: RecordBatch,
    requests: RecordBatch,
}

/// Deduplicates and builds the batches to store (off the async threads): the log rows, PII
/// redacted, and the request rows with the flow each counts in.
fn prepare(state: &AppState, decoded: Decoded, now_ms: i64) -> Result<Prepared, ApiError> {
    let assembled: Assembled =
        slowburn_ingest::assemble(decoded.entries, &mut lock(&state.dedupe), now_ms);
    let forget = |assembled: &Assembled| {
        let mut dedupe = lock(&state.dedupe);
        for key in &assembled.admitted_keys {
            dedupe.forget(key);
        }
    };
    if assembled.pending > 0 {
        forget(&assembled);
        return Err(ApiError::Unavailable {
            reason: format!(
                "{} entries of this body are already being stored by a concurrent delivery; retry shortly",
                assembled.pending
            ),
            retry_after_secs: 1,
        });
    }
    let built = (|| -> Result<(RecordBatch, RecordBatch), String> {
        let logs = slowburn_ingest::logs_to_batch(&assembled.logs)
            .map_err(|e| format!("building the Arrow log batch failed: {e}"))?;
        let logs = slowburn_archive::pii::redact_logs(&logs, &state.settings.archive.pii)
            .map_err(|e| format!("redacting the log batch failed: {e}"))?;
        let flow_name = |i: Option<usize>| i.map(|i| state.catalog.flows[i].name.as_str());
        let request_flows: Vec<Option<&str>> = assembled
            .requests
            .iter()
            .map(|r| {
                flow_name(
                    r.path
                        .as_deref()
                        .and_then(|p| state.catalog.match_request(r.method.as_deref(), p)),
                )
            })
            .collect();
        let event_flows: Vec<Option<&str>> = assembled
            .flows
            .iter()
            .map(|e| flow_name(state.catalog.match_envelope(&e.flow)))
            .collect();
        let requests = slowburn_archive::requests::requests_batch(
            &assembled.requests,
            &request_flows,
            &assembled.flows,
            &event_flows,
        )
        .map_err(|e| format!("building the request batch failed: {e}"))?;
        // Request paths are free text too (`/api/users/jane@example.com`); the same rules apply by
        // column name.
        let requests = slowburn_archive::pii::redact_logs(&requests, &state.settings.archive.pii)
            .map_err(|e| format!("redacting the request batch failed: {e}"))?;
        Ok((logs, requests))
    })();
    match built {
        Ok((logs, requests)) => Ok(Prepared {
            assembled,
            logs,
            requests,
        }),
        Err(e) => {
            // Not stored, so a redelivery must be accepted.
            forget(&assembled);
            Err(ApiError::Internal(e))
        }
    }
}

/// Deduplicates, appends to the write-ahead log (durable before anything else happens), feeds the
/// engine, and builds the answer. A 200 means every accepted entry is on disk.
async fn store(
    state: &Arc<AppState>,
    endpoint: &str,
    decoded: Option<Decoded>,
    now_ms: i64,
) -> Result<IngestResponse, ApiError> {
    let Some(decoded) = decoded else {
        return Ok(IngestResponse {
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            requests: 0,
            errors: vec![],
        });
    };
    let rejected = decoded.errors.len();
    let mut errors = decoded.errors.clone();
    errors.truncate(MAX_LISTED_ERRORS);
    if decoded.entries.is_empty() {
        state.metrics.entries(endpoint, "rejected", rejected);
        if rejected == 0 {
            return Ok(IngestResponse {
                accepted: 0,
                duplicates: 0,
                rejected: 0,
                requests: 0,
                errors,
            });
        }
        return Err(ApiError::NothingDecoded { errors, rejected });
    }
    let archive = state.archive.get().ok_or_else(|| ApiError::Unavailable {
        reason: "starting: the archive is not open yet".into(),
        retry_after_secs: 2,
    })?;
    let prepared = {
        let state = state.clone();
        blocking(move || prepare(&state, decoded, now_ms)).await?
    };
    let Prepared {
        assembled,
        logs,
        requests,
    } = prepared;
    if assembled.accepted > 0
        && let Err(e) = archive.append(logs, requests).await
    {
        let mut dedupe = lock(&state.dedupe);
        for key in &assembled.admitted_keys {
            dedupe.forget(key);
        }
        return Err(e.into());
    }
    lock(&state.dedupe).commit(&assembled.admitted_keys);
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
    if !assembled.requests.is_empty() || !assembled.flows.is_empty() {
        state.evaluate_now.notify_one();
    }
    state.metrics.entries(endpoint, "rejected", rejected);
    state
        .metrics
        .entries(endpoint, "accepted", assembled.accepted);
    state
        .metrics
        .entries(endpoint, "duplicate", assembled.duplicates);
    state
        .metrics
        .ingest_requests_made
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.to_owned(),
        })
        .inc_by(assembled.requests.len() as u64);
    Ok(IngestResponse {
        accepted: assembled.accepted,
        duplicates: assembled.duplicates,
        rejected,
        requests: assembled.requests.len(),
        errors,
    })
}

// ---------------------------------------------------------------------------------------------
// SQL

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    #[serde(default)]
    max_rows: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct SqlQuery {
    format: Option<String>,
}

async fn sql_endpoint(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SqlQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(refused) = slowburn_mcp::auth::authenticate(&state.auth, authorization) {
        return Ok(refused.into_response());
    }
    let limit = state.settings.query.max_request_bytes;
    let too_large = || ApiError::TooLarge {
        limit_bytes: limit,
        detail: "",
    };
    declared_length(&headers, limit)?;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let req: SqlRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"sql\": \"SELECT ...\", \"max_rows\": N}}: {e}"
        ))
    })?;
    if req.sql.trim().is_empty() {
        return Err(ApiError::BadRequest("`sql` is empty".into()));
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match q.format.as_deref() {
        Some("json") => "json",
        Some("csv") => "csv",
        Some("arrow") => "arrow",
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown format `{other}`: use json, csv or arrow"
            )));
        }
        None if accept.contains("text/csv") => "csv",
        None if accept.contains("application/vnd.apache.arrow.stream") => "arrow",
        None => "json",
    };
    let out = state
        .sql(&req.sql, req.max_rows)
        .await
        .map_err(ApiError::Query)?;
    let truncated = HeaderValue::from_static(if out.truncated { "true" } else { "false" });
    let mut resp = match format {
        "csv" => {
            let body = out
                .to_csv()
                .map_err(|e| ApiError::Internal(format!("CSV encoding failed: {e}")))?;
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response()
        }
        "arrow" => {
            let body = out
                .to_arrow_ipc()
                .map_err(|e| ApiError::Internal(format!("Arrow encoding failed: {e}")))?;
            (
                [(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")],
                body,
            )
                .into_response()
        }
        _ => Json(out.to_json()).into_response(),
    };
    resp.headers_mut().insert("x-slowburn-truncated", truncated);
    Ok(resp)
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

async fn slo_one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Some(index) = state.catalog.slos.iter().position(|s| s.name == name) else {
        let known: Vec<&str> = state.catalog.slos.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::NotFound(format!(
            "unknown SLO `{name}`; known SLOs: {}",
            known.join(", ")
        )));
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
            let slos: Vec<&str> = state
                .catalog
                .slos
                .iter()
                .filter(|s| s.flow == f.name)
                .map(|s| s.name.as_str())
                .collect();
            json!({"name": f.name, "description": f.description, "slos": slos})
        })
        .collect();
    Json(json!(flows))
}

#[derive(Debug, Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

async fn flow_health(
    State(state): State<Arc<AppState>>,
    Path(flow): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    if state.catalog.flow(&flow).is_none() {
        let known: Vec<&str> = state
            .catalog
            .flows
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        return Err(ApiError::NotFound(format!(
            "unknown flow `{flow}`; known flows: {}",
            known.join(", ")
        )));
    }
    let window_text = q.window.unwrap_or_else(|| "1h".to_owned());
    let window_ms = parse_duration(&window_text).map_err(|e| {
        ApiError::BadRequest(format!(
            "window `{window_text}`: {e} (use for example 5m, 1h, 24h)"
        ))
    })?;
    let max_ms = state
        .catalog
        .slos
        .iter()
        .filter(|s| s.flow == flow)
        .map(|s| s.period_ms)
        .max()
        .unwrap_or(state.catalog.longest_period_ms());
    if window_ms <= 0 || window_ms > max_ms {
        return Err(ApiError::BadRequest(format!(
            "window `{window_text}` must be between 1s and {} (the flow's longest SLO period)",
            slowburn_slo_defs::format_duration(max_ms)
        )));
    }
    let mut engine = lock(&state.engine);
    engine.advance(state.now_ms());
    let health = engine
        .flow_health(&flow, window_ms)
        .ok_or_else(|| ApiError::NotFound(format!("unknown flow `{flow}`")))?;
    let slos: Vec<_> = engine
        .status()
        .into_iter()
        .filter(|s| s.flow == flow)
        .map(|s| json!({"name": s.name, "burn_rates": s.burn_rates}))
        .collect();
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
    let mut tick =
        tokio::time::interval(Duration::from_millis(state.settings.evaluate_interval_ms));
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
    if let Some(notifier) = state.notifier.get() {
        notifier.reconcile(&snapshots(state, &status));
    }
    if transitions.is_empty() {
        return;
    }
    let mut recent = lock(&state.transitions);
    for t in transitions {
        let labels = RuleLabels {
            slo: t.slo.clone(),
            alert: t.alert.clone(),
            severity: t.severity.as_str().to_owned(),
        };
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

/// The desired notification state of every rule, for the notifier to reconcile.
fn snapshots(state: &AppState, status: &[slowburn_engine::SloStatus]) -> Vec<RuleSnapshot> {
    let external = state.external_url.get().map(String::as_str).unwrap_or("");
    let uptime_ms = state
        .now_ms()
        .saturating_sub(state.ready_ms.load(Ordering::Relaxed));
    let mut out = Vec::new();
    for s in status {
        let runbook_url =
            s.runbook
                .as_ref()
                .map(|r| match &state.settings.notify.runbook_base_url {
                    Some(base) if !r.contains("://") => format!(
                        "{}/{}",
                        base.trim_end_matches('/'),
                        r.trim_start_matches('/')
                    ),
                    _ => r.clone(),
                });
        for a in &s.alerts {
            // The engine's windows are rebuilt from durable data before the server is ready, so
            // "resolved" can be trusted at once; a warm-up can still be configured.
            let warmup_ms = state
                .settings
                .notify
                .restart_warmup
                .map_or(0, |w| w.as_millis() as i64);
            out.push(RuleSnapshot {
                notice: AlertNotice {
                    slo: s.name.clone(),
                    flow: s.flow.clone(),
                    alert: a.rule.clone(),
                    severity: a.severity.as_str().to_owned(),
                    firing: a.state == AlertState::Firing,
                    time_ms: s.as_of_ms,
                    since_ms: a.since_ms.unwrap_or(s.as_of_ms),
                    objective_percent: s.objective,
                    burn_long: a.burn_long,
                    burn_short: a.burn_short,
                    factor: a.factor,
                    long_window: a.long_window.clone(),
                    short_window: a.short_window.clone(),
                    budget_remaining: s.error_budget.remaining,
                    time_to_exhaustion_secs: s.error_budget.time_to_exhaustion_secs,
                    runbook_url: runbook_url.clone(),
                    flow_health_url: Some(format!(
                        "{external}/v1/flows/{}/health?window={}",
                        s.flow, a.long_window
                    )),
                    test: false,
                },
                suppressed: a.suppressed,
                resolve_allowed: uptime_ms >= warmup_ms,
            });
        }
    }
    out
}

pub fn notify_config(settings: &Settings, external_url: String) -> NotifyConfig {
    let n = &settings.notify;
    NotifyConfig {
        receivers: n.receivers.clone(),
        routes: n.routes.clone(),
        attempt_timeout: n.attempt_timeout,
        deadline: n.deadline,
        queue_capacity: n.queue_capacity,
        external_url,
        ledger_path: Some(settings.data_dir.join("notify").join("ledger.json")),
        backoff_base: n.backoff_base,
        backoff_max: Duration::from_secs(30),
    }
}

/// Serves `app(state)` on `listener` until `shutdown` is cancelled, then drains in-flight
/// requests and stops the background tasks.
///
/// The listener answers at once (`/healthz` 200, `/readyz` and ingest 503 with `Retry-After`);
/// meanwhile the write-ahead log is recovered, the archive listed, and the engine's windows and
/// the redelivery memory rebuilt. Only then do ingest, the evaluator and the notifier start.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tracker = TaskTracker::new();
    let external_url = state
        .settings
        .notify
        .external_url
        .clone()
        .unwrap_or_else(|| match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(_) => String::new(),
        });
    let _ = state.external_url.set(external_url.clone());
    let startup = tracker.spawn(start_up(
        state.clone(),
        tracker.clone(),
        shutdown.clone(),
        external_url,
    ));
    let stop = shutdown.clone();
    let not_ready = state.clone();
    match &state.auth {
        slowburn_mcp::AuthPolicy::Tokens(t) => {
            tracing::info!(tokens = t.len(), "/mcp and /v1/sql require a bearer token")
        }
        slowburn_mcp::AuthPolicy::LoopbackOpen => tracing::info!(
            "/mcp and /v1/sql are open without tokens because slowburn listens on loopback only; set SLOWBURN_MCP_TOKENS to require tokens"
        ),
        slowburn_mcp::AuthPolicy::Refuse => tracing::warn!(
            "/mcp and /v1/sql answer 403: slowburn listens beyond loopback and no token is configured (SLOWBURN_MCP_TOKENS=name:token)"
        ),
    }
    let result = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            not_ready.ready.store(false, Ordering::Release);
            not_ready.mcp_shutdown.cancel();
        })
        .await;
    shutdown.cancel();
    let started = startup.await.unwrap_or(false);
    if started && let Some(archive) = state.archive.get() {
        // Convert what is in the WAL now, so a clean stop leaves nothing to recover. Bounded:
        // whatever is not uploaded in time stays in the WAL, durable, for the next start.
        match tokio::time::timeout(
            state.settings.archive.shutdown_flush_timeout,
            archive.flush(),
        )
        .await
        {
            Ok(Ok(n)) => {
                tracing::info!(segments = n, "archived the write-ahead log before stopping")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not archive the write-ahead log before stopping; it is recovered at the next start")
            }
            Err(_) => tracing::warn!(
                "archiving the write-ahead log took too long; it is recovered at the next start"
            ),
        }
    }
    tracker.close();
    tracker.wait().await;
    result
}

/// Recovery, then the background tasks. Returns whether the server became ready.
async fn start_up(
    state: Arc<AppState>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    external_url: String,
) -> bool {
    let mut backoff = Duration::from_millis(500);
    let (archive, recovery) = loop {
        let attempt = crate::recovery::open_archive(&state.settings);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return false,
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(opened) => break opened,
            Err(e) => {
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot open the archive; ingest answers 503 until it opens");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    let rebuild = crate::recovery::rebuild(&state, &archive, recovery);
    let report = tokio::select! {
        _ = shutdown.cancelled() => return false,
        report = rebuild => report,
    };
    match report {
        Ok(report) => {
            tracing::info!(
                wal_segments = report.wal_segments,
                wal_records = report.wal_records,
                cut_bytes = report.cut_bytes,
                files = report.files_read,
                requests = report.requests,
                dedupe_keys = report.dedupe_keys,
                elapsed_ms = report.elapsed_ms,
                "recovered: SLO state rebuilt from the archive and the write-ahead log"
            );
            *lock(&state.recovery) = Some(report);
        }
        Err(e) => {
            tracing::error!(error = %e, "rebuilding SLO state from the archive failed; serving with what was rebuilt");
        }
    }
    let query = match QueryEngine::new(
        crate::config::query_config(&state.settings),
        archive.store(),
        slowburn_ingest::log_schema(),
    ) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the SQL engine");
            return false;
        }
    };
    let _ = state.query.set(query);
    archive.start(&tracker, shutdown.clone());
    let _ = state.archive.set(archive);
    if !state.settings.notify.receivers.is_empty() {
        let metrics_state = state.clone();
        let observer: slowburn_notify::Observer = Arc::new(move |receiver: &str, outcome: &str| {
            metrics_state.metrics.notification(receiver, outcome);
        });
        match Notifier::start(
            notify_config(&state.settings, external_url),
            observer,
            &tracker,
            shutdown.clone(),
        ) {
            Ok(notifier) => {
                let _ = state.notifier.set(notifier);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start alert delivery; alerts are evaluated but not sent")
            }
        }
    }
    state.ready_ms.store(state.now_ms(), Ordering::Relaxed);
    tracker.spawn(evaluator(state.clone(), shutdown.clone()));
    state.ready.store(true, Ordering::Release);
    tracing::info!("ready: accepting logs");
    true
}
