//! Configuration: one TOML file (`--config`), every key optional with a laptop-friendly default,
//! validated into [`Settings`] at start. Secrets come from the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use slowburn_notify::{PAGERDUTY_EVENTS_URL, ReceiverConfig, ReceiverKind};

/// What the TOML file may say. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// A catalog file or folder; default `slo-defs/` when it exists, else the embedded catalog.
    pub slo_defs: Option<PathBuf>,
    pub ingest: RawIngest,
    pub engine: RawEngine,
    pub notify: RawNotify,
    pub archive: RawArchive,
    pub query: RawQuery,
    pub mcp: RawMcp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawArchive {
    /// `file:///path` or `s3://bucket/prefix` (default `<data_dir>/archive`).
    pub url: Option<String>,
    /// Permit a plain-http S3 endpoint (`AWS_ENDPOINT_URL=http://...`).
    pub allow_http: Option<bool>,
    pub segment_max_bytes: Option<u64>,
    pub flush_interval_secs: Option<f64>,
    pub wal_max_bytes: Option<u64>,
    pub row_group_rows: Option<usize>,
    pub retention_days: Option<f64>,
    pub retention_check_interval_secs: Option<u64>,
    pub upload_timeout_secs: Option<u64>,
    pub append_queue: Option<usize>,
    pub shutdown_flush_timeout_secs: Option<u64>,
    /// truncate | hash | keep
    pub client_ip: Option<String>,
    /// Key for `client_ip = "hash"`; prefer `SLOWBURN_PII_HASH_KEY`.
    pub pii_hash_key: Option<String>,
    /// Redact e-mail addresses, tokens and secrets in messages, paths and attributes.
    pub redact_text: Option<bool>,
    /// Merge an hour partition once it has this many files...
    pub compact_min_files: Option<usize>,
    /// ...and they total at most this many bytes...
    pub compact_max_bytes: Option<u64>,
    /// ...this long after the hour ended.
    pub compact_after_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQuery {
    pub timeout_secs: Option<f64>,
    /// Largest `POST /v1/sql` body.
    pub max_request_bytes: Option<usize>,
    pub memory_limit_bytes: Option<usize>,
    pub max_rows: Option<usize>,
    pub max_concurrent: Option<usize>,
    pub target_partitions: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMcp {
    /// `Host` header values the `/mcp` endpoint accepts besides localhost (DNS-rebinding guard).
    pub allowed_hosts: Option<Vec<String>>,
    /// Bearer tokens for `/mcp` and `/v1/sql`: name → token (scope `read`), or name →
    /// `{ token, scopes }`; `${VAR}` is substituted. Prefer `SLOWBURN_MCP_TOKENS=name:token,...`.
    pub tokens: Option<std::collections::BTreeMap<String, RawToken>>,
    /// Rows at most in one tool answer (and the largest `limit` of `sql_query`).
    pub max_rows: Option<usize>,
    /// Folder of `*.md` runbooks (default `docs/runbooks/` if present, else the embedded ones).
    pub runbooks_dir: Option<PathBuf>,
    /// Largest JSON-RPC request body.
    pub max_request_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawToken {
    Secret(String),
    Scoped { token: String, scopes: Vec<String> },
}

/// Durable archive settings.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    pub url: Option<slowburn_archive::ArchiveUrl>,
    pub allow_http: bool,
    pub segment_max_bytes: u64,
    pub flush_interval: Duration,
    pub wal_max_bytes: u64,
    pub row_group_rows: usize,
    pub retention: Duration,
    pub retention_check_interval: Duration,
    pub upload_timeout: Duration,
    pub append_queue: usize,
    pub shutdown_flush_timeout: Duration,
    pub pii: slowburn_archive::pii::PiiConfig,
    pub compact_min_files: usize,
    pub compact_max_bytes: u64,
    pub compact_after: Duration,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings {
            url: None,
            allow_http: false,
            segment_max_bytes: 64 << 20,
            flush_interval: Duration::from_secs(60),
            wal_max_bytes: 2 << 30,
            row_group_rows: 128 * 1024,
            retention: Duration::from_secs(30 * 86_400),
            retention_check_interval: Duration::from_secs(3600),
            upload_timeout: Duration::from_secs(60),
            append_queue: 4096,
            shutdown_flush_timeout: Duration::from_secs(10),
            pii: slowburn_archive::pii::PiiConfig::strict(),
            compact_min_files: 4,
            compact_max_bytes: 64 << 20,
            compact_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QuerySettings {
    pub timeout: Duration,
    pub max_request_bytes: usize,
    pub memory_limit_bytes: usize,
    pub max_rows: usize,
    pub max_concurrent: usize,
    pub target_partitions: usize,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            timeout: Duration::from_secs(30),
            max_request_bytes: 1 << 20,
            memory_limit_bytes: 1 << 30,
            max_rows: 10_000,
            max_concurrent: 8,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct McpSettings {
    pub allowed_hosts: Vec<String>,
    pub tokens: Vec<slowburn_mcp::Token>,
    pub max_rows: usize,
    pub runbooks_dir: Option<PathBuf>,
    pub max_request_bytes: usize,
}

impl Default for McpSettings {
    fn default() -> Self {
        McpSettings {
            allowed_hosts: Vec::new(),
            tokens: Vec::new(),
            max_rows: 200,
            runbooks_dir: None,
            max_request_bytes: 1 << 20,
        }
    }
}

pub fn query_config(settings: &Settings) -> slowburn_query::QueryConfig {
    let q = &settings.query;
    slowburn_query::QueryConfig {
        timeout: q.timeout,
        memory_limit_bytes: q.memory_limit_bytes,
        max_rows: q.max_rows,
        max_concurrent: q.max_concurrent,
        target_partitions: q.target_partitions,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    pub max_body_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub dedupe_window_secs: Option<u64>,
    pub dedupe_max_keys: Option<usize>,
    /// Prefer the `SLOWBURN_VERCEL_DRAIN_SECRET` environment variable.
    pub vercel_drain_secret: Option<String>,
    pub vercel_verify_code: Option<String>,
    /// Prefer the `SLOWBURN_PINO_TOKEN` environment variable.
    pub pino_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEngine {
    pub evaluate_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// slowburn's URL as receivers should link to it (default `http://<listen>`).
    pub external_url: Option<String>,
    /// Prefix for relative runbook paths in notifications (e.g. a repository's blob URL).
    pub runbook_base_url: Option<String>,
    pub deadline_secs: Option<u64>,
    pub attempt_timeout_secs: Option<u64>,
    pub queue_capacity: Option<usize>,
    /// After a start, a rule that was notified as firing is resolved only after this long
    /// (default 0: the engine's windows are rebuilt from the archive before the server is ready).
    pub restart_warmup_secs: Option<u64>,
    pub receivers: Vec<RawReceiver>,
    /// Severity (SEV1, SEV2, SEV3) → receiver names.
    pub routes: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    pub name: String,
    /// pagerduty | slack | webhook
    pub kind: String,
    pub routing_key: Option<String>,
    pub url: Option<String>,
    pub webhook_url: Option<String>,
    pub bearer_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub receivers: Vec<ReceiverConfig>,
    pub routes: std::collections::BTreeMap<String, Vec<String>>,
    pub external_url: Option<String>,
    pub runbook_base_url: Option<String>,
    pub deadline: Duration,
    pub attempt_timeout: Duration,
    pub queue_capacity: usize,
    pub restart_warmup: Option<Duration>,
    pub backoff_base: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            receivers: vec![],
            routes: Default::default(),
            external_url: None,
            runbook_base_url: None,
            deadline: Duration::from_secs(600),
            attempt_timeout: Duration::from_secs(10),
            queue_capacity: 256,
            restart_warmup: None,
            backoff_base: Duration::from_millis(250),
        }
    }
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub slo_defs: Option<PathBuf>,
    pub ingest: IngestSettings,
    pub evaluate_interval_ms: u64,
    pub notify: NotifySettings,
    pub archive: ArchiveSettings,
    pub query: QuerySettings,
    pub mcp: McpSettings,
}

impl Settings {
    /// The archive location: configured, else `<data_dir>/archive`.
    pub fn archive_url(&self) -> slowburn_archive::ArchiveUrl {
        self.archive.url.clone().unwrap_or_else(|| {
            let dir = std::path::absolute(self.data_dir.join("archive"))
                .unwrap_or_else(|_| self.data_dir.join("archive"));
            slowburn_archive::ArchiveUrl::File(dir)
        })
    }
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_concurrent_requests: usize,
    pub dedupe_window_ms: i64,
    pub dedupe_max_keys: usize,
    pub vercel_drain_secret: Option<String>,
    pub vercel_verify_code: Option<String>,
    pub pino_token: Option<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
pub const DEFAULT_DATA_DIR: &str = "./slowburn-data";

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 256 << 20,
            max_concurrent_requests: 64,
            dedupe_window_ms: 3_600_000,
            dedupe_max_keys: 1_000_000,
            vercel_drain_secret: None,
            vercel_verify_code: None,
            pino_token: None,
        }
    }
}

impl Settings {
    /// Defaults for tests and embedding: loopback on an OS-chosen port, no secrets.
    pub fn for_tests(data_dir: &Path) -> Self {
        Settings {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            data_dir: data_dir.to_owned(),
            slo_defs: None,
            ingest: IngestSettings::default(),
            evaluate_interval_ms: 1000,
            notify: NotifySettings::default(),
            archive: ArchiveSettings {
                flush_interval: Duration::from_secs(1),
                ..ArchiveSettings::default()
            },
            query: QuerySettings::default(),
            mcp: McpSettings::default(),
        }
    }
}

/// Overrides from the command line and environment (which win over the file).
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub slo_defs: Option<PathBuf>,
    pub archive: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

pub fn load(
    config_path: Option<&Path>,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let raw = match config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            parse(path, &text)?
        }
        None => RawConfig::default(),
    };
    validate(raw, overrides, env)
}

pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

pub fn validate(
    raw: RawConfig,
    overrides: Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let listen_text = overrides
        .listen
        .or(raw.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "listen address `{listen_text}` is not IP:PORT (for example 127.0.0.1:7070)"
        ))
    })?;
    let defaults = IngestSettings::default();
    let i = raw.ingest;
    let positive = |name: &str, v: Option<usize>, d: usize| -> Result<usize, ConfigError> {
        match v {
            Some(0) => Err(ConfigError::Invalid(format!(
                "ingest.{name} must be greater than 0"
            ))),
            Some(v) => Ok(v),
            None => Ok(d),
        }
    };
    let secret = env("SLOWBURN_VERCEL_DRAIN_SECRET")
        .or(i.vercel_drain_secret)
        .filter(|s| !s.is_empty());
    let verify = env("SLOWBURN_VERCEL_VERIFY_CODE")
        .or(i.vercel_verify_code)
        .filter(|s| !s.is_empty());
    if let Some(code) = &verify
        && axum::http::HeaderValue::from_str(code).is_err()
    {
        return Err(ConfigError::Invalid(
            "vercel verify code must be printable ASCII (it is sent as a header)".into(),
        ));
    }
    let ingest = IngestSettings {
        max_body_bytes: positive("max_body_bytes", i.max_body_bytes, defaults.max_body_bytes)?,
        max_decompressed_bytes: positive(
            "max_decompressed_bytes",
            i.max_decompressed_bytes,
            defaults.max_decompressed_bytes,
        )?,
        max_concurrent_requests: positive(
            "max_concurrent_requests",
            i.max_concurrent_requests,
            defaults.max_concurrent_requests,
        )?,
        dedupe_window_ms: match i.dedupe_window_secs {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "ingest.dedupe_window_secs must be greater than 0".into(),
                ));
            }
            Some(s) => i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX),
            None => defaults.dedupe_window_ms,
        },
        dedupe_max_keys: positive(
            "dedupe_max_keys",
            i.dedupe_max_keys,
            defaults.dedupe_max_keys,
        )?,
        vercel_drain_secret: secret,
        vercel_verify_code: verify,
        pino_token: env("SLOWBURN_PINO_TOKEN")
            .or(i.pino_token)
            .filter(|s| !s.is_empty()),
    };
    if ingest.max_decompressed_bytes < ingest.max_body_bytes {
        return Err(ConfigError::Invalid(
            "ingest.max_decompressed_bytes must be at least ingest.max_body_bytes".into(),
        ));
    }
    let evaluate_interval_ms = match raw.engine.evaluate_interval_ms {
        Some(ms) if !(100..=60_000).contains(&ms) => {
            return Err(ConfigError::Invalid(format!(
                "engine.evaluate_interval_ms = {ms}: must be between 100 and 60000"
            )));
        }
        Some(ms) => ms,
        None => 1000,
    };
    let notify = validate_notify(raw.notify, env)?;
    let archive = validate_archive(raw.archive, overrides.archive, env)?;
    let query = validate_query(raw.query)?;
    let mcp = validate_mcp(raw.mcp, env)?;
    Ok(Settings {
        listen,
        data_dir: overrides
            .data_dir
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        slo_defs: overrides.slo_defs.or(raw.slo_defs),
        ingest,
        evaluate_interval_ms,
        notify,
        archive,
        query,
        mcp,
    })
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

fn nonzero_u64(key: &str, v: Option<u64>, d: u64) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(invalid(format!("{key} must be greater than 0"))),
        Some(v) => Ok(v),
        None => Ok(d),
    }
}

fn secs_f64(
    key: &str,
    v: Option<f64>,
    d: Duration,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    match v {
        Some(s) if !(min..=max).contains(&s) || !s.is_finite() => Err(invalid(format!(
            "{key} = {s}: must be between {min} and {max}"
        ))),
        Some(s) => Ok(Duration::from_secs_f64(s)),
        None => Ok(d),
    }
}

fn validate_archive(
    raw: RawArchive,
    url_override: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ArchiveSettings, ConfigError> {
    use slowburn_archive::pii::{IpMode, PiiConfig};
    let d = ArchiveSettings::default();
    let url = match url_override.or(raw.url) {
        Some(u) => {
            Some(slowburn_archive::ArchiveUrl::parse(&u).map_err(|e| invalid(e.to_string()))?)
        }
        None => None,
    };
    let allow_http = raw.allow_http.unwrap_or(false)
        || env("SLOWBURN_ARCHIVE_ALLOW_HTTP").is_some_and(|v| v == "1" || v == "true");
    let client_ip = match raw.client_ip.as_deref() {
        None | Some("truncate") => IpMode::Truncate,
        Some("hash") => IpMode::Hash,
        Some("keep") => IpMode::Keep,
        Some(other) => {
            return Err(invalid(format!(
                "archive.client_ip `{other}` must be truncate, hash or keep"
            )));
        }
    };
    let hash_key = env("SLOWBURN_PII_HASH_KEY")
        .or(raw.pii_hash_key)
        .unwrap_or_default();
    if client_ip == IpMode::Hash && hash_key.is_empty() {
        return Err(invalid(
            "archive.client_ip = \"hash\" needs a key: set SLOWBURN_PII_HASH_KEY (an unkeyed hash of an IPv4 address is reversible by brute force)".into(),
        ));
    }
    let segment_max_bytes = nonzero_u64(
        "archive.segment_max_bytes",
        raw.segment_max_bytes,
        d.segment_max_bytes,
    )?;
    let wal_max_bytes = nonzero_u64("archive.wal_max_bytes", raw.wal_max_bytes, d.wal_max_bytes)?;
    if wal_max_bytes < segment_max_bytes {
        return Err(invalid(
            "archive.wal_max_bytes must be at least archive.segment_max_bytes".into(),
        ));
    }
    let retention_days = match raw.retention_days {
        Some(r) if !(r > 0.0 && r <= 36_500.0) => {
            return Err(invalid(format!(
                "archive.retention_days = {r}: must be between 0 and 36500"
            )));
        }
        Some(r) => r,
        None => 30.0,
    };
    Ok(ArchiveSettings {
        url,
        allow_http,
        segment_max_bytes,
        flush_interval: secs_f64(
            "archive.flush_interval_secs",
            raw.flush_interval_secs,
            d.flush_interval,
            0.1,
            86_400.0,
        )?,
        wal_max_bytes,
        row_group_rows: match raw.row_group_rows {
            Some(0) => {
                return Err(invalid(
                    "archive.row_group_rows must be greater than 0".into(),
                ));
            }
            Some(n) => n,
            None => d.row_group_rows,
        },
        retention: Duration::from_secs_f64(retention_days * 86_400.0),
        retention_check_interval: Duration::from_secs(nonzero_u64(
            "archive.retention_check_interval_secs",
            raw.retention_check_interval_secs,
            d.retention_check_interval.as_secs(),
        )?),
        upload_timeout: Duration::from_secs(nonzero_u64(
            "archive.upload_timeout_secs",
            raw.upload_timeout_secs,
            d.upload_timeout.as_secs(),
        )?),
        append_queue: match raw.append_queue {
            Some(0) => {
                return Err(invalid(
                    "archive.append_queue must be greater than 0".into(),
                ));
            }
            Some(n) => n,
            None => d.append_queue,
        },
        shutdown_flush_timeout: Duration::from_secs(
            raw.shutdown_flush_timeout_secs
                .unwrap_or(d.shutdown_flush_timeout.as_secs()),
        ),
        pii: PiiConfig {
            client_ip,
            hash_key,
            redact_text: raw.redact_text.unwrap_or(true),
        },
        compact_min_files: match raw.compact_min_files {
            Some(n) if n < 2 => {
                return Err(invalid(
                    "archive.compact_min_files must be at least 2".into(),
                ));
            }
            Some(n) => n,
            None => d.compact_min_files,
        },
        compact_max_bytes: nonzero_u64(
            "archive.compact_max_bytes",
            raw.compact_max_bytes,
            d.compact_max_bytes,
        )?,
        compact_after: Duration::from_secs(
            raw.compact_after_secs.unwrap_or(d.compact_after.as_secs()),
        ),
    })
}

fn validate_query(raw: RawQuery) -> Result<QuerySettings, ConfigError> {
    let d = QuerySettings::default();
    let positive = |key: &str, v: Option<usize>, d: usize| match v {
        Some(0) => Err(invalid(format!("query.{key} must be greater than 0"))),
        Some(v) => Ok(v),
        None => Ok(d),
    };
    let memory_limit_bytes = positive(
        "memory_limit_bytes",
        raw.memory_limit_bytes,
        d.memory_limit_bytes,
    )?;
    if memory_limit_bytes < 1 << 20 {
        return Err(invalid(
            "query.memory_limit_bytes must be at least 1 MiB (1048576)".into(),
        ));
    }
    Ok(QuerySettings {
        timeout: secs_f64(
            "query.timeout_secs",
            raw.timeout_secs,
            d.timeout,
            0.01,
            3600.0,
        )?,
        memory_limit_bytes,
        max_request_bytes: positive(
            "max_request_bytes",
            raw.max_request_bytes,
            d.max_request_bytes,
        )?,
        max_rows: positive("max_rows", raw.max_rows, d.max_rows)?,
        max_concurrent: positive("max_concurrent", raw.max_concurrent, d.max_concurrent)?,
        target_partitions: positive(
            "target_partitions",
            raw.target_partitions,
            d.target_partitions,
        )?,
    })
}

fn validate_mcp(
    raw: RawMcp,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<McpSettings, ConfigError> {
    use slowburn_mcp::{Scope, Token};
    let parse_scopes = |field: &str, list: &[String]| -> Result<Vec<Scope>, ConfigError> {
        list.iter()
            .map(|s| {
                Scope::parse(s).ok_or_else(|| {
                    invalid(format!("{field}: scope `{s}` must be `read` or `write`"))
                })
            })
            .collect()
    };
    let check = |field: &str, name: &str, token: &str| -> Result<(), ConfigError> {
        if token.len() < 16 {
            return Err(invalid(format!(
                "{field}: the token of `{name}` must be at least 16 characters"
            )));
        }
        Ok(())
    };
    let mut tokens: Vec<Token> = Vec::new();
    for (name, raw_token) in raw.tokens.unwrap_or_default() {
        let field = format!("mcp.tokens.{name}");
        let (secret, scopes) = match raw_token {
            RawToken::Secret(t) => (t, vec![Scope::Read]),
            RawToken::Scoped { token, scopes } => (token, parse_scopes(&field, &scopes)?),
        };
        let secret = substitute_env(&field, &secret, env)?;
        check(&field, &name, &secret)?;
        tokens.push(Token {
            name,
            secret,
            scopes,
        });
    }
    if let Some(list) = env("SLOWBURN_MCP_TOKENS").filter(|v| !v.is_empty()) {
        for item in list.split(',') {
            // name:token or name:token:read+write
            let mut parts = item.trim().splitn(3, ':');
            let (Some(name), Some(secret)) = (parts.next(), parts.next()) else {
                return Err(invalid(
                    "SLOWBURN_MCP_TOKENS must be name:token (or name:token:read+write) pairs separated by commas".into(),
                ));
            };
            let scopes = match parts.next() {
                Some(s) => parse_scopes(
                    "SLOWBURN_MCP_TOKENS",
                    &s.split('+').map(str::to_owned).collect::<Vec<_>>(),
                )?,
                None => vec![Scope::Read],
            };
            check("SLOWBURN_MCP_TOKENS", name, secret)?;
            tokens.push(Token {
                name: name.trim().to_owned(),
                secret: secret.trim().to_owned(),
                scopes,
            });
        }
    }
    let d = McpSettings::default();
    let positive = |key: &str, v: Option<usize>, d: usize| match v {
        Some(0) => Err(invalid(format!("mcp.{key} must be greater than 0"))),
        Some(v) => Ok(v),
        None => Ok(d),
    };
    Ok(McpSettings {
        allowed_hosts: raw.allowed_hosts.unwrap_or_default(),
        tokens,
        max_rows: positive("max_rows", raw.max_rows, d.max_rows)?,
        runbooks_dir: raw.runbooks_dir,
        max_request_bytes: positive(
            "max_request_bytes",
            raw.max_request_bytes,
            d.max_request_bytes,
        )?,
    })
}

/// Replaces `${VAR}` with the environment variable's value; a missing variable is an error.
fn substitute_env(
    field: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(ConfigError::Invalid(format!(
                "{field}: unclosed `${{` (write ${{VARIABLE}})"
            )));
        };
        let name = &rest[start + 2..start + end];
        let value = env(name).ok_or_else(|| {
            ConfigError::Invalid(format!("{field}: environment variable `{name}` is not set"))
        })?;
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn validate_notify(
    raw: RawNotify,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NotifySettings, ConfigError> {
    let mut receivers: Vec<ReceiverConfig> = Vec::new();
    for r in raw.receivers {
        let field = |k: &str| format!("notify.receivers `{}`: {k}", r.name);
        let need = |k: &str, v: &Option<String>| -> Result<String, ConfigError> {
            let v = v.as_deref().ok_or_else(|| {
                ConfigError::Invalid(format!("{} is required for kind `{}`", field(k), r.kind))
            })?;
            let v = substitute_env(&field(k), v, env)?;
            if v.is_empty() {
                return Err(ConfigError::Invalid(format!("{} is empty", field(k))));
            }
            Ok(v)
        };
        let url_ok = |k: &str, u: &str| -> Result<(), ConfigError> {
            if u.starts_with("http://") || u.starts_with("https://") {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{} `{u}` must be an http:// or https:// URL",
                    field(k)
                )))
            }
        };
        let kind = match r.kind.as_str() {
            "pagerduty" => {
                let url = match &r.url {
                    Some(_) => need("url", &r.url)?,
                    None => PAGERDUTY_EVENTS_URL.to_owned(),
                };
                url_ok("url", &url)?;
                ReceiverKind::PagerDuty {
                    routing_key: need("routing_key", &r.routing_key)?,
                    url,
                }
            }
            "slack" => {
                let webhook_url = need("webhook_url", &r.webhook_url)?;
                url_ok("webhook_url", &webhook_url)?;
                ReceiverKind::Slack { webhook_url }
            }
            "webhook" => {
                let url = need("url", &r.url)?;
                url_ok("url", &url)?;
                let bearer_token = match &r.bearer_token {
                    Some(_) => Some(need("bearer_token", &r.bearer_token)?),
                    None => None,
                };
                ReceiverKind::Webhook { url, bearer_token }
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "notify.receivers `{}`: kind `{other}` must be pagerduty, slack or webhook",
                    r.name
                )));
            }
        };
        if receivers.iter().any(|x| x.name == r.name) {
            return Err(ConfigError::Invalid(format!(
                "notify.receivers: `{}` is defined twice",
                r.name
            )));
        }
        receivers.push(ReceiverConfig { name: r.name, kind });
    }
    // Receivers from the environment alone, for containers.
    let env_receivers = [
        (
            "pagerduty",
            env("SLOWBURN_PAGERDUTY_ROUTING_KEY")
                .filter(|v| !v.is_empty())
                .map(|routing_key| ReceiverKind::PagerDuty {
                    routing_key,
                    url: env("SLOWBURN_PAGERDUTY_URL")
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_owned()),
                }),
        ),
        (
            "slack",
            env("SLOWBURN_SLACK_WEBHOOK_URL")
                .filter(|v| !v.is_empty())
                .map(|webhook_url| ReceiverKind::Slack { webhook_url }),
        ),
        (
            "webhook",
            env("SLOWBURN_WEBHOOK_URL")
                .filter(|v| !v.is_empty())
                .map(|url| ReceiverKind::Webhook {
                    url,
                    bearer_token: env("SLOWBURN_WEBHOOK_BEARER_TOKEN").filter(|v| !v.is_empty()),
                }),
        ),
    ];
    for (name, kind) in env_receivers {
        if let Some(kind) = kind
            && !receivers.iter().any(|r| r.name == name)
        {
            receivers.push(ReceiverConfig {
                name: name.to_owned(),
                kind,
            });
        }
    }
    let routes = match raw.routes {
        None => slowburn_notify::default_routes(&receivers),
        Some(routes) => {
            for (sev, names) in &routes {
                if !["SEV1", "SEV2", "SEV3"].contains(&sev.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "notify.routes: `{sev}` must be SEV1, SEV2 or SEV3"
                    )));
                }
                for n in names {
                    if !receivers.iter().any(|r| &r.name == n) {
                        return Err(ConfigError::Invalid(format!(
                            "notify.routes.{sev}: unknown receiver `{n}`"
                        )));
                    }
                }
            }
            routes
        }
    };
    let defaults = NotifySettings::default();
    let secs = |name: &str, v: Option<u64>, d: Duration| -> Result<Duration, ConfigError> {
        match v {
            Some(0) => Err(ConfigError::Invalid(format!(
                "notify.{name} must be greater than 0"
            ))),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(d),
        }
    };
    Ok(NotifySettings {
        receivers,
        routes,
        external_url: raw.external_url.map(|u| u.trim_end_matches('/').to_owned()),
        runbook_base_url: raw.runbook_base_url,
        deadline: secs("deadline_secs", raw.deadline_secs, defaults.deadline)?,
        attempt_timeout: secs(
            "attempt_timeout_secs",
            raw.attempt_timeout_secs,
            defaults.attempt_timeout,
        )?,
        queue_capacity: match raw.queue_capacity {
            Some(0) => {
                return Err(ConfigError::Invalid(
                    "notify.queue_capacity must be greater than 0".into(),
                ));
            }
            Some(n) => n,
            None => defaults.queue_capacity,
        },
        restart_warmup: raw.restart_warmup_secs.map(Duration::from_secs),
        backoff_base: defaults.backoff_base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(Path::new("x.toml"), "[ingest]\nmax_body_byte = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_body_byte"), "{err}");
        assert!(err.starts_with("config file x.toml"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() {
        let s = validate(RawConfig::default(), Overrides::default(), &no_env).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(s.ingest.max_body_bytes, 32 << 20);
        let raw = parse(
            Path::new("x"),
            "listen = \"127.0.0.1:9000\"\n[ingest]\nmax_body_bytes = 1024\n",
        )
        .unwrap();
        let s = validate(
            raw,
            Overrides {
                listen: Some("127.0.0.1:9001".into()),
                ..Default::default()
            },
            &|k: &str| (k == "SLOWBURN_VERCEL_DRAIN_SECRET").then(|| "s3cret".to_owned()),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.ingest.max_body_bytes, 1024);
        assert_eq!(s.ingest.vercel_drain_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn receivers_from_file_and_environment() {
        let text = "[[notify.receivers]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"${PD_KEY}\"\n[notify.routes]\nSEV1 = [\"pd\"]\n";
        let raw = parse(Path::new("x"), text).unwrap();
        let err = validate(raw, Overrides::default(), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`PD_KEY` is not set"), "{err}");
        let env = |k: &str| match k {
            "PD_KEY" => Some("k123".to_owned()),
            "SLOWBURN_SLACK_WEBHOOK_URL" => Some("http://127.0.0.1:9/slack".to_owned()),
            _ => None,
        };
        let s = validate(
            parse(Path::new("x"), text).unwrap(),
            Overrides::default(),
            &env,
        )
        .unwrap();
        assert_eq!(s.notify.receivers.len(), 2);
        assert_eq!(
            s.notify.receivers[0].kind,
            ReceiverKind::PagerDuty {
                routing_key: "k123".into(),
                url: PAGERDUTY_EVENTS_URL.into()
            }
        );
        assert_eq!(s.notify.routes["SEV1"], vec!["pd".to_owned()]);
        // Default routes: SEV3 goes to Slack only.
        let s = validate(
            RawConfig::default(),
            Overrides::default(),
            &|k: &str| match k {
                "SLOWBURN_PAGERDUTY_ROUTING_KEY" => Some("k".to_owned()),
                "SLOWBURN_SLACK_WEBHOOK_URL" => Some("http://127.0.0.1:9/s".to_owned()),
                _ => None,
            },
        )
        .unwrap();
        assert_eq!(
            s.notify.routes["SEV1"],
            vec!["pagerduty".to_owned(), "slack".to_owned()]
        );
        assert_eq!(s.notify.routes["SEV3"], vec!["slack".to_owned()]);
        let bad = parse(Path::new("x"), "[[notify.receivers]]\nname = \"s\"\nkind = \"slack\"\nwebhook_url = \"hooks.slack.com\"\n").unwrap();
        let err = validate(bad, Overrides::default(), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be an http:// or https:// URL"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let raw = parse(Path::new("x"), "[ingest]\nmax_body_bytes = 0\n").unwrap();
        let err = validate(raw, Overrides::default(), &no_env)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "config: ingest.max_body_bytes must be greater than 0");
        let err = validate(
            RawConfig::default(),
            Overrides {
                listen: Some("localhost".into()),
                ..Default::default()
            },
            &no_env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`localhost` is not IP:PORT"));
    }
}
