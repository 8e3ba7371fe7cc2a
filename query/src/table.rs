//! `logs` and `requests` as DataFusion tables: the archive's Parquet files and the live (not yet
//! archived) rows of one [`Snapshot`], unioned. Time predicates prune hour partitions here;
//! Parquet row groups are pruned by the scan's pushed-down filters.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use slowburn_archive::{ArchiveFile, HOUR_MS, Snapshot, Table};

/// The URL the archive's object store is registered under.
pub const ARCHIVE_URL: &str = "slowburn://archive";

#[derive(Debug)]
pub struct ArchiveTable {
    pub table: Table,
    pub schema: SchemaRef,
    pub files: Vec<ArchiveFile>,
    pub live: Vec<RecordBatch>,
}

impl ArchiveTable {
    pub fn new(table: Table, schema: SchemaRef, snapshot: &Snapshot, with_live: bool) -> Self {
        let files = snapshot.files_of(table).cloned().collect();
        let live = if !with_live {
            Vec::new()
        } else {
            match table {
                Table::Logs => snapshot.live_logs.clone(),
                Table::Requests => snapshot.live_requests.clone(),
            }
        };
        ArchiveTable {
            table,
            schema,
            files,
            live: live.into_iter().filter(|b| b.num_rows() > 0).collect(),
        }
    }
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (lo, hi) = time_bounds(filters, self.table.time_column());
        let files: Vec<&ArchiveFile> = self
            .files
            .iter()
            .filter(|f| {
                lo.is_none_or(|lo| f.hour_start_ms + HOUR_MS > lo)
                    && hi.is_none_or(|hi| f.hour_start_ms <= hi)
            })
            .collect();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            let partitions = state.config().target_partitions().max(1).min(files.len());
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
            // Greedy by size, largest first, so partitions get similar work.
            let mut sorted = files.clone();
            sorted.sort_by_key(|f| std::cmp::Reverse(f.size_bytes));
            let mut load = vec![0u64; partitions];
            for f in sorted {
                let i = (0..partitions)
                    .min_by_key(|&i| load[i])
                    .expect("at least one partition");
                load[i] += f.size_bytes;
                groups[i].push(PartitionedFile::new(f.path.to_string(), f.size_bytes));
            }
            let source = ParquetSource::new(self.schema.clone())
                .with_table_parquet_options(state.table_options().parquet.clone());
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::parse(ARCHIVE_URL)?, Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !self.live.is_empty() {
            let partitions = state
                .config()
                .target_partitions()
                .max(1)
                .min(self.live.len());
            let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
            for (i, b) in self.live.iter().enumerate() {
                parts[i % partitions].push(b.clone());
            }
            let mem =
                MemorySourceConfig::try_new(&parts, self.schema.clone(), projection.cloned())?
                    .with_limit(limit);
            inputs.push(DataSourceExec::from_data_source(mem));
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

/// `[lo, hi]` (inclusive, ms) on `column` implied by the filters; `None` = unbounded.
pub fn time_bounds(filters: &[Expr], column: &str) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut raise = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
    let mut lower = |v: i64| hi = Some(hi.map_or(v, |h| h.min(v)));
    let mut los = Vec::new();
    let mut his = Vec::new();
    for f in filters {
        for e in split_conjunction(f) {
            match e {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (op, value) = match (is_column(left, column), is_column(right, column)) {
                        (true, false) => (*op, literal_ms(right)),
                        (false, true) => (flip(*op), literal_ms(left)),
                        _ => continue,
                    };
                    let Some(v) = value else { continue };
                    match op {
                        Operator::Gt | Operator::GtEq => los.push(v),
                        Operator::Lt | Operator::LtEq => his.push(v),
                        Operator::Eq => {
                            los.push(v);
                            his.push(v);
                        }
                        _ => {}
                    }
                }
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) if is_column(expr, column) => {
                    if let Some(v) = literal_ms(low) {
                        los.push(v);
                    }
                    if let Some(v) = literal_ms(high) {
                        his.push(v);
                    }
                }
                _ => {}
            }
        }
    }
    for v in los {
        raise(v);
    }
    for v in his {
        lower(v);
    }
    (lo, hi)
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        other => other,
    }
}

fn is_column(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == column,
        Expr::Cast(c) => is_column(&c.expr, column),
        Expr::TryCast(c) => is_column(&c.expr, column),
        _ => false,
    }
}

/// A literal time in ms, rounded outwards is unnecessary: partitions are an hour wide.
fn literal_ms(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => scalar_ms(v),
        Expr::Cast(c) => literal_ms(&c.expr),
        Expr::TryCast(c) => literal_ms(&c.expr),
        _ => None,
    }
}

fn scalar_ms(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => Some(*ms),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(us.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000_000)),
        ScalarValue::Date32(Some(d)) => Some(i64::from(*d) * 86_400_000),
        ScalarValue::Date64(Some(ms)) => Some(*ms),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}
