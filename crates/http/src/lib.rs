//! # jangteo-http
//!
//! The headless REST API as two axum routers: [`store_router`] for buyers' front ends
//! and [`admin_router`] for the back office. They are meant to listen on separate
//! addresses so the admin API can stay on the internal network. Each serves its own
//! OpenAPI 3.1 document at `GET /openapi.json`, generated from the handlers.
//!
//! ```no_run
//! # async fn demo(engine: jangteo_core::Engine) {
//! let store = jangteo_http::store_router(engine.clone(), &Default::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, store).await.unwrap();
//! # }
//! ```

#![warn(missing_docs)]

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use jangteo_core::Engine;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod admin;
pub mod dto;
mod extract;
mod metrics;
pub mod problem;
mod render;
mod store;

pub use metrics::{metrics_router, MetricsSource};
use problem::ApiError;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Take the client address from `X-Forwarded-For` (behind a trusted gateway).
    pub trust_forwarded_for: bool,
    /// Rendered product listings.
    pub(crate) listings: std::sync::Arc<render::Rendered<jangteo_core::catalog::ProductPage>>,
    /// Rendered product pages.
    pub(crate) details: std::sync::Arc<render::Rendered<jangteo_core::catalog::Product>>,
}

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body on the store API.
    pub store_body_limit: usize,
    /// Largest request body on the admin API (product texts can be long).
    pub admin_body_limit: usize,
    /// A request taking longer is answered 408 (problem document).
    pub request_timeout: Duration,
    /// Trust `X-Forwarded-For` for the client address (only behind a gateway that sets
    /// it; otherwise clients could pick their own rate-limit bucket).
    pub trust_forwarded_for: bool,
    /// Origins allowed to call the API from a browser (CORS); empty: no CORS headers
    /// (same-origin front ends, or the gateway handles it).
    pub cors_origins: Vec<String>,
    /// Serves `GET /metrics` on the admin router when set (the admin API stays on the
    /// internal network, where Prometheus scrapes).
    pub metrics: Option<MetricsSource>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            store_body_limit: 64 * 1024,
            admin_body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            trust_forwarded_for: false,
            cors_origins: Vec::new(),
            metrics: None,
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Jangteo store API", version = "0.1.0",
         description = "Headless store API: catalog, carts, checkout, accounts and orders. Errors are RFC 9457 problem documents with a stable `code`; a checkout the destination's rules refuse is 422 `compliance_violation` with a `violations` array (see `ViolationDto`). Money is `{\"amount\": \"12900\", \"currency\": \"KRW\"}`."),
    modifiers(&BearerAuth),
    components(schemas(problem::Problem, dto::ViolationDto)),
    tags((name = "catalog"), (name = "cart"), (name = "auth"), (name = "orders"), (name = "payments"), (name = "health"))
)]
struct StoreDoc;

#[derive(OpenApi)]
#[openapi(
    info(title = "Jangteo admin API", version = "0.1.0",
         description = "Back-office API for operators and admins. Every route except login needs an operator or admin bearer token. Every write is recorded in the audit log."),
    modifiers(&BearerAuth),
    components(schemas(problem::Problem)),
    tags((name = "auth"), (name = "catalog"), (name = "orders"), (name = "users"), (name = "reports"),
         (name = "compliance", description = "Country rules and exchange rates: versioned documents replaced with `If-Match`"),
         (name = "health"))
)]
struct AdminDoc;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = dto::HealthDto)))]
async fn live() -> axum::Json<dto::HealthDto> {
    axum::Json(dto::HealthDto {
        status: "ok".into(),
    })
}

/// How long a readiness probe waits for the database before it answers 503: a
/// probe that hangs until the request timeout tells a load balancer nothing.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Readiness: the database answers (within three seconds).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = dto::HealthDto), (status = 503, body = problem::Problem, content_type = "application/problem+json")))]
async fn ready(State(s): State<AppState>) -> Result<axum::Json<dto::HealthDto>, ApiError> {
    s.engine.ready_within(READY_TIMEOUT).await?;
    Ok(axum::Json(dto::HealthDto {
        status: "ok".into(),
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let id = uuid::Uuid::now_v7();
    tracing::error!(error_id = %id, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        format!("internal error; reference {id}"),
    )
    .into_response()
}

/// Every two seconds, drops rendered pages the engine no longer holds, so an idle
/// server does not keep every page it once rendered. Ends when the router is dropped;
/// does nothing outside a tokio runtime.
fn spawn_render_purge(
    listings: &std::sync::Arc<render::Rendered<jangteo_core::catalog::ProductPage>>,
    details: &std::sync::Arc<render::Rendered<jangteo_core::catalog::Product>>,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (listings, details) = (
        std::sync::Arc::downgrade(listings),
        std::sync::Arc::downgrade(details),
    );
    rt.spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let (Some(l), Some(d)) = (listings.upgrade(), details.upgrade()) else {
                return;
            };
            l.purge_unshared();
            d.purge_unshared();
        }
    });
}

fn finish(
    api_name: &'static str,
    router: OpenApiRouter<AppState>,
    engine: Engine,
    body_limit: usize,
    settings: &HttpSettings,
) -> Router {
    let (router, api) = router.split_for_parts();
    let locales = std::sync::Arc::new(engine.settings().default_locales.clone());
    let problem_engine = engine.clone();
    // Serialized once; the document does not change while the process runs.
    let doc = axum::body::Bytes::from(serde_json::to_vec(&api).unwrap_or_default());
    let listings = std::sync::Arc::new(render::Rendered::new(10_000));
    let details = std::sync::Arc::new(render::Rendered::new(50_000));
    spawn_render_purge(&listings, &details);
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc,
                    )
                }
            }),
        )
        .route_layer(axum::middleware::from_fn(metrics::tag_route))
        .fallback(not_found)
        .with_state(AppState {
            engine,
            trust_forwarded_for: settings.trust_forwarded_for,
            listings,
            details,
        });
    let router = match cors(&settings.cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        // Outside the timeout layer (a later `.layer` wraps the earlier ones), so its
        // bare 408 becomes a problem document too.
        .layer(axum::middleware::map_response(problem::ensure_problem))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(axum::middleware::from_fn(move |req, next| {
            problem::localize_problems(problem_engine.clone(), locales.clone(), req, next)
        }))
        .layer(axum::middleware::from_fn(move |req, next| {
            metrics::track(api_name, req, next)
        }))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::AllowOrigin;
    if origins.is_empty() {
        return None;
    }
    // `*` allows any origin (fine: credentials travel in the Authorization header, not
    // cookies); otherwise only the listed ones.
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-order-token"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotent-replayed"),
                header::RETRY_AFTER,
                header::ETAG,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The store API router (catalog, carts, checkout, accounts, orders, webhooks).
pub fn store_router(engine: Engine, settings: &HttpSettings) -> Router {
    let r = OpenApiRouter::with_openapi(StoreDoc::openapi())
        .routes(routes!(store::list_products))
        .routes(routes!(store::get_product))
        .routes(routes!(store::list_categories))
        .routes(routes!(store::create_cart))
        .routes(routes!(store::get_cart, store::update_cart))
        .routes(routes!(store::add_line))
        .routes(routes!(store::update_line, store::remove_line))
        .routes(routes!(store::complete_cart))
        .routes(routes!(store::register))
        .routes(routes!(store::login))
        .routes(routes!(store::refresh))
        .routes(routes!(store::logout))
        .routes(routes!(store::change_password))
        .routes(routes!(store::me))
        .routes(routes!(store::list_orders))
        .routes(routes!(store::get_order))
        .routes(routes!(store::cancel_order))
        .routes(routes!(store::payment_webhook))
        .routes(routes!(live))
        .routes(routes!(ready));
    finish("store", r, engine, settings.store_body_limit, settings)
}

/// The admin API router (catalog and order management, staff users, audit log).
pub fn admin_router(engine: Engine, settings: &HttpSettings) -> Router {
    let r = OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(admin::login))
        .routes(routes!(admin::refresh))
        .routes(routes!(admin::logout))
        .routes(routes!(admin::change_password))
        .routes(routes!(admin::list_products, admin::create_product))
        .routes(routes!(
            admin::get_product,
            admin::update_product,
            admin::delete_product
        ))
        .routes(routes!(admin::update_variant))
        .routes(routes!(admin::list_categories, admin::upsert_category))
        .routes(routes!(admin::list_orders))
        .routes(routes!(admin::get_order))
        .routes(routes!(admin::fulfill_order))
        .routes(routes!(admin::deliver_order))
        .routes(routes!(admin::cancel_order))
        .routes(routes!(admin::confirm_payment))
        .routes(routes!(admin::refund_order))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::update_user))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin::sales_report))
        .routes(routes!(admin::notifications))
        .routes(routes!(admin::list_countries))
        .routes(routes!(admin::get_country_rules, admin::put_country_rules))
        .routes(routes!(admin::country_rules_history))
        .routes(routes!(
            admin::get_exchange_rates,
            admin::put_exchange_rates
        ))
        .routes(routes!(admin::exchange_rates_history))
        .routes(routes!(live))
        .routes(routes!(ready));
    // Not in the OpenAPI document: a Prometheus endpoint, not part of the JSON API.
    let r = match &settings.metrics {
        Some(source) => {
            let source = source.clone();
            r.route(
                "/metrics",
                axum::routing::get(move || metrics::scrape(source.clone())),
            )
        }
        None => r,
    };
    finish("admin", r, engine, settings.admin_body_limit, settings)
}
