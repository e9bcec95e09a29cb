//! Request metrics and the Prometheus endpoint.
//!
//! The routers record every request through the `metrics` facade; the process that
//! serves them decides where the figures go (the `jangteo` binary installs a
//! Prometheus recorder and hands its renderer to [`HttpSettings::metrics`]). Without a
//! recorder the calls do nothing, so embedding apps pay nothing for them.
//!
//! [`HttpSettings::metrics`]: crate::HttpSettings::metrics

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use jangteo_core::Engine;

/// Renders the metrics exposition (Prometheus text format) when scraped; it may read
/// gauges first (the outbox backlog).
#[derive(Clone)]
pub struct MetricsSource(
    pub Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>,
);

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

/// The route template of a matched request (`/store/products/{id_or_handle}`), passed
/// from the routing layer out to [`track`], which also sees answers made outside the
/// routes (timeouts, panics, unknown paths).
#[derive(Clone)]
struct RouteLabel(MatchedPath);

/// Inner layer (`route_layer`): tags the response with the matched route.
pub(crate) async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(r) = route {
        res.extensions_mut().insert(RouteLabel(r));
    }
    res
}

/// Outer layer: counts the request and its time by API, method, route template and
/// status. Templates, not paths, so ids do not multiply the series; paths that match
/// no route share `route="unmatched"`.
pub(crate) async fn track(api: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<RouteLabel>()
        .map_or_else(|| "unmatched".to_string(), |r| r.0.as_str().to_string());
    metrics::counter!(
        "jangteo_http_requests_total",
        "api" => api, "method" => method, "route" => route.clone(),
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(
        "jangteo_http_request_duration_seconds",
        "api" => api, "method" => method, "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    res
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: the exposition, unauthenticated as Prometheus expects; serve it only
/// where the admin API is (the internal network) or on [`metrics_router`]'s listener.
pub(crate) async fn scrape(source: MetricsSource) -> Response {
    let body = (source.0)().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A listener of its own for processes without the admin API (`jangteo worker`, a
/// store-only service): `GET /metrics`, `GET /health/live` and `GET /health/ready`.
pub fn metrics_router(engine: Engine, source: MetricsSource) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || scrape(source.clone())),
        )
        .route(
            "/health/live",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/health/ready", axum::routing::get(ready))
        .with_state(engine)
}

async fn ready(State(engine): State<Engine>) -> Response {
    match engine.ready().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => crate::problem::ApiError::from(e).into_response(),
    }
}
