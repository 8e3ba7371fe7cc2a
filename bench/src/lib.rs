//! Synthetic but realistic Vercel drain deliveries, for the load generator, the in-process
//! benchmarks and scenario tests. Shapes follow the real fixtures in `tests/fixtures/vercel/`:
//! lambda request summaries (START/END/REPORT in `message`, `proxy` with the request), pino-http
//! lines nested in a lambda `message`, and static hits. An entry is about 1 KB.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// One HTTP request to synthesize.
#[derive(Debug, Clone)]
pub struct SynthRequest {
    pub time_ms: i64,
    pub method: &'static str,
    pub path: String,
    pub status: i32,
    pub latency_ms: f64,
    pub deployment_id: String,
}

const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The kinds of entry a delivery mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A lambda summary: START/END/REPORT message plus `proxy`.
    LambdaSummary,
    /// A pino-http `request completed` line inside a lambda `message`.
    PinoHttp,
    /// A static asset hit (not in any SLO flow).
    Static,
}

/// A lambda request-summary entry for `r`, with Vercel entry id `id`.
pub fn lambda_entry(id: u64, r: &SynthRequest) -> serde_json::Value {
    let request_id = format!(
        "iad1::{:016x}-{}",
        id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        r.time_ms
    );
    json!({
        "id": format!("{}{:010}", r.time_ms, id),
        "message": format!(
            "START RequestId: {request_id} Version: $LATEST\nEND RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: 1024 MB\tMax Memory Used: 148 MB\t\n",
            r.latency_ms, r.latency_ms.ceil() as i64
        ),
        "timestamp": r.time_ms,
        "requestId": request_id,
        "statusCode": r.status,
        "proxy": {
            "timestamp": r.time_ms,
            "region": "iad1",
            "method": r.method,
            "vercelCache": "MISS",
            "statusCode": r.status,
            "referer": "https://warrant.example.com/articles",
            "path": r.path,
            "host": "warrant.example.com",
            "scheme": "https",
            "clientIp": "203.0.113.7",
            "userAgent": [USER_AGENT],
        },
        "projectId": "prj_warrant0000000000000000",
        "projectName": "warrant",
        "deploymentId": r.deployment_id,
        "source": "lambda",
        "host": "warrant.example.com",
        "path": r.path.trim_start_matches('/'),
        "environment": "production",
        "executionRegion": "iad1",
        "type": "stdout",
        "level": "info",
    })
}

/// A pino-http line for `r`, delivered inside a Vercel lambda entry's `message`.
pub fn pino_http_entry(id: u64, r: &SynthRequest) -> serde_json::Value {
    let request_id = format!(
        "iad1::{:016x}-{}",
        id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        r.time_ms
    );
    let level = if r.status >= 500 { 50 } else { 30 };
    let line = json!({
        "level": level,
        "time": r.time_ms,
        "pid": 8,
        "hostname": "169.254.12.1",
        "req": {"id": id, "method": r.method, "url": r.path, "headers": {"host": "warrant.example.com", "user-agent": USER_AGENT, "accept": "application/json"}, "remoteAddress": "::ffff:169.254.12.1", "remotePort": 51234},
        "res": {"statusCode": r.status, "headers": {"content-type": "application/json; charset=utf-8", "x-request-id": request_id}},
        "responseTime": r.latency_ms,
        "msg": if r.status >= 500 { "request errored" } else { "request completed" },
    });
    json!({
        "id": format!("{}{:010}", r.time_ms, id),
        "message": line.to_string(),
        "timestamp": r.time_ms,
        "requestId": request_id,
        "projectId": "prj_warrant0000000000000000",
        "projectName": "warrant",
        "deploymentId": r.deployment_id,
        "source": "lambda",
        "host": "warrant.example.com",
        "environment": "production",
        "executionRegion": "iad1",
        "type": "stdout",
        "level": "info",
    })
}

/// A static-asset hit.
pub fn static_entry(id: u64, time_ms: i64, deployment_id: &str) -> serde_json::Value {
    json!({
        "id": format!("{}{:010}", time_ms, id),
        "timestamp": time_ms,
        "requestId": format!("iad1::static-{id}"),
        "statusCode": 200,
        "proxy": {
            "timestamp": time_ms,
            "region": "iad1",
            "method": "GET",
            "vercelCache": "HIT",
            "statusCode": 200,
            "referer": "https://warrant.example.com/",
            "path": format!("/_next/static/chunks/{:x}.js", id % 997),
            "host": "warrant.example.com",
            "scheme": "https",
            "clientIp": "203.0.113.9",
            "userAgent": [USER_AGENT],
            "pathType": "STATIC",
            "cacheId": "-",
        },
        "projectId": "prj_warrant0000000000000000",
        "projectName": "warrant",
        "deploymentId": deployment_id,
        "source": "static",
        "host": "warrant.example.com",
        "environment": "production",
    })
}

/// Endpoints of Warrant's four flows plus an unmatched one, with typical latencies.
const ROUTES: [(&str, &str, f64); 6] = [
    ("GET", "/api/articles/{slug}", 120.0),
    ("GET", "/api/articles/{slug}", 180.0),
    ("POST", "/api/auth/signin/email", 240.0),
    ("POST", "/api/subscribe/checkout", 420.0),
    ("POST", "/api/articles/{slug}/publish", 650.0),
    ("GET", "/api/health", 5.0),
];

/// Generates deliveries: a deterministic stream of mixed entries.
pub struct Generator {
    rng: StdRng,
    next_id: u64,
    pub time_ms: i64,
    pub step_ms: i64,
    pub error_ratio: f64,
    pub deployment_id: String,
}

impl Generator {
    pub fn new(seed: u64, start_ms: i64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            time_ms: start_ms,
            step_ms: 5,
            error_ratio: 0.01,
            deployment_id: "dpl_bench000001".into(),
        }
    }

    pub fn next_request(&mut self) -> SynthRequest {
        let (method, path, base) = ROUTES[self.rng.random_range(0..ROUTES.len())];
        let slug = format!("article-{}", self.rng.random_range(0..5000));
        let status = if self.rng.random_bool(self.error_ratio) {
            500
        } else {
            200
        };
        let latency_ms = (base * (0.5 + self.rng.random::<f64>() * 1.5) * 100.0).round() / 100.0;
        self.time_ms += self.step_ms;
        SynthRequest {
            time_ms: self.time_ms,
            method,
            path: path.replace("{slug}", &slug),
            status,
            latency_ms,
            deployment_id: self.deployment_id.clone(),
        }
    }

    /// One entry: 45% lambda summaries, 35% pino-http lines, 20% static hits.
    pub fn next_entry(&mut self) -> (EntryKind, serde_json::Value) {
        let id = self.next_id;
        self.next_id += 1;
        let roll = self.rng.random_range(0..100);
        if roll < 20 {
            self.time_ms += self.step_ms;
            return (
                EntryKind::Static,
                static_entry(id, self.time_ms, &self.deployment_id.clone()),
            );
        }
        let r = self.next_request();
        if roll < 65 {
            (EntryKind::LambdaSummary, lambda_entry(id, &r))
        } else {
            (EntryKind::PinoHttp, pino_http_entry(id, &r))
        }
    }

    /// A delivery of `n` entries as a JSON array body.
    pub fn delivery_json(&mut self, n: usize) -> Vec<u8> {
        let entries: Vec<serde_json::Value> = (0..n).map(|_| self.next_entry().1).collect();
        serde_json::to_vec(&entries).expect("serializing JSON values cannot fail")
    }

    /// A delivery of `n` entries as NDJSON.
    pub fn delivery_ndjson(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            serde_json::to_writer(&mut out, &self.next_entry().1)
                .expect("serializing JSON values cannot fail");
            out.push(b'\n');
        }
        out
    }
}

/// Gzips a body (Vercel may send `Content-Encoding: gzip`).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}
