//! Read-only SQL over the archive and the live data, with DataFusion.
//!
//! Tables (documented in `docs/sql.md`): `logs` and `requests` (archived Parquet files plus the
//! rows not yet archived, from one consistent [`Snapshot`]), and the engine's state as
//! `slo_status`, `alerts`, `alert_transitions` and `flows` when an [`EngineState`] is given.
//!
//! Every query is bounded: only queries (no DDL, DML, `COPY` or `SET`), a timeout, a shared
//! memory pool (sorts and aggregations spill or fail cleanly), a cap on result rows, and a cap on
//! queries running at once.

pub mod format;
pub mod state;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;
use slowburn_archive::{Snapshot, Table};
use tokio::sync::Semaphore;

pub use format::{QueryOutput, cell_json};
pub use state::EngineState;

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub timeout: Duration,
    pub memory_limit_bytes: usize,
    /// Result rows beyond this are cut off (`truncated: true`).
    pub max_rows: usize,
    pub max_concurrent: usize,
    pub target_partitions: usize,
}

/// Why a query gave no result. Each maps to one HTTP status (see `status_code`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadQuery(String),
    #[error("read-only: {0}; only queries (SELECT, WITH, EXPLAIN, SHOW) are allowed")]
    ReadOnly(String),
    #[error("query exceeded the time limit of {} s; narrow the time range (WHERE event_time > now() - INTERVAL '1 hour') or add a LIMIT", .0.as_secs_f64())]
    Timeout(Duration),
    #[error(
        "query exceeded the memory limit: {0}; aggregate over a shorter time range or select fewer columns"
    )]
    Memory(String),
    #[error("too many queries at once (limit {0}); retry shortly")]
    Busy(usize),
    #[error("the archive is unreachable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The HTTP status for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            QueryError::BadQuery(_) | QueryError::ReadOnly(_) => 400,
            QueryError::Timeout(_) => 408,
            QueryError::Memory(_) => 422,
            QueryError::Busy(_) => 429,
            QueryError::Unavailable(_) => 503,
            QueryError::Internal(_) => 500,
        }
    }

    fn from_datafusion(e: DataFusionError) -> Self {
        let root = e.find_root();
        match root {
            DataFusionError::ResourcesExhausted(m) => QueryError::Memory(m.clone()),
            DataFusionError::ObjectStore(o) => QueryError::Unavailable(o.to_string()),
            DataFusionError::IoError(io) => QueryError::Unavailable(io.to_string()),
            DataFusionError::Internal(m) => QueryError::Internal(m.clone()),
            DataFusionError::Plan(m)
                if m.starts_with("DDL not supported")
                    || m.starts_with("DML not supported")
                    || m.starts_with("Statement not supported") =>
            {
                QueryError::ReadOnly(m.clone())
            }
            _ => QueryError::BadQuery(e.strip_backtrace()),
        }
    }
}

/// What a query reads.
#[derive(Debug, Clone, Default)]
pub struct QueryInputs {
    pub snapshot: Snapshot,
    /// `None` (for `slowburn sql --archive`): no `slo_status`, `alerts`, `alert_transitions`.
    pub state: Option<EngineState>,
}

pub struct QueryEngine {
    config: QueryConfig,
    runtime: Arc<RuntimeEnv>,
    permits: Semaphore,
    logs_schema: SchemaRef,
}

impl QueryEngine {
    pub fn new(
        config: QueryConfig,
        store: Arc<dyn ObjectStore>,
        logs_schema: SchemaRef,
    ) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit_bytes)))
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let url = ObjectStoreUrl::parse(table::ARCHIVE_URL)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        runtime.register_object_store(url.as_ref(), store);
        Ok(QueryEngine {
            permits: Semaphore::new(config.max_concurrent.max(1)),
            config,
            runtime,
            logs_schema,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    fn context(&self, inputs: QueryInputs) -> Result<SessionContext, QueryError> {
        let mut cfg = SessionConfig::new()
            .with_target_partitions(self.config.target_partitions.max(1))
            .with_information_schema(true)
            .with_default_catalog_and_schema("slowburn", "public");
        let opts = cfg.options_mut();
        opts.execution.parquet.pushdown_filters = true;
        opts.execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config_rt(cfg, self.runtime.clone());
        let internal = |e: DataFusionError| QueryError::Internal(e.to_string());
        let logs = table::ArchiveTable::new(
            Table::Logs,
            self.logs_schema.clone(),
            &inputs.snapshot,
            true,
        );
        let requests = table::ArchiveTable::new(
            Table::Requests,
            slowburn_archive::requests::requests_schema(),
            &inputs.snapshot,
            true,
        );
        ctx.register_table("logs", Arc::new(logs))
            .map_err(internal)?;
        ctx.register_table("requests", Arc::new(requests))
            .map_err(internal)?;
        if let Some(state) = inputs.state {
            let arrow = |e: arrow::error::ArrowError| QueryError::Internal(e.to_string());
            let tables = [
                (
                    "slo_status",
                    state::slo_status_batch(&state.slos).map_err(arrow)?,
                ),
                ("alerts", state::alerts_batch(&state.slos).map_err(arrow)?),
                (
                    "alert_transitions",
                    state::transitions_batch(&state.transitions).map_err(arrow)?,
                ),
            ];
            let mut tables = tables.to_vec();
            if let Some(catalog) = &state.catalog {
                tables.push(("flows", state::flows_batch(catalog).map_err(arrow)?));
            }
            for (name, batch) in tables {
                let mem = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(internal)?;
                ctx.register_table(name, Arc::new(mem)).map_err(internal)?;
            }
        }
        Ok(ctx)
    }

    /// Runs one read-only statement. `max_rows` may lower (never raise) the configured cap.
    pub async fn run(
        &self,
        sql: &str,
        inputs: QueryInputs,
        max_rows: Option<usize>,
    ) -> Result<QueryOutput, QueryError> {
        let _permit = self
            .permits
            .try_acquire()
            .map_err(|_| QueryError::Busy(self.config.max_concurrent))?;
        let started = Instant::now();
        let has_state = inputs.state.is_some();
        let cap = max_rows
            .unwrap_or(self.config.max_rows)
            .min(self.config.max_rows);
        let ctx = self.context(inputs)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let work = async {
            let df = ctx
                .sql_with_options(sql, options)
                .await
                .map_err(|e| annotate(QueryError::from_datafusion(e), has_state))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df
                .execute_stream()
                .await
                .map_err(QueryError::from_datafusion)?;
            let mut batches: Vec<RecordBatch> = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(QueryError::from_datafusion)?;
                if rows + batch.num_rows() > cap {
                    let keep = cap - rows;
                    if keep > 0 {
                        batches.push(batch.slice(0, keep));
                    }
                    rows = cap;
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok::<_, QueryError>(QueryOutput {
                schema,
                batches,
                rows,
                truncated,
                elapsed_ms: 0.0,
            })
        };
        let mut out = tokio::time::timeout(self.config.timeout, work)
            .await
            .map_err(|_| QueryError::Timeout(self.config.timeout))??;
        out.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(out)
    }
}

/// Points at the reason a state table is missing when there is no engine (archive-only mode).
fn annotate(e: QueryError, has_state: bool) -> QueryError {
    match e {
        QueryError::BadQuery(m)
            if !has_state
                && m.contains("not found")
                && ["slo_status", "alerts", "alert_transitions", "flows"]
                    .iter()
                    .any(|t| m.contains(t)) =>
        {
            QueryError::BadQuery(format!(
                "{m} (slo_status, alerts, alert_transitions and flows exist only on a running server; this query reads the archive's Parquet files only)"
            ))
        }
        other => other,
    }
}
