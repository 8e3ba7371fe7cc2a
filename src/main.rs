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
#[command(name = "slowburn", version, about = "SLO burn-rate streaming analytics for Vercel and pino logs")]
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
    },
    /// Validate an SLO catalog and explain what it defines.
    CheckDefs {
        /// Catalog file or directory (default: ./slo-defs/ if present, else the embedded catalog).
        path: Option<PathBuf>,
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
        Command::Serve { listen, data_dir, config, slo_defs } => serve(listen, data_dir, config, slo_defs),
        Command::CheckDefs { path } => return check_defs(path),
        Command::Replay { slo_defs, status, paths } => replay(slo_defs, status, paths),
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLOWBURN_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn serve(listen: Option<String>, data_dir: Option<PathBuf>, config_path: Option<PathBuf>, slo_defs: Option<PathBuf>) -> anyhow::Result<()> {
    init_tracing();
    let settings = config::load(config_path.as_deref(), Overrides { listen, data_dir, slo_defs }, &|k| std::env::var(k).ok())?;
    let (catalog, source, warnings) = load_catalog(settings.slo_defs.as_deref())?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
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

async fn signal_shutdown(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
            let errors = e.diagnostics.iter().filter(|d| d.level == Level::Error).count();
            eprintln!("{}: {errors} error(s); catalog rejected", e.source_name);
            ExitCode::FAILURE
        }
        Ok((catalog, source, warnings)) => {
            for w in &warnings {
                eprintln!("{w}");
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{source}: {} flow(s), {} SLO(s), {} warning(s)", catalog.flows.len(), catalog.slos.len(), warnings.len());
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
                let _ = writeln!(out, "(no path given and no ./slo-defs/ directory: checked the embedded catalog)");
            }
            ExitCode::SUCCESS
        }
    }
}

fn describe_sli(sli: &slowburn_slo_defs::Sli) -> String {
    match sli {
        slowburn_slo_defs::Sli::Availability => "availability (good: 0 < status < 500)".into(),
        slowburn_slo_defs::Sli::Latency { threshold_ms } => format!("latency (good: latency <= {threshold_ms} ms)"),
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
