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

/// Where the routing layer leaves the route template of a matched request
/// (`/store/products/{id_or_handle}`) for [`track`]. A slot in the request rather
/// than a mark on the response: the timeout and panic layers between the two answer
/// with responses of their own, and their 408s and 500s belong to the route too.
#[derive(Clone, Default)]
struct RouteSlot(Arc<std::sync::OnceLock<MatchedPath>>);

/// Inner layer (`route_layer`): fills the slot [`track`] put in the request.
pub(crate) async fn tag_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(route)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(route.clone());
    }
    next.run(req).await
}

/// Outer layer: counts the request and its time by API, method, route template and
/// status, whatever answered it (the handler, the timeout, the panic guard). Templates,
/// not paths, so ids do not multiply the series; paths that match no route share
/// `route="unmatched"`.
pub(crate) async fn track(api: &'static str, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let res = next.run(req).await;
    let route = slot
        .0
        .get()
        .map_or_else(|| "unmatched".to_string(), |r| r.as_str().to_string());
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
    match engine.ready_within(crate::READY_TIMEOUT).await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => crate::problem::ApiError::from(e).into_response(),
    }
}
