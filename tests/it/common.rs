#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use slowburn::config::Settings;
use slowburn::server::{AppState, run};
use tokio_util::sync::CancellationToken;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real Vercel deliveries (committed copy, plus any newer file in the shared folder).
pub fn vercel_fixtures() -> Vec<(String, Vec<u8>)> {
    let root = repo_root();
    let shared = std::env::var_os("SLOWBURN_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared"));
    let mut out = BTreeMap::new();
    for dir in [
        root.join("tests/fixtures/vercel"),
        shared.join("fixtures/vercel"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for p in entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
        {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.entry(name)
                .or_insert_with(|| std::fs::read(&p).unwrap());
        }
    }
    assert!(
        out.len() >= 12,
        "expected the 12 Vercel fixtures, found {}",
        out.len()
    );
    out.into_iter().collect()
}

pub fn pino_fixture() -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/pino/warrant.ndjson")).unwrap()
}

pub struct TestServer {
    pub base: String,
    pub state: Arc<AppState>,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_tests(dir.path());
        configure(&mut settings);
        let catalog_path = settings
            .slo_defs
            .clone()
            .unwrap_or_else(|| repo_root().join("slo-defs"));
        let (catalog, _, _) = slowburn::load_catalog(Some(&catalog_path)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(settings, catalog);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(listener, state.clone(), shutdown.clone()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let s = TestServer {
            base,
            state,
            client,
            shutdown,
            handle,
            _dir: dir,
        };
        s.wait_ready().await;
        s
    }

    /// Waits for `/readyz` (recovery done), as a load balancer would.
    pub async fn wait_ready(&self) {
        for _ in 0..600 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server not ready within 30 s");
    }

    /// Runs SQL through `POST /v1/sql`; panics on an error answer.
    pub async fn sql(&self, sql: &str) -> serde_json::Value {
        let resp = self
            .client
            .post(self.url("/v1/sql"))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        let (status, v) = json_of(resp).await;
        assert_eq!(status, 200, "{sql}: {v}");
        v
    }

    /// The first cell of a query's first row, as an integer.
    pub async fn sql_count(&self, sql: &str) -> i64 {
        let v = self.sql(sql).await;
        v["rows"][0][0]
            .as_i64()
            .unwrap_or_else(|| panic!("{sql}: {v}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        json_of(resp).await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        json_of(resp).await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Log rows stored (archived and live), counted with SQL.
    pub async fn log_rows(&self) -> usize {
        self.sql_count("SELECT count(*) FROM logs").await as usize
    }

    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

pub async fn json_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
    (status, value)
}

/// Polls `f` until it returns Some, for up to 10 s.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    mut f: impl FnMut() -> F,
) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn write(path: &Path, body: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// Polls `f` until it returns Some, for up to `limit`.
pub async fn eventually_for<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("condition not met within {limit:?}");
}
