//! The MCP server: tools and resources over [`Ops`], served on stdio or streamable HTTP.

use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router,
};
use serde::Deserialize;

use crate::auth::Caller;
use crate::ops::{Answer, Ops, OpsError};

/// The fixed resources: `(uri, name, description)`.
pub const RESOURCES: [(&str, &str, &str); 5] = [
    (
        "ops://slo-status",
        "slo-status",
        "Every SLO: objective, error budget left, burn rates (5m to 3d), firing alerts, latency p50/p95/p99.",
    ),
    (
        "ops://active-incidents",
        "active-incidents",
        "Firing, unsuppressed burn-rate alerts: severity, age, affected flow, top error signature.",
    ),
    (
        "ops://release-health",
        "release-health",
        "Per deployment (7 days): first/last seen, requests, error ratio and p95 per flow against the previous deployment, rollback-candidate flag.",
    ),
    (
        "ops://service-health",
        "service-health",
        "Ingest health: per log source the age of the last event and the rate; per flow the error ratio of the last 5 minutes.",
    ),
    (
        "ops://runbooks",
        "runbooks",
        "The runbook of each SLO with its verification commands; the text of one is at ops://runbooks/{name}.",
    ),
];

const INSTRUCTIONS: &str = "slowburn watches the SLOs of Warrant (a Next.js app on Vercel) from its logs. \
Incident loop: read ops://active-incidents, then call triage(slo=...) for the evidence (error signatures, \
first-seen deployment, sample request ids, slowest routes), read the SLO's runbook at ops://runbooks/{slo}, \
fix, and verify with query_flow_health(flow, window=\"5m\") until errors stay at 0 and the alert resolves \
(slo_status). sql_query runs read-only SQL over the tables logs, requests, slo_status, alerts, \
alert_transitions and flows (docs/sql.md).";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowHealthArgs {
    /// A flow name from list_flows, e.g. "subscribe_checkout".
    pub flow: String,
    /// How far back to look: "5m", "1h", "24h", "7d" (1m to 30d). Default "1h".
    #[serde(default)]
    pub window: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloStatusArgs {
    /// One SLO's name (see ops://slo-status); omit for every SLO.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageArgs {
    /// An SLO name, e.g. "subscribe_checkout_success_rate". Give this or `flow`.
    #[serde(default)]
    pub slo: Option<String>,
    /// A flow name, e.g. "subscribe_checkout". Give this or `slo`.
    #[serde(default)]
    pub flow: Option<String>,
    /// How far back to look: "15m", "1h", "24h" (1m to 30d). Default "1h".
    #[serde(default)]
    pub window: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlArgs {
    /// One read-only statement (SELECT, WITH, EXPLAIN, SHOW) over logs, requests, slo_status,
    /// alerts, alert_transitions, flows. Bound time with e.g. `WHERE event_time > now() - INTERVAL '1 hour'`.
    pub sql: String,
    /// Rows to return (default 100, at most the server's cap).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Rows to skip, for the next page (the previous answer's `next_offset`).
    #[serde(default)]
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Clone)]
pub struct OpsServer {
    ops: Arc<Ops>,
    tool_router: ToolRouter<Self>,
}

/// The caller of a request: from the HTTP auth layer, else the stdio process owner.
fn caller(cx: &RequestContext<RoleServer>) -> Caller {
    cx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        .unwrap_or_else(|| Caller::local("stdio"))
}

fn tool_result(
    tool: &str,
    cx: &RequestContext<RoleServer>,
    started: Instant,
    r: Result<Answer, OpsError>,
) -> CallToolResult {
    let who = caller(cx);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match r {
        Ok(answer) => {
            tracing::info!(tool, caller = %who.name, elapsed_ms, "mcp tool call");
            let mut result = CallToolResult::structured(answer.data);
            result.content.insert(0, ContentBlock::text(answer.summary));
            result
        }
        Err(e) => {
            tracing::info!(tool, caller = %who.name, elapsed_ms, error = %e, "mcp tool call failed");
            let text = match &e {
                OpsError::Invalid(m) => m.clone(),
                OpsError::Unavailable(m) => format!("data unavailable: {m}"),
            };
            CallToolResult::error(vec![ContentBlock::text(text)])
        }
    }
}

#[tool_router]
impl OpsServer {
    pub fn new(ops: Arc<Ops>) -> Self {
        OpsServer {
            ops,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "query_flow_health",
        description = "Health of one flow over a window: requests, errors, error ratio, latency p50/p95/p99, status codes, the same by deployment, and the burn rates of the flow's SLOs.",
        annotations(
            title = "Flow health",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn query_flow_health(
        &self,
        Parameters(args): Parameters<FlowHealthArgs>,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let window = args.window.as_deref().unwrap_or("1h");
        let r = self.ops.flow_health(&args.flow, window).await;
        Ok(tool_result("query_flow_health", &cx, started, r))
    }

    #[tool(
        name = "slo_status",
        description = "State of every SLO (or the one named): objective, SLI, error budget left and consumed, time to exhaustion, burn rates from 5m to 3d, firing alerts, latency percentiles.",
        annotations(
            title = "SLO status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn slo_status(
        &self,
        Parameters(args): Parameters<SloStatusArgs>,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let r = self.ops.slo_status(args.name.as_deref()).await;
        Ok(tool_result("slo_status", &cx, started, r))
    }

    #[tool(
        name = "triage",
        description = "First evidence for a burning SLO or flow: error signatures of failing requests (pino err type and normalized message) with first-seen time and deployment and sample request ids, failing status codes, the deployment timeline, the slowest routes, firing alerts.",
        annotations(
            title = "Triage",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn triage(
        &self,
        Parameters(args): Parameters<TriageArgs>,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let window = args.window.as_deref().unwrap_or("1h");
        let r = self
            .ops
            .triage(args.slo.as_deref(), args.flow.as_deref(), window)
            .await;
        Ok(tool_result("triage", &cx, started, r))
    }

    #[tool(
        name = "sql_query",
        description = "Read-only SQL (DataFusion dialect) over logs, requests, slo_status, alerts, alert_transitions and flows, with the guards of POST /v1/sql (timeout, memory, row cap). Paginated with limit/offset.",
        annotations(
            title = "SQL query",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn sql_query(
        &self,
        Parameters(args): Parameters<SqlArgs>,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let r = self.ops.sql(&args.sql, args.limit, args.offset).await;
        Ok(tool_result("sql_query", &cx, started, r))
    }

    #[tool(
        name = "list_flows",
        description = "The critical flows of the catalog: name, description, request matchers (method and path glob) or flow-envelope name, and their SLOs.",
        annotations(
            title = "List flows",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_flows(
        &self,
        Parameters(_): Parameters<NoArgs>,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let started = Instant::now();
        let r = self.ops.list_flows().await;
        Ok(tool_result("list_flows", &cx, started, r))
    }
}

fn json_contents(uri: &str, answer: &Answer) -> ResourceContents {
    let text = serde_json::to_string_pretty(&answer.data).unwrap_or_else(|_| "null".into());
    ResourceContents::text(text, uri).with_mime_type("application/json")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for OpsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("slowburn", env!("CARGO_PKG_VERSION")))
        .with_instructions(format!(
            "{INSTRUCTIONS} Data: {}.",
            self.ops.describe_source()
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut resources: Vec<Resource> = RESOURCES
            .iter()
            .map(|(uri, name, description)| {
                Resource::new(*uri, *name)
                    .with_description(*description)
                    .with_mime_type("application/json")
            })
            .collect();
        for r in self.ops.runbook_list() {
            resources.push(
                Resource::new(r.uri(), format!("runbook-{}", r.name))
                    .with_title(r.title.clone())
                    .with_description(format!("Runbook of the SLO {}", r.name))
                    .with_mime_type("text/markdown"),
            );
        }
        Ok(ListResourcesResult {
            resources,
            ..Default::default()
        })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult {
            resource_templates: vec![
                ResourceTemplate::new("ops://runbooks/{name}", "runbook")
                    .with_description("The runbook of one SLO (markdown)")
                    .with_mime_type("text/markdown"),
            ],
            ..Default::default()
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri.as_str();
        let started = Instant::now();
        let answer = match uri {
            "ops://slo-status" => self.ops.slo_status(None).await,
            "ops://active-incidents" => self.ops.active_incidents().await,
            "ops://release-health" => self.ops.release_health().await,
            "ops://service-health" => self.ops.service_health().await,
            "ops://runbooks" => Ok(self.ops.runbooks()),
            other => {
                if let Some(r) = other
                    .strip_prefix("ops://runbooks/")
                    .and_then(|name| self.ops.runbook(name))
                {
                    let contents = ResourceContents::text(r.markdown.clone(), uri)
                        .with_mime_type("text/markdown");
                    return Ok(ReadResourceResult::new(vec![contents]).into());
                }
                return Err(McpError::resource_not_found(
                    format!("unknown resource `{other}`; list them with resources/list"),
                    Some(serde_json::json!({ "uri": other })),
                ));
            }
        };
        let who = caller(&cx);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok(a) => {
                tracing::info!(resource = uri, caller = %who.name, elapsed_ms, "mcp resource read");
                Ok(ReadResourceResult::new(vec![json_contents(uri, &a)]).into())
            }
            Err(e) => {
                tracing::warn!(resource = uri, caller = %who.name, error = %e, "mcp resource read failed");
                Err(McpError::internal_error(
                    format!("cannot read {uri}: {e}"),
                    Some(serde_json::json!({ "uri": uri })),
                ))
            }
        }
    }
}
