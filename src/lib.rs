//! The `slowburn` binary's wiring: configuration, the HTTP server, the offline replay. The work
//! itself lives in the library crates (`ingest`, `engine`, `slo-defs`, ...); see
//! docs/ARCHITECTURE.md.

pub mod config;
pub mod mcp_wiring;
pub mod metrics;
pub mod recovery;
pub mod replay;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slowburn_slo_defs::{Catalog, Diagnostic};

/// Where the SLO catalog came from, for the start-up log.
#[derive(Debug, Clone)]
pub enum CatalogSource {
    Path(PathBuf),
    Embedded,
}

impl std::fmt::Display for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogSource::Path(p) => write!(f, "{}", p.display()),
            CatalogSource::Embedded => write!(f, "embedded slo-defs/warrant.yaml"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid SLO catalog {source_name}:\n{}", diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct CatalogError {
    pub source_name: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads the catalog from `path`, else from `./slo-defs/` when it exists, else the embedded one.
pub fn load_catalog(
    path: Option<&Path>,
) -> Result<(Arc<Catalog>, CatalogSource, Vec<Diagnostic>), CatalogError> {
    let default_dir = Path::new("slo-defs");
    let chosen = match path {
        Some(p) => Some(p.to_owned()),
        None if default_dir.is_dir() => Some(default_dir.to_owned()),
        None => None,
    };
    match chosen {
        Some(p) => match slowburn_slo_defs::load_path(&p) {
            Ok((c, warnings)) => Ok((Arc::new(c), CatalogSource::Path(p), warnings)),
            Err(diagnostics) => Err(CatalogError {
                source_name: p.display().to_string(),
                diagnostics,
            }),
        },
        None => match slowburn_slo_defs::load_str(
            "slo-defs/warrant.yaml (embedded)",
            slowburn_slo_defs::EMBEDDED_CATALOG,
        ) {
            Ok((c, warnings)) => Ok((Arc::new(c), CatalogSource::Embedded, warnings)),
            Err(diagnostics) => Err(CatalogError {
                source_name: "embedded catalog".into(),
                diagnostics,
            }),
        },
    }
}
