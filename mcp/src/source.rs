//! Where the ops server's data comes from: anything that answers read-only SQL over the tables
//! `slo_status`, `alerts`, `flows`, `requests` and `logs` (see `docs/sql.md`). The server itself
//! answers in process; `slowburn mcp --server URL` asks a running server over `POST /v1/sql`;
//! `slowburn mcp --archive URL` queries an archive directly.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

/// A query result: columns, rows of JSON values in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub truncated: bool,
    pub elapsed_ms: f64,
}

impl SqlTable {
    /// Parses the JSON answer of `POST /v1/sql` (`{"columns","rows","truncated","elapsed_ms"}`).
    pub fn from_json(v: &Value) -> Option<Self> {
        let columns = v["columns"]
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let rows = v["rows"]
            .as_array()?
            .iter()
            .map(|r| r.as_array().cloned())
            .collect::<Option<Vec<_>>>()?;
        Some(SqlTable {
            columns,
            rows,
            truncated: v["truncated"].as_bool().unwrap_or(false),
            elapsed_ms: v["elapsed_ms"].as_f64().unwrap_or(0.0),
        })
    }

    /// Rows as JSON objects keyed by column name.
    pub fn objects(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// The value of `column` in `row`, or null.
    pub fn get(&self, row: usize, column: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.rows.get(row).and_then(|r| r.get(i)))
            .unwrap_or(&NULL)
    }
}

/// Why a query gave no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The statement is wrong (syntax, unknown column, not read-only, over a limit): the caller
    /// can fix it.
    #[error("{0}")]
    Query(String),
    /// The data is not reachable now (server starting or down, archive unreachable).
    #[error("{0}")]
    Unavailable(String),
}

pub type SourceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SqlTable, SourceError>> + Send + 'a>>;

/// Runs read-only SQL. Implementations apply the query guards of `/v1/sql` (timeout, memory,
/// row cap, read-only).
pub trait SqlSource: Send + Sync + 'static {
    fn query<'a>(&'a self, sql: &'a str, max_rows: usize) -> SourceFuture<'a>;
    /// What the data is, for the server's instructions (e.g. "the server at http://...").
    fn describe(&self) -> String;
}

/// A running slowburn server, asked over `POST /v1/sql`.
pub struct HttpSource {
    base_url: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl HttpSource {
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| SourceError::Unavailable(format!("cannot build an HTTP client: {e}")))?;
        Ok(HttpSource {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }
}

impl SqlSource for HttpSource {
    fn query<'a>(&'a self, sql: &'a str, max_rows: usize) -> SourceFuture<'a> {
        Box::pin(async move {
            let url = format!("{}/v1/sql", self.base_url);
            let mut req = self
                .client
                .post(&url)
                .json(&serde_json::json!({ "sql": sql, "max_rows": max_rows }));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| {
                SourceError::Unavailable(format!(
                    "cannot reach slowburn at {}: {e} (is `slowburn serve` running? pass --server URL)",
                    self.base_url
                ))
            })?;
            let status = resp.status();
            let body: Value = resp.json().await.map_err(|e| {
                SourceError::Unavailable(format!("{url} answered {status} without JSON: {e}"))
            })?;
            if status.is_success() {
                return SqlTable::from_json(&body).ok_or_else(|| {
                    SourceError::Unavailable(format!("{url} answered an unexpected shape"))
                });
            }
            let message = body["error"].as_str().unwrap_or("no message").to_owned();
            match status.as_u16() {
                401 | 403 => Err(SourceError::Unavailable(format!(
                    "{url} refused the token ({status}): {message} (set SLOWBURN_TOKEN)"
                ))),
                400 | 408 | 413 | 422 => Err(SourceError::Query(message)),
                _ => Err(SourceError::Unavailable(format!(
                    "{url}: {status}: {message}"
                ))),
            }
        })
    }

    fn describe(&self) -> String {
        format!("the slowburn server at {}", self.base_url)
    }
}
