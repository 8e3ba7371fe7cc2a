//! Configuration: one TOML file (`--config`), every key optional with a laptop-friendly default,
//! validated into [`Settings`] at start. Secrets come from the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    pub max_body_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub dedupe_window_secs: Option<u64>,
    pub dedupe_max_keys: Option<usize>,
    pub live_buffer_max_rows: Option<usize>,
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

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub slo_defs: Option<PathBuf>,
    pub ingest: IngestSettings,
    pub evaluate_interval_ms: u64,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_concurrent_requests: usize,
    pub dedupe_window_ms: i64,
    pub dedupe_max_keys: usize,
    pub live_buffer_max_rows: usize,
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
            live_buffer_max_rows: 1_000_000,
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
        }
    }
}

/// Overrides from the command line and environment (which win over the file).
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub slo_defs: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

pub fn load(config_path: Option<&Path>, overrides: Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let raw = match config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            parse(path, &text)?
        }
        None => RawConfig::default(),
    };
    validate(raw, overrides, env)
}

pub fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })
}

pub fn validate(raw: RawConfig, overrides: Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let listen_text = overrides.listen.or(raw.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("listen address `{listen_text}` is not IP:PORT (for example 127.0.0.1:7070)")))?;
    let defaults = IngestSettings::default();
    let i = raw.ingest;
    let positive = |name: &str, v: Option<usize>, d: usize| -> Result<usize, ConfigError> {
        match v {
            Some(0) => Err(ConfigError::Invalid(format!("ingest.{name} must be greater than 0"))),
            Some(v) => Ok(v),
            None => Ok(d),
        }
    };
    let secret = env("SLOWBURN_VERCEL_DRAIN_SECRET").or(i.vercel_drain_secret).filter(|s| !s.is_empty());
    let verify = env("SLOWBURN_VERCEL_VERIFY_CODE").or(i.vercel_verify_code).filter(|s| !s.is_empty());
    if let Some(code) = &verify
        && axum::http::HeaderValue::from_str(code).is_err()
    {
        return Err(ConfigError::Invalid("vercel verify code must be printable ASCII (it is sent as a header)".into()));
    }
    let ingest = IngestSettings {
        max_body_bytes: positive("max_body_bytes", i.max_body_bytes, defaults.max_body_bytes)?,
        max_decompressed_bytes: positive("max_decompressed_bytes", i.max_decompressed_bytes, defaults.max_decompressed_bytes)?,
        max_concurrent_requests: positive("max_concurrent_requests", i.max_concurrent_requests, defaults.max_concurrent_requests)?,
        dedupe_window_ms: match i.dedupe_window_secs {
            Some(0) => return Err(ConfigError::Invalid("ingest.dedupe_window_secs must be greater than 0".into())),
            Some(s) => i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX),
            None => defaults.dedupe_window_ms,
        },
        dedupe_max_keys: positive("dedupe_max_keys", i.dedupe_max_keys, defaults.dedupe_max_keys)?,
        live_buffer_max_rows: positive("live_buffer_max_rows", i.live_buffer_max_rows, defaults.live_buffer_max_rows)?,
        vercel_drain_secret: secret,
        vercel_verify_code: verify,
        pino_token: env("SLOWBURN_PINO_TOKEN").or(i.pino_token).filter(|s| !s.is_empty()),
    };
    if ingest.max_decompressed_bytes < ingest.max_body_bytes {
        return Err(ConfigError::Invalid("ingest.max_decompressed_bytes must be at least ingest.max_body_bytes".into()));
    }
    let evaluate_interval_ms = match raw.engine.evaluate_interval_ms {
        Some(ms) if !(100..=60_000).contains(&ms) => {
            return Err(ConfigError::Invalid(format!("engine.evaluate_interval_ms = {ms}: must be between 100 and 60000")));
        }
        Some(ms) => ms,
        None => 1000,
    };
    Ok(Settings {
        listen,
        data_dir: overrides.data_dir.or(raw.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        slo_defs: overrides.slo_defs.or(raw.slo_defs),
        ingest,
        evaluate_interval_ms,
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
        let err = parse(Path::new("x.toml"), "[ingest]\nmax_body_byte = 3\n").unwrap_err().to_string();
        assert!(err.contains("max_body_byte"), "{err}");
        assert!(err.starts_with("config file x.toml"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() {
        let s = validate(RawConfig::default(), Overrides::default(), &no_env).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(s.ingest.max_body_bytes, 32 << 20);
        let raw = parse(Path::new("x"), "listen = \"127.0.0.1:9000\"\n[ingest]\nmax_body_bytes = 1024\n").unwrap();
        let s = validate(raw, Overrides { listen: Some("127.0.0.1:9001".into()), ..Default::default() }, &|k: &str| {
            (k == "SLOWBURN_VERCEL_DRAIN_SECRET").then(|| "s3cret".to_owned())
        })
        .unwrap();
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.ingest.max_body_bytes, 1024);
        assert_eq!(s.ingest.vercel_drain_secret.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_values_are_explained() {
        let raw = parse(Path::new("x"), "[ingest]\nmax_body_bytes = 0\n").unwrap();
        let err = validate(raw, Overrides::default(), &no_env).unwrap_err().to_string();
        assert_eq!(err, "config: ingest.max_body_bytes must be greater than 0");
        let err = validate(RawConfig::default(), Overrides { listen: Some("localhost".into()), ..Default::default() }, &no_env).unwrap_err();
        assert!(err.to_string().contains("`localhost` is not IP:PORT"));
    }
}
