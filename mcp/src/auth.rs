//! Who is calling: bearer tokens with names and scopes for the HTTP transport.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a token may do. Every tool today needs `read`; `write` is reserved for the incident tools
/// that change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// A configured bearer token.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub secret: String,
    pub scopes: Vec<Scope>,
}

/// The caller of a request, as the auth layer established it. Tools log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// A caller without authentication: the stdio transport (the process owner), or HTTP on
    /// loopback with no tokens configured.
    pub fn local(name: &str) -> Self {
        Caller {
            name: name.to_owned(),
            scopes: vec![Scope::Read],
        }
    }
}

/// How the HTTP endpoint authenticates.
#[derive(Debug, Clone)]
pub enum AuthPolicy {
    /// Tokens are required.
    Tokens(Arc<Vec<Token>>),
    /// No tokens configured and the server listens on loopback: open to local callers.
    LoopbackOpen,
    /// No tokens configured but the server listens beyond loopback: refuse.
    Refuse,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `Authorization: Bearer <token>`")]
    Missing,
    #[error("invalid bearer token")]
    Invalid,
    #[error("token `{0}` lacks the `read` scope")]
    NoReadScope(String),
    #[error(
        "this endpoint needs tokens when slowburn listens beyond loopback: set SLOWBURN_MCP_TOKENS=name:token (or [mcp.tokens]) and send Authorization: Bearer <token>"
    )]
    NeedsTokens,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
            AuthError::NoReadScope(_) | AuthError::NeedsTokens => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            axum::Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"slowburn\""),
            );
        }
        resp
    }
}

/// Finds the token a request carries.
pub fn authenticate(policy: &AuthPolicy, authorization: Option<&str>) -> Result<Caller, AuthError> {
    match policy {
        AuthPolicy::LoopbackOpen => Ok(Caller::local("anonymous-loopback")),
        AuthPolicy::Refuse => Err(AuthError::NeedsTokens),
        AuthPolicy::Tokens(tokens) => {
            let given = authorization
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or(AuthError::Missing)?;
            // Compare against every token (no early exit), so timing says nothing of which.
            let mut found = None;
            for t in tokens.iter() {
                if constant_time_eq(given.as_bytes(), t.secret.as_bytes()) {
                    found = Some(t);
                }
            }
            match found {
                Some(t) if t.scopes.contains(&Scope::Read) => Ok(Caller {
                    name: t.name.clone(),
                    scopes: t.scopes.clone(),
                }),
                Some(t) => Err(AuthError::NoReadScope(t.name.clone())),
                None => Err(AuthError::Invalid),
            }
        }
    }
}

/// axum middleware: authenticates, then puts the [`Caller`] in the request extensions (rmcp
/// passes the request parts on to the tools).
pub async fn require_token(
    State(policy): State<AuthPolicy>,
    mut req: Request,
    next: Next,
) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match authenticate(&policy, authorization.as_deref()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "refused an unauthenticated request");
            e.into_response()
        }
    }
}
