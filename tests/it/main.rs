//! End-to-end tests: the real server on 127.0.0.1:0 driven over HTTP, and the real `slowburn`
//! binary as a child process. One test binary (see docs/ARCHITECTURE.md, Testing).

mod archive;
mod cli;
mod common;
mod ingest_http;
mod mcp;
mod notify;
mod s3;
mod slo_api;
mod sql;
