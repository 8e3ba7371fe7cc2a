//! The MCP ops server: the only crate that knows the Model Context Protocol.
//!
//! AI tools read what burns and why through resources (`ops://slo-status`,
//! `ops://active-incidents`, `ops://release-health`, `ops://service-health`, `ops://runbooks`)
//! and tools (`query_flow_health`, `slo_status`, `triage`, `sql_query`, `list_flows`). Every
//! answer is a DataFusion query over the same tables people query (`slo_status`, `alerts`,
//! `flows`, `requests`, `logs`), through a [`SqlSource`]: the server in process, a running server
//! over HTTP ([`HttpSource`]), or an archive. [`Ops`] builds the answers; [`OpsServer`] wraps them
//! for rmcp; [`http_router`] serves streamable HTTP behind bearer tokens ([`auth`]);
//! [`serve_stdio`] serves a process's stdin/stdout.

pub mod auth;
pub mod ops;
pub mod runbooks;
pub mod server;
pub mod source;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use auth::{AuthError, AuthPolicy, Caller, Scope, Token};
pub use ops::{Answer, Ops, OpsError};
pub use runbooks::Runbook;
pub use server::OpsServer;
pub use source::{HttpSource, SourceError, SourceFuture, SqlSource, SqlTable};

/// How the HTTP endpoint is exposed.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `Host` header values accepted besides localhost, 127.0.0.1 and ::1 (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    pub auth: AuthPolicy,
    /// Largest JSON-RPC request body.
    pub max_request_bytes: usize,
}

/// The `/mcp` endpoint (streamable HTTP, sessions for clients of protocol versions up to
/// 2025-11-25, stateless for 2026-07-28), behind the auth layer. Merge it into the app's router.
pub fn http_router(ops: Arc<Ops>, config: HttpConfig, shutdown: CancellationToken) -> axum::Router {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    hosts.extend(config.allowed_hosts);
    let service = StreamableHttpService::new(
        move || Ok(OpsServer::new(ops.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_max_request_body_bytes(config.max_request_bytes)
            .with_cancellation_token(shutdown.child_token()),
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(session_delete_status))
        .layer(axum::middleware::from_fn_with_state(
            config.auth,
            auth::require_token,
        ))
}

/// rmcp answers a session-ending `DELETE` with 202 Accepted; the session is gone at once, and
/// the official Python and TypeScript clients expect 200 or 204 (the Python SDK logs "Session
/// termination failed: 202"). Say 204 No Content.
async fn session_delete_status(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if is_delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

/// Serves MCP on this process's stdin and stdout until the client closes them.
pub async fn serve_stdio(ops: Arc<Ops>) -> Result<(), std::io::Error> {
    let running = OpsServer::new(ops)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
