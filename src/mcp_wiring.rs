//! Wiring of the MCP ops server: where its SQL runs (this server, or an archive) and where its
//! runbooks come from. The protocol itself lives in the `slowburn-mcp` crate.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slowburn_archive::{ArchiveUrl, Snapshot};
use slowburn_mcp::{Runbook, SourceError, SourceFuture, SqlSource, SqlTable};
use slowburn_query::{EngineState, QueryEngine, QueryError, QueryInputs};
use slowburn_slo_defs::Catalog;

use crate::config::Settings;
use crate::server::AppState;

fn source_error(e: QueryError) -> SourceError {
    match e {
        QueryError::BadQuery(_)
        | QueryError::ReadOnly(_)
        | QueryError::Timeout(_)
        | QueryError::Memory(_) => SourceError::Query(e.to_string()),
        QueryError::Busy(_) | QueryError::Unavailable(_) | QueryError::Internal(_) => {
            SourceError::Unavailable(e.to_string())
        }
    }
}

fn table(out: &slowburn_query::QueryOutput) -> SqlTable {
    SqlTable {
        columns: out.columns(),
        rows: out.json_rows(),
        truncated: out.truncated,
        elapsed_ms: out.elapsed_ms,
    }
}

/// The server's own tables, queried in process (the `/mcp` endpoint).
pub struct LocalSource {
    pub state: Arc<AppState>,
}

impl SqlSource for LocalSource {
    fn query<'a>(&'a self, sql: &'a str, max_rows: usize) -> SourceFuture<'a> {
        Box::pin(async move {
            let out = self
                .state
                .sql(sql, Some(max_rows))
                .await
                .map_err(source_error)?;
            Ok(table(&out))
        })
    }

    fn describe(&self) -> String {
        "this slowburn server (live and archived data)".into()
    }
}

/// An archive read directly (`slowburn mcp --archive URL`): its Parquet files, and SLO state
/// rebuilt from its request records at start. Rows still in a server's write-ahead log are not
/// seen. The file listing is refreshed when older than [`ArchiveSource::RELIST_AFTER`].
pub struct ArchiveSource {
    url: ArchiveUrl,
    store: Arc<dyn object_store::ObjectStore>,
    query: QueryEngine,
    state: EngineState,
    listing: Mutex<(Instant, Snapshot)>,
}

impl ArchiveSource {
    pub const RELIST_AFTER: Duration = Duration::from_secs(30);

    pub async fn open(settings: &Settings, catalog: Arc<Catalog>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let url = settings.archive_url();
        let store = slowburn_archive::open_store(&url, settings.archive.allow_http)?;
        let snapshot = slowburn_archive::list_archive(store.as_ref())
            .await
            .with_context(|| format!("cannot list the archive {url}"))?;
        let now = crate::server::wall_clock_ms();
        let (engine, requests) =
            crate::recovery::engine_from_archive(store.clone(), &snapshot, catalog.clone(), now)
                .await
                .with_context(|| format!("cannot read the request records of {url}"))?;
        tracing::info!(archive = %url, files = snapshot.files.len(), requests, "SLO state rebuilt from the archive");
        let query = QueryEngine::new(
            crate::config::query_config(settings),
            store.clone(),
            slowburn_ingest::log_schema(),
        )?;
        Ok(ArchiveSource {
            url,
            store,
            query,
            state: EngineState {
                slos: engine.status(),
                transitions: Vec::new(),
                catalog: Some(catalog),
            },
            listing: Mutex::new((Instant::now(), snapshot)),
        })
    }

    async fn snapshot(&self) -> Result<Snapshot, SourceError> {
        {
            let listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
            if listing.0.elapsed() < Self::RELIST_AFTER {
                return Ok(listing.1.clone());
            }
        }
        let snapshot = slowburn_archive::list_archive(self.store.as_ref())
            .await
            .map_err(|e| SourceError::Unavailable(format!("cannot list {}: {e}", self.url)))?;
        *self.listing.lock().unwrap_or_else(|e| e.into_inner()) =
            (Instant::now(), snapshot.clone());
        Ok(snapshot)
    }
}

impl SqlSource for ArchiveSource {
    fn query<'a>(&'a self, sql: &'a str, max_rows: usize) -> SourceFuture<'a> {
        Box::pin(async move {
            let inputs = QueryInputs {
                snapshot: self.snapshot().await?,
                state: Some(self.state.clone()),
            };
            let out = self
                .query
                .run(sql, inputs, Some(max_rows))
                .await
                .map_err(source_error)?;
            Ok(table(&out))
        })
    }

    fn describe(&self) -> String {
        format!(
            "the archive {} (Parquet only: rows still in a server's write-ahead log are not included; SLO state as of this process's start)",
            self.url
        )
    }
}

/// The runbooks shipped in `docs/runbooks/`, embedded for when no folder is found.
const EMBEDDED_RUNBOOKS: [(&str, &str); 4] = [
    (
        "auth_magic_link_success_rate",
        include_str!("../docs/runbooks/auth_magic_link_success_rate.md"),
    ),
    (
        "article_read_api_p95",
        include_str!("../docs/runbooks/article_read_api_p95.md"),
    ),
    (
        "subscribe_checkout_success_rate",
        include_str!("../docs/runbooks/subscribe_checkout_success_rate.md"),
    ),
    (
        "publish_article_success_rate",
        include_str!("../docs/runbooks/publish_article_success_rate.md"),
    ),
];

/// Runbooks from `dir` (every `*.md`), else `./docs/runbooks/` when it exists, else the embedded
/// copies.
pub fn load_runbooks(dir: Option<&Path>) -> anyhow::Result<Vec<Runbook>> {
    let default = Path::new("docs/runbooks");
    let chosen = match dir {
        Some(d) => Some(d),
        None if default.is_dir() => Some(default),
        None => None,
    };
    let Some(dir) = chosen else {
        return Ok(EMBEDDED_RUNBOOKS
            .iter()
            .map(|(name, md)| Runbook::parse(name, md))
            .collect());
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read the runbooks folder {}: {e}", dir.display()))?;
    for e in entries {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "md")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            out.push(Runbook::parse(stem, &text));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
