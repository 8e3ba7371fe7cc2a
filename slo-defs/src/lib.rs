//! SLO definitions: the YAML catalog format (`docs/slo-defs.md`), its validation, and the flow
//! matchers. Produces a typed, validated [`Catalog`]; knows nothing of wire formats or IO beyond
//! reading catalog files.

mod duration;
mod glob;
mod model;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use glob::{PathGlob, with_segments};
pub use model::*;
pub use validate::{Diagnostic, Level, check, load_path, load_str};

/// The catalog shipped with slowburn (`slo-defs/warrant.yaml`), used when no catalog is found.
pub const EMBEDDED_CATALOG: &str = include_str!("../warrant.yaml");
