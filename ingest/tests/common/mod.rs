#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The real Vercel deliveries: the copy committed in `tests/fixtures/vercel/` (so a clone is
/// self-contained), plus any newer file in the shared fixture folder beside the repository
/// (`SLOWBURN_SHARED_DIR` overrides where that is).
pub fn vercel_fixtures() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
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
