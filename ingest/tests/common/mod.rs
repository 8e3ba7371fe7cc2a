#![allow(dead_code)]
use std::path::PathBuf;

/// `shared/` sits beside the repository (in CI too); `SLOWBURN_SHARED_DIR` overrides.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SLOWBURN_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

pub fn vercel_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = shared_dir().join("fixtures/vercel");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 12, "expected the 12 Vercel fixtures, found {}", out.len());
    out
}
