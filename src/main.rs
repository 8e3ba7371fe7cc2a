//! The `slowburn` binary: parses the command line and wires the library crates together.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use slowburn::config::{self, Overrides};
use slowburn::replay::{Replay, expand_paths};
use slowburn::server::{AppState, run};
use slowburn::{CatalogSource, load_catalog};
use slowburn_slo_defs::Level;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "slowburn",
    version,
    about = "SLO burn-rate streaming analytics for Vercel and pino logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: log-drain ingest, SLO engine, HTTP API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "SLOWBURN_LISTEN")]
        listen: Option<String>,
        /// Directory for slowburn's data.
        #[arg(long, env = "SLOWBURN_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// TOML configuration file (every key optional; see docs/ARCHITECTURE.md, Limits).
        #[arg(long, env = "SLOWBURN_CONFIG")]
        config: Option<PathBuf>,
        /// SLO catalog file or directory (default: ./slo-defs/ if present, else the embedded catalog).
        #[arg(long, env = "SLOWBURN_SLO_DEFS")]
        slo_defs: Option<PathBuf>,
        /// Parquet archive: file:///path or s3://bucket/prefix (default: <data-dir>/archive).
        #[arg(long, env = "SLOWBURN_ARCHIVE")]
        archive: Option<String>,
    },
    /// Run read-only SQL over an archive's Parquet files directly (no server needed; live data
    /// not yet archived and the engine's state tables are not included).
    Sql {
        /// Archive: file:///path or s3://bucket/prefix (default: ./slowburn-data/archive).
        #[arg(long, env = "SLOWBURN_ARCHIVE")]
        archive: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
        /// TOML configuration file (for the query limits and archive settings).
        #[arg(long, env = "SLOWBURN_CONFIG")]
        config: Option<PathBuf>,
        /// The statement, for example "SELECT count(*) FROM logs".
        sql: String,
    },
    /// Serve the MCP ops server on stdin/stdout, for clients that launch a process (Claude
    /// Desktop, Claude Code). It answers from a running server, or from an archive directly.
    Mcp {
        /// The slowburn server to ask (its `POST /v1/sql`); SLOWBURN_TOKEN is sent as the bearer
        /// token. Default http://127.0.0.1:7070.
        #[arg(long, env = "SLOWBURN_SERVER", conflicts_with = "archive")]
        server: Option<String>,
        /// Query this archive instead (file:///path or s3://bucket/prefix): its Parquet files,
        /// with SLO state rebuilt from its request records.
        #[arg(long)]
        archive: Option<String>,
        /// SLO catalog (with --archive).
        #[arg(long, env = "SLOWBURN_SLO_DEFS")]
        slo_defs: Option<PathBuf>,
        /// TOML configuration file (query limits, archive settings, [mcp] limits and runbooks).
        #[arg(long, env = "SLOWBURN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate an SLO catalog and explain what it defines.
    CheckDefs {
        /// Catalog file or directory (default: ./slo-defs/ if present, else the embedded catalog).
        path: Option<PathBuf>,
    },
    /// Send a clearly marked test alert to the configured receivers and report each answer.
    NotifyTest {
        /// Only this receiver.
        #[arg(long)]
        receiver: Option<String>,
        /// TOML configuration file with `[[notify.receivers]]` (receivers also come from SLOWBURN_* variables).
        #[arg(long, env = "SLOWBURN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the engine offline, in event time, over saved deliveries; print alert transitions as JSON lines.
    Replay {
        /// SLO catalog file or directory.
        #[arg(long)]
        slo_defs: Option<PathBuf>,
        /// Print a last line `{"status":[...]}` with every SLO's state at the last event time.
        #[arg(long)]
        status: bool,
        /// Delivery files (Vercel JSON array or NDJSON, pino NDJSON; optionally .gz) or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            listen,
            data_dir,
            config,
            slo_defs,
            archive,
        } => serve(
            Overrides {
                listen,
                data_dir,
                slo_defs,
                archive,
            },
            config,
        ),
        Command::Sql {
            archive,
            format,
            config,
            sql: statement,
        } => sql(archive, format, config, &statement),
        Command::CheckDefs { path } => return check_defs(path),
        Command::Mcp {
            server,
            archive,
            slo_defs,
            config,
        } => mcp_stdio(server, archive, slo_defs, config),
        Command::Replay {
            slo_defs,
            status,
            paths,
        } => replay(slo_defs, status, paths),
        Command::NotifyTest { receiver, config } => notify_test(receiver, config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLOWBURN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SqlFormat {
    Table,
    Json,
    Csv,
}

fn sql(
    archive: Option<String>,
    format: SqlFormat,
    config_path: Option<PathBuf>,
    statement: &str,
) -> anyhow::Result<()> {
    let settings = config::load(
        config_path.as_deref(),
        Overrides {
            archive,
            ..Default::default()
        },
        &|k| std::env::var(k).ok(),
    )?;
    let url = settings.archive_url();
    if let slowburn_archive::ArchiveUrl::File(dir) = &url
        && !dir.is_dir()
    {
        anyhow::bail!(
            "archive directory {} does not exist (give --archive file:///path or s3://bucket/prefix)",
            dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = slowburn_archive::open_store(&url, settings.archive.allow_http)?;
        let snapshot = slowburn_archive::list_archive(store.as_ref()).await.with_context(|| format!("cannot list the archive {url}"))?;
        let files = snapshot.files.len();
        let engine = slowburn_query::QueryEngine::new(config::query_config(&settings), store, slowburn_ingest::log_schema())?;
        let out = engine
            .run(statement, slowburn_query::QueryInputs { snapshot, state: None }, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!(
            "(archive {url}: {files} Parquet file(s); Parquet only: rows still in a server's write-ahead log and the slo_status/alerts tables are not included)"
        );
        let mut stdout = std::io::stdout().lock();
        match format {
            SqlFormat::Table => {
                if out.rows == 0 {
                    writeln!(stdout, "{}", out.columns().join(" | "))?;
                } else {
                    writeln!(stdout, "{}", out.to_table()?)?;
                }
            }
            SqlFormat::Json => writeln!(stdout, "{}", out.to_json())?,
            SqlFormat::Csv => stdout.write_all(&out.to_csv()?)?,
        }
        eprintln!("{} row(s){} in {:.1} ms", out.rows, if out.truncated { " (truncated at the row cap)" } else { "" }, out.elapsed_ms);
        anyhow::Ok(())
    })
}

fn serve(overrides: Overrides, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    init_tracing();
    let settings = config::load(config_path.as_deref(), overrides, &|k| {
        std::env::var(k).ok()
    })?;
    let (catalog, source, warnings) = load_catalog(settings.slo_defs.as_deref())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            %addr, data_dir = %settings.data_dir.display(), catalog = %source, slos = catalog.slos.len(),
            signed = settings.ingest.vercel_drain_secret.is_some(), "slowburn listening on http://{addr}"
        );
        if settings.ingest.vercel_drain_secret.is_none() && !addr.ip().is_loopback() {
            tracing::warn!("no Vercel drain secret configured (SLOWBURN_VERCEL_DRAIN_SECRET): anyone who can reach {addr} can post logs");
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_shutdown(shutdown.clone()));
        let state = AppState::new(settings, catalog);
        run(listener, state, shutdown).await.context("server failed")?;
        tracing::info!("slowburn stopped");
        anyhow::Ok(())
    })
}

fn mcp_stdio(
    server: Option<String>,
    archive: Option<String>,
    slo_defs: Option<PathBuf>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    // stdout is the protocol: every log goes to stderr.
    init_tracing();
    let use_archive = archive.is_some();
    let settings = config::load(
        config_path.as_deref(),
        Overrides {
            archive,
            slo_defs,
            ..Default::default()
        },
        &|k| std::env::var(k).ok(),
    )?;
    let runbooks = slowburn::mcp_wiring::load_runbooks(settings.mcp.runbooks_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let source: std::sync::Arc<dyn slowburn_mcp::SqlSource> = if use_archive {
            let (catalog, _, _) = load_catalog(settings.slo_defs.as_deref())?;
            std::sync::Arc::new(
                slowburn::mcp_wiring::ArchiveSource::open(&settings, catalog).await?,
            )
        } else {
            let url = server.unwrap_or_else(|| format!("http://{}", config::DEFAULT_LISTEN));
            let token = std::env::var("SLOWBURN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            std::sync::Arc::new(slowburn_mcp::HttpSource::new(&url, token)?)
        };
        tracing::info!(source = %source.describe(), "MCP ops server on stdio");
        let ops =
            slowburn_mcp::Ops::new(source, std::sync::Arc::new(runbooks), settings.mcp.max_rows);
        slowburn_mcp::serve_stdio(std::sync::Arc::new(ops))
            .await
            .context("MCP stdio session failed")?;
        anyhow::Ok(())
    })
}

async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    token.cancel();
}

fn check_defs(path: Option<PathBuf>) -> ExitCode {
    match load_catalog(path.as_deref()) {
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{d}");
            }
            let errors = e
                .diagnostics
                .iter()
                .filter(|d| d.level == Level::Error)
                .count();
            eprintln!("{}: {errors} error(s); catalog rejected", e.source_name);
            ExitCode::FAILURE
        }
        Ok((catalog, source, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{source}: {} flow(s), {} SLO(s), {} warning(s)",
                catalog.flows.len(),
                catalog.slos.len(),
                warnings.len()
            );
            for f in &catalog.flows {
                let matchers: Vec<String> = f
                    .matchers
                    .iter()
                    .map(|m| format!("{} {}", m.method.as_deref().unwrap_or("*"), m.path.as_str()))
                    .chain(f.envelope.iter().map(|e| format!("envelope {e}")))
                    .collect();
                let _ = writeln!(out, "flow {}: {}", f.name, matchers.join(", "));
            }
            for s in &catalog.slos {
                let _ = writeln!(
                    out,
                    "slo {}: flow {}, objective {}% over {}, {}, error budget {:.4}%, min_events {}",
                    s.name,
                    s.flow,
                    s.objective * 100.0,
                    slowburn_slo_defs::format_duration(s.period_ms),
                    describe_sli(&s.sli),
                    s.error_budget * 100.0,
                    s.min_events
                );
                for r in &s.rules {
                    let _ = writeln!(
                        out,
                        "  rule {}: burn > {:.2}x over {} and {} -> {:?} {}",
                        r.name,
                        r.factor,
                        slowburn_slo_defs::format_duration(r.long_ms),
                        slowburn_slo_defs::format_duration(r.short_ms),
                        r.action,
                        r.severity.as_str()
                    );
                }
            }
            if matches!(source, CatalogSource::Embedded) {
                let _ = writeln!(
                    out,
                    "(no path given and no ./slo-defs/ directory: checked the embedded catalog)"
                );
            }
            ExitCode::SUCCESS
        }
    }
}

fn notify_test(receiver: Option<String>, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = config::load(config_path.as_deref(), Overrides::default(), &|k| {
        std::env::var(k).ok()
    })?;
    if settings.notify.receivers.is_empty() {
        anyhow::bail!(
            "no receivers configured: add [[notify.receivers]] to the config file, or set SLOWBURN_PAGERDUTY_ROUTING_KEY, SLOWBURN_SLACK_WEBHOOK_URL or SLOWBURN_WEBHOOK_URL"
        );
    }
    if let Some(name) = &receiver
        && !settings.notify.receivers.iter().any(|r| &r.name == name)
    {
        let known: Vec<&str> = settings
            .notify
            .receivers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        anyhow::bail!(
            "unknown receiver `{name}` (configured: {})",
            known.join(", ")
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tracker = tokio_util::task::TaskTracker::new();
        let shutdown = CancellationToken::new();
        let mut cfg = slowburn::server::notify_config(
            &settings,
            settings.notify.external_url.clone().unwrap_or_default(),
        );
        cfg.ledger_path = None;
        let notifier = slowburn_notify::Notifier::start(
            cfg,
            std::sync::Arc::new(|_: &str, _: &str| {}),
            &tracker,
            shutdown.clone(),
        )?;
        let results = notifier.send_test(receiver.as_deref()).await;
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        let mut failed = 0;
        for (name, answers) in &results {
            for a in answers {
                let ok = a.accepted();
                failed += usize::from(!ok);
                println!("{name}: {} {a}", if ok { "ok" } else { "FAILED" });
            }
        }
        if failed > 0 {
            anyhow::bail!("{failed} test notification(s) failed");
        }
        anyhow::Ok(())
    })
}

fn describe_sli(sli: &slowburn_slo_defs::Sli) -> String {
    match sli {
        slowburn_slo_defs::Sli::Availability => "availability (good: 0 < status < 500)".into(),
        slowburn_slo_defs::Sli::Latency { threshold_ms } => {
            format!("latency (good: latency <= {threshold_ms} ms)")
        }
        slowburn_slo_defs::Sli::Envelope => "envelope (good: outcome success)".into(),
    }
}

fn replay(slo_defs: Option<PathBuf>, status: bool, paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let (catalog, _, _) = load_catalog(slo_defs.as_deref())?;
    let files = expand_paths(&paths)?;
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut replay = Replay::new(catalog, stdout);
    replay.run(&files)?;
    if status {
        replay.write_status()?;
    }
    let summary = replay.summary.clone();
    replay.into_output().flush()?;
    for e in &summary.sample_errors {
        eprintln!("warning: {e}");
    }
    let mb = summary.input_bytes as f64 / 1e6;
    eprintln!(
        "replayed {} file(s), {:.1} MB, {} entries ({} duplicates, {} rejected), {} requests, {} flow events, {} transitions in {:.2} s ({:.0} MB/s)",
        summary.files,
        mb,
        summary.entries,
        summary.duplicates,
        summary.rejected,
        summary.requests,
        summary.flow_events,
        summary.transitions,
        summary.elapsed_secs,
        mb / summary.elapsed_secs.max(1e-9)
    );
    Ok(())
}
