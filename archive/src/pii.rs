//! PII redaction of log batches, before they are written anywhere (WAL, live tables, Parquet).
//!
//! What is touched (documented in `docs/storage.md`):
//! - `client_ip`: truncated (IPv4 to /24, IPv6 to /48), hashed (HMAC-SHA256 with a secret key, 16 hex digits), or
//!   kept, by configuration. The same applies to IP-valued fields inside `attributes`
//!   (`clientIp`, `remoteAddress`, `x-forwarded-for`, `x-real-ip`).
//! - `message`, `err_message`, `path` and `attributes`: e-mail addresses become `[email]`;
//!   `Bearer <token>` becomes `Bearer [redacted]`; JSON Web Tokens become `[jwt]`; the values of
//!   sensitive query parameters (`token`, `code`, `email`, `key`, `secret`, `password`,
//!   `signature`, ...) become `[redacted]`.
//! - `attributes`: the values of the headers `authorization`, `proxy-authorization`, `cookie`,
//!   `set-cookie` and `x-api-key` become `[redacted]`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::error::ArrowError;
use regex::{Captures, Regex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMode {
    /// IPv4 to /24 (`203.0.113.0`), IPv6 to /48.
    Truncate,
    /// A keyed hash: the same address always gives the same 16 hex digits, unlinkable without the key.
    Hash,
    Keep,
}

#[derive(Debug, Clone)]
pub struct PiiConfig {
    pub client_ip: IpMode,
    /// Key for [`IpMode::Hash`].
    pub hash_key: String,
    /// Redact e-mail addresses, tokens and secrets in text columns.
    pub redact_text: bool,
}

impl PiiConfig {
    pub fn strict() -> Self {
        PiiConfig {
            client_ip: IpMode::Truncate,
            hash_key: String::new(),
            redact_text: true,
        }
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
        .expect("static regex")
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}").expect("static regex")
});
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]+").expect("static regex")
});
static QUERY_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)([?&](?:token|access_token|id_token|refresh_token|code|key|api_key|apikey|secret|client_secret|password|passwd|pass|signature|sig|email|auth)=)[^&#\s\x22\\]+",
    )
    .expect("static regex")
});
static SECRET_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)("(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key)"\s*:\s*)"(?:[^"\\]|\\.)*""#).expect("static regex")
});
static IP_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)("(?:clientIp|remoteAddress|x-forwarded-for|x-real-ip)"\s*:\s*)"([^"\\]*)""#)
        .expect("static regex")
});

/// Redacts secrets and e-mail addresses in free text.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    // Cheap guards first: most lines hold none of these.
    if out.contains('@') {
        out = replace(out, &EMAIL, |_| "[email]".into());
    }
    if out.contains('=') {
        out = replace(out, &QUERY_SECRET, |c| format!("{}[redacted]", &c[1]));
    }
    if out.contains("eyJ") {
        out = replace(out, &JWT, |_| "[jwt]".into());
    }
    if contains_ignore_case(&out, "bearer") {
        out = replace(out, &BEARER, |c| format!("{} [redacted]", &c[1]));
    }
    out
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn replace<'a>(
    text: Cow<'a, str>,
    re: &Regex,
    f: impl Fn(&Captures<'_>) -> String,
) -> Cow<'a, str> {
    match re.replace_all(&text, |c: &Captures<'_>| f(c)) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// An address as configured: truncated, hashed or kept. Text that is not an IP address (for
/// example a comma-separated `x-forwarded-for`) is handled element by element.
pub fn redact_ip(text: &str, cfg: &PiiConfig) -> String {
    if cfg.client_ip == IpMode::Keep {
        return text.to_owned();
    }
    text.split(',')
        .map(|part| redact_one_ip(part.trim(), cfg))
        .collect::<Vec<_>>()
        .join(", ")
}

fn redact_one_ip(text: &str, cfg: &PiiConfig) -> String {
    match cfg.client_ip {
        IpMode::Keep => text.to_owned(),
        IpMode::Hash => {
            use hmac::Mac;
            // HMAC-SHA256: without the key, the 2^32 IPv4 addresses cannot be enumerated back.
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(cfg.hash_key.as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(text.as_bytes());
            let digest = mac.finalize().into_bytes();
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        }
        IpMode::Truncate => match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!("{}.{}.{}.0", o[0], o[1], o[2])
            }
            Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
                let o = v6.to_ipv4_mapped().expect("checked").octets();
                format!("::ffff:{}.{}.{}.0", o[0], o[1], o[2])
            }
            Ok(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::", s[0], s[1], s[2])
            }
            // Not an address: keep nothing of it.
            Err(_) => "[redacted]".to_owned(),
        },
    }
}

fn redact_attributes<'a>(text: &'a str, cfg: &PiiConfig) -> Cow<'a, str> {
    let mut out = if cfg.redact_text {
        redact_text(text)
    } else {
        Cow::Borrowed(text)
    };
    if cfg.redact_text {
        out = replace(out, &SECRET_HEADER, |c| format!("{}\"[redacted]\"", &c[1]));
    }
    if cfg.client_ip != IpMode::Keep {
        out = replace(out, &IP_FIELD, |c| {
            format!("{}\"{}\"", &c[1], redact_ip(&c[2], cfg))
        });
    }
    out
}

/// Applies [`PiiConfig`] to a batch with the `logs` schema, or the `requests` schema (whose
/// `path` is redacted like a log line's). Columns are found by name; a batch without them is
/// returned unchanged.
pub fn redact_logs(batch: &RecordBatch, cfg: &PiiConfig) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for (i, field) in schema.fields().iter().enumerate() {
        let Some(strings) = columns[i].as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        let mapped = match field.name().as_str() {
            "client_ip" if cfg.client_ip != IpMode::Keep => {
                map_strings(strings, |s| Cow::Owned(redact_ip(s, cfg)))
            }
            "message" | "err_message" | "path" if cfg.redact_text => {
                map_strings(strings, redact_text)
            }
            "attributes" => map_strings(strings, |s| redact_attributes(s, cfg)),
            _ => None,
        };
        if let Some(array) = mapped {
            columns[i] = Arc::new(array);
        }
    }
    RecordBatch::try_new(schema, columns)
}

/// Maps every value; `None` when nothing changed (the column is then reused as is).
fn map_strings<'a>(
    array: &'a StringArray,
    f: impl Fn(&'a str) -> Cow<'a, str>,
) -> Option<StringArray> {
    let mapped: Vec<Option<Cow<'a, str>>> = array.iter().map(|v| v.map(&f)).collect();
    if mapped.iter().all(|v| !matches!(v, Some(Cow::Owned(_)))) {
        return None;
    }
    let bytes = mapped
        .iter()
        .map(|v| v.as_ref().map_or(0, |s| s.len()))
        .sum();
    let mut b = StringBuilder::with_capacity(array.len(), bytes);
    for v in &mapped {
        b.append_option(v.as_deref());
    }
    Some(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_redaction() {
        assert_eq!(
            redact_text("magic link sent to jane.doe+x@example.co.uk"),
            "magic link sent to [email]"
        );
        assert_eq!(
            redact_text(
                "GET /api/auth/callback/email?callbackUrl=%2F&token=abc123def&email=jane%40example.com"
            ),
            "GET /api/auth/callback/email?callbackUrl=%2F&token=[redacted]&email=[redacted]"
        );
        assert_eq!(
            redact_text("auth: Bearer sk_live_0123456789abcdef"),
            "auth: Bearer [redacted]"
        );
        assert_eq!(
            redact_text("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sgn-abc"),
            "jwt [jwt]"
        );
        assert!(matches!(
            redact_text("nothing to see here"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn ips() {
        let t = PiiConfig::strict();
        assert_eq!(redact_ip("203.0.113.77", &t), "203.0.113.0");
        assert_eq!(redact_ip("2001:db8:abcd:12::1", &t), "2001:db8:abcd::");
        assert_eq!(
            redact_ip("203.0.113.7, 10.1.2.3", &t),
            "203.0.113.0, 10.1.2.0"
        );
        let h = PiiConfig {
            client_ip: IpMode::Hash,
            hash_key: "k".into(),
            redact_text: true,
        };
        assert_eq!(redact_ip("203.0.113.77", &h).len(), 16);
        assert_eq!(redact_ip("203.0.113.77", &h), redact_ip("203.0.113.77", &h));
        assert_ne!(redact_ip("203.0.113.77", &h), redact_ip("203.0.113.78", &h));
    }

    #[test]
    fn request_paths() {
        let records = [slowburn_model::RequestRecord {
            time_ms: 0,
            request_id: Some("r1".into()),
            method: Some("GET".into()),
            path: Some("/api/users/jane@example.com/articles".into()),
            status: 200,
            latency_ms: Some(1.0),
            deployment_id: None,
        }];
        let batch = crate::requests::requests_batch(&records, &[None], &[], &[]).unwrap();
        let out = redact_logs(&batch, &PiiConfig::strict()).unwrap();
        let paths = out
            .column(crate::requests::col::PATH)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(paths.value(0), "/api/users/[email]/articles");
    }

    #[test]
    fn attributes() {
        let t = PiiConfig::strict();
        let a = r#"{"proxy":{"clientIp":"198.51.100.23","path":"/x?token=abc"},"req":{"headers":{"authorization":"Basic dXNlcjpwYXNz","cookie":"s=1"},"remoteAddress":"::ffff:127.0.0.1"}}"#;
        let r = redact_attributes(a, &t);
        assert_eq!(
            r,
            r#"{"proxy":{"clientIp":"198.51.100.0","path":"/x?token=[redacted]"},"req":{"headers":{"authorization":"[redacted]","cookie":"[redacted]"},"remoteAddress":"::ffff:127.0.0.0"}}"#
        );
    }
}
