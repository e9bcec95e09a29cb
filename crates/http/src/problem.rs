//! RFC 9457 problem documents.
//!
//! Every error leaves as `application/problem+json` with a stable `code`. Domain errors
//! map by kind (400 malformed, 401/403 auth, 404, 409 conflict (including
//! `version_conflict` of a stale `If-Match`), 422 rule violation (`compliance_violation`
//! carries a `violations` array), 429, 503 with `Retry-After`); extractor rejections
//! (bad JSON, wrong types, oversized bodies) become the same document; a 5xx is logged
//! once with its cause and the client gets only an error id.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jangteo_core::{CoreError, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// Path of the field, e.g. `variants[0].sku`.
    pub field: String,
    /// Stable code, e.g. `required`.
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type: `urn:jangteo:problem:{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Stable machine-readable code (`out_of_stock`, `validation_failed`, ...).
    pub code: String,
    /// Field errors, when the input was invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// Extra members for some codes (e.g. `variant_id`, `requested`, `available`;
    /// `violations` for `compliance_violation`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ProblemMembers>)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The members some problem codes add (documentation of [`Problem::extra`]: a client
/// generator learns their names and types from it).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ProblemMembers {
    /// `out_of_stock`: the variant short of stock.
    pub variant_id: Option<String>,
    /// `out_of_stock`: the quantity asked for.
    pub requested: Option<i64>,
    /// `out_of_stock`: the quantity there was.
    pub available: Option<i64>,
    /// `compliance_violation`: every rule the cart breaks.
    pub violations: Option<Vec<crate::dto::ViolationDto>>,
    /// `payment_declined`: the provider's reason (`card_declined`, ...).
    pub decline_code: Option<String>,
    /// `internal_error`: the id to quote to support (also in the server log).
    pub reference: Option<String>,
}

/// An error on its way to the client (boxed: handlers return it in every `Result`).
#[derive(Debug)]
pub struct ApiError(Box<ErrorParts>);

#[derive(Debug)]
struct ErrorParts {
    status: StatusCode,
    code: String,
    detail: String,
    errors: Vec<FieldError>,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with a status, code and detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorParts {
            status,
            code: code.to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            extra: None,
            retry_after: None,
        }))
    }

    /// 404 for an entity.
    pub fn not_found(entity: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{entity} not found"),
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { entity } => ApiError::not_found(entity),
            CoreError::Invalid {
                code,
                message,
                fields,
            } => {
                // Field validation is 422 (the body parsed but its values are wrong);
                // other rule breaks likewise. Malformed syntax is 400 at the extractor.
                let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
                err.0.errors = fields;
                if err.0.errors.len() > MAX_FIELD_ERRORS {
                    // A body of thousands of bad entries must not make an answer of
                    // megabytes; the first ones are enough to fix the input.
                    let all = err.0.errors.len();
                    err.0.errors.truncate(MAX_FIELD_ERRORS);
                    err.0.detail = format!(
                        "{all} fields are invalid; the first {MAX_FIELD_ERRORS} are listed"
                    );
                }
                if matches!(code, "invalid_cursor")
                    || err.0.errors.iter().any(|f| f.code == "invalid_cursor")
                {
                    err.0.status = StatusCode::BAD_REQUEST;
                }
                err
            }
            CoreError::OutOfStock {
                variant_id,
                requested,
                available,
            } => {
                let mut err = ApiError::new(
                    StatusCode::CONFLICT,
                    "out_of_stock",
                    format!("not enough stock for variant {variant_id}: requested {requested}, available {available}"),
                );
                let mut extra = serde_json::Map::new();
                extra.insert("variant_id".into(), variant_id.into());
                extra.insert("requested".into(), requested.into());
                extra.insert("available".into(), available.into());
                err.0.extra = Some(extra);
                err
            }
            CoreError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            CoreError::Compliance(violations) => {
                // The body parsed and the cart is well-formed, but the destination's
                // rules refuse it: 422, with every violation for the buyer to fix.
                let detail = if violations.is_empty() {
                    "the cart breaks the destination's rules".to_string()
                } else {
                    violations
                        .iter()
                        .map(|v| v.message.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "compliance_violation",
                    detail,
                );
                let list: Vec<crate::dto::ViolationDto> =
                    violations.iter().map(Into::into).collect();
                let mut extra = serde_json::Map::new();
                extra.insert(
                    "violations".into(),
                    serde_json::to_value(list).unwrap_or_default(),
                );
                err.0.extra = Some(extra);
                err
            }
            CoreError::Unauthorized(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
            }
            CoreError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            CoreError::RateLimited { retry_after_secs } => {
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many attempts; try again later",
                );
                err.0.retry_after = Some(retry_after_secs);
                err
            }
            CoreError::PaymentDeclined { code, message } => {
                let mut err =
                    ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", message);
                let mut extra = serde_json::Map::new();
                extra.insert("decline_code".into(), code.into());
                err.0.extra = Some(extra);
                err
            }
            CoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "a backing service is temporarily unavailable; retry shortly",
                );
                err.0.retry_after = Some(2);
                err
            }
            CoreError::Storage(cause) | CoreError::Internal(cause) => {
                let id = uuid::Uuid::now_v7();
                tracing::error!(error_id = %id, %cause, "internal error");
                let mut err = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    format!("internal error; reference {id}"),
                );
                // Its own member too, so it survives a localized detail.
                let mut extra = serde_json::Map::new();
                extra.insert("reference".into(), id.to_string().into());
                err.0.extra = Some(extra);
                err
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (r.status(), "invalid_body"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

fn title_for(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorParts {
            status,
            code,
            detail,
            errors,
            extra,
            retry_after,
        } = *self.0;
        let body = Problem {
            type_uri: format!("urn:jangteo:problem:{code}"),
            title: title_for(status),
            status: status.as_u16(),
            detail,
            code,
            errors: errors
                .into_iter()
                .map(|f| ProblemField {
                    field: f.field,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
            extra,
        };
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

/// Field errors listed in one problem document at most.
const MAX_FIELD_ERRORS: usize = 100;

/// Turns any error response that is not yet a problem document (405 from the router,
/// 408 from the timeout layer, ...) into one, so clients handle a single format.
pub async fn ensure_problem(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return res;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let detail = title_for(status);
    let mut out = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// The locales a request prefers: `?locale=` first, then `Accept-Language`, then the
/// store's defaults.
fn request_chain(req: &axum::extract::Request, defaults: &[String]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct LocaleParam {
        locale: Option<String>,
    }
    let mut preferred: Vec<String> = Vec::new();
    if let Ok(q) = axum::extract::Query::<LocaleParam>::try_from_uri(req.uri()) {
        preferred.extend(q.0.locale);
    }
    if let Some(h) = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        preferred.extend(jangteo_core::locale::parse_accept_language(h));
    }
    jangteo_core::locale::LocaleChain::negotiate(preferred.iter().map(String::as_str), defaults).0
}

/// Localizes every problem document on its way out: `title` becomes the code's message
/// (`error-<code>` in `crates/core/locales/*/errors.ftl`, or a plugin's messages) in the
/// caller's locale. When
/// that locale is not English, field messages become `field-<code>` and `detail` is
/// rebuilt from localized parts (in English the use cases' more specific texts stay).
/// Done once here rather than in every handler, so no error path can forget it.
pub async fn localize_problems(
    engine: jangteo_core::Engine,
    defaults: std::sync::Arc<Vec<String>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let chain = request_chain(&req, &defaults);
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !is_problem {
        return res;
    }
    let catalog = engine.error_messages();
    let (mut parts, body) = res.into_parts();
    // Problem documents are small (field errors are capped); should one still be
    // larger, the client gets a short document for its status instead of nothing.
    let Ok(bytes) = axum::body::to_bytes(body, 256 * 1024).await else {
        return ensure_problem(parts.status.into_response()).await;
    };
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let chain: Vec<&str> = chain.iter().map(String::as_str).collect();
    let args = fluent_bundle::FluentArgs::new();
    let code = doc["code"].as_str().unwrap_or("").to_string();
    if let Ok((title, used)) = catalog.render(&chain, &format!("error-{code}"), None, &args) {
        doc["title"] = title.into();
        if let Ok(v) = HeaderValue::from_str(&used) {
            parts.headers.insert(header::CONTENT_LANGUAGE, v);
        }
    }
    let primary = chain.first().copied().unwrap_or("en");
    let title_id = format!("error-{code}");
    if !primary.starts_with("en") && catalog.has(primary, &title_id) {
        // The English detail is specific but English; in another language the detail
        // is rebuilt from localized parts: the field messages, the violations (already
        // in the cart's locale), the figures of an out-of-stock answer, else the title.
        let mut lines = Vec::new();
        if let Some(errors) = doc.get_mut("errors").and_then(|e| e.as_array_mut()) {
            for e in errors {
                let id = format!("field-{}", e["code"].as_str().unwrap_or(""));
                if catalog.has(primary, &id) {
                    if let Ok((text, _)) = catalog.render(&[primary], &id, None, &args) {
                        e["message"] = text.into();
                    }
                }
                lines.push(format!(
                    "{}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
        }
        if let Some(violations) = doc.get("violations").and_then(|v| v.as_array()) {
            lines.extend(
                violations
                    .iter()
                    .filter_map(|v| v["message"].as_str().map(str::to_string)),
            );
        }
        if lines.is_empty() {
            let mut figures = fluent_bundle::FluentArgs::new();
            for k in ["requested", "available"] {
                if let Some(n) = doc.get(k).and_then(|v| v.as_i64()) {
                    figures.set(k, n);
                }
            }
            let detail = catalog
                .render(&[primary], &title_id, Some("detail"), &figures)
                .ok()
                .map(|(t, _)| t)
                .filter(|t| !t.is_empty());
            lines.push(detail.unwrap_or_else(|| doc["title"].as_str().unwrap_or("").to_string()));
            if let Some(r) = doc.get("reference").and_then(|r| r.as_str()) {
                lines.push(format!("({r})"));
            }
        }
        doc["detail"] = lines.join(" ").into();
    }
    let body = serde_json::to_vec(&doc).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    /// Every problem code api.md lists has a title in every shipped language, so no
    /// caller gets a bare HTTP reason phrase ("Conflict") where the docs promise a
    /// localized title.
    #[test]
    fn every_documented_code_has_a_title_in_every_language() {
        let api = include_str!("../../../docs/api.md");
        // Rows of the error table: "| `code`[, `code`...] | 409 ...".
        let is_status = |rest: &str| {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            digits == 3 && !rest[3..].starts_with('-')
        };
        let codes: Vec<&str> = api
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` | "))
            .filter(|(_, rest)| is_status(rest))
            .flat_map(|(cell, _)| cell.split("`, `"))
            .collect();
        assert!(codes.len() > 40, "the error table was not found: {codes:?}");
        let catalog = jangteo_core::i18n::Catalog::errors_with(&[]).expect("error catalog loads");
        let missing: Vec<String> = codes
            .iter()
            .flat_map(|code| ["en", "ko", "id"].map(|l| (l, *code)))
            .filter(|(l, code)| !catalog.has(l, &format!("error-{code}")))
            .map(|(l, code)| format!("{l}:{code}"))
            .collect();
        assert!(missing.is_empty(), "no title for {missing:?}");
    }
}
