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

/// The real `slowburn serve` as a child process, on an OS-chosen loopback port.
pub struct ChildServer {
    child: std::process::Child,
    pub base: String,
    pub client: reqwest::Client,
    log: Arc<std::sync::Mutex<String>>,
}

impl ChildServer {
    /// Starts `slowburn serve` with `config` (TOML text) in `data_dir`. Its stderr is collected
    /// (see [`ChildServer::log`]).
    pub fn spawn(data_dir: &Path, config: &str, envs: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        std::fs::create_dir_all(data_dir).unwrap();
        let config_path = data_dir.join("slowburn.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slowburn"));
        cmd.current_dir(repo_root())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir)
            .env("SLOWBURN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("slowburn listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap().to_owned());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not log its address: {}",
                    log.lock().unwrap()
                )
            });
        ChildServer {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn wait_ready(&self) {
        for _ in 0..1200 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server not ready within 60 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        json_of(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn metrics(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// The value of a metric line that starts with `prefix` (name and labels), if present.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        metric_value(&self.metrics().await, prefix)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status:?}\n{}", self.log());
                return self.log();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("did not stop within 30 s of SIGTERM:\n{}", self.log());
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first metric line starting with `prefix`.
pub fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every `.parquet` file under `dir`, recursively, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads every Parquet file under `dir` with the `parquet` crate.
pub fn read_parquet_dir(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    let mut out = Vec::new();
    for p in parquet_files(dir) {
        let f = std::fs::File::open(&p).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .build()
            .unwrap();
        for b in reader {
            out.push(b.unwrap());
        }
    }
    out
}

/// The values of a string column over batches.
pub fn string_column(batches: &[arrow::record_batch::RecordBatch], name: &str) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap().as_string::<i32>();
        for i in 0..col.len() {
            out.push(col.value(i).to_owned());
        }
    }
    out
}
