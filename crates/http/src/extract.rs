//! Extractors: JSON and query strings whose rejections are problem documents, bearer
//! tokens, locale negotiation and the client address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{ACCEPT_LANGUAGE, AUTHORIZATION};
use axum::http::request::Parts;
use jangteo_core::auth::Principal;
use jangteo_core::customer::Role;
use jangteo_core::locale::{parse_accept_language, LocaleChain};

use crate::problem::ApiError;
use crate::AppState;

/// A JSON object body, with problem-document rejections: `415` unless sent as
/// `application/json`, `422 invalid_body` for a body that is not a JSON object (serde
/// would otherwise read a struct from an array of its fields, `["KR","KRW"]`) or does
/// not fit, `400 malformed_json` for text that is not JSON.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = object_body(req, state).await?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// An optional JSON body (a cancel reason, checkout's payment choice): no body, or only
/// whitespace, is `T::default()`; anything else must be a JSON object sent as
/// `application/json`, like every other body (`415`, or `422 invalid_body`).
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let sent_as_json = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(OptionalJson(T::default()));
        }
        if !sent_as_json {
            return Err(not_json());
        }
        must_be_object(&bytes)?;
        parse_body(&bytes).map(OptionalJson)
    }
}

async fn body_bytes<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    use axum::extract::rejection::JsonRejection;
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::from(JsonRejection::from(e)))
}

/// The body of a request that must carry a JSON object.
async fn object_body<S: Send + Sync>(
    req: axum::extract::Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(not_json());
    }
    let bytes = body_bytes(req, state).await?;
    must_be_object(&bytes)?;
    Ok(bytes)
}

/// Reads `T` from a body. serde_json reports some type errors of valid JSON as syntax
/// errors (a number where an enum's string belongs: "expected value"): those are a
/// wrong shape (`422 invalid_body`), not malformed JSON (`400`).
fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use axum::extract::rejection::JsonRejection;
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(JsonRejection::JsonSyntaxError(e))
            if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() =>
        {
            Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.body_text(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body with `Content-Type: application/json`",
    )
}

/// Refuses a body whose JSON value is not an object. An empty body is left to the
/// parser, which calls it malformed.
fn must_be_object(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the body must be a JSON object",
        )),
    }
}

/// `application/json` or `application/<anything>+json`, as `axum::Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(v) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn required_bearer(parts: &Parts) -> Result<&str, ApiError> {
    bearer(parts).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer access token is required",
        )
    })
}

/// A signed-in user (any role). Missing or bad token, or one the account no longer
/// honours (disabled, password changed since): 401.
#[derive(Debug, Clone)]
pub(crate) struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state
            .engine
            .tokens()
            .verify_claims(required_bearer(parts)?)?;
        // One primary-key read per signed-in request: a buyer who changes a stolen
        // password must not leave the thief 15 minutes of orders and addresses.
        Ok(Auth(state.engine.session(&claims).await?))
    }
}

impl OptionalFromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    /// No header: anonymous. A header with a bad token is still a 401, so a client with
    /// an expired token learns it instead of silently acting as a guest.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            return Ok(None);
        }
        <Auth as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// An operator or admin. No token: 401; a customer token: 403.
#[derive(Debug, Clone)]
pub(crate) struct Staff(pub Principal);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = state
            .engine
            .tokens()
            .verify_claims(required_bearer(parts)?)?;
        if !claims.role.is_staff() {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "operator or admin role required",
            ));
        }
        // The token may predate a change an admin made (disabled, demoted, password
        // reset): the account as stored now decides.
        Ok(Staff(state.engine.staff_session(&claims).await?))
    }
}

/// An admin. No token: 401; other roles: 403.
#[derive(Debug, Clone)]
pub(crate) struct AdminOnly(pub Principal);

impl FromRequestParts<AppState> for AdminOnly {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Staff(p) =
            <Staff as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if p.role != Role::Admin {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "admin role required",
            ));
        }
        Ok(AdminOnly(p))
    }
}

#[derive(serde::Deserialize)]
struct LocaleParam {
    locale: Option<String>,
}

/// The caller's locale chain: `?locale=` first, then `Accept-Language`, then the
/// store's defaults.
#[derive(Debug, Clone)]
pub(crate) struct Locale(pub LocaleChain);

impl FromRequestParts<AppState> for Locale {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut preferred: Vec<String> = Vec::new();
        if let Ok(q) = axum::extract::Query::<LocaleParam>::try_from_uri(&parts.uri) {
            preferred.extend(q.0.locale);
        }
        if let Some(h) = parts
            .headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        {
            preferred.extend(parse_accept_language(h));
        }
        let defaults = &state.engine.settings().default_locales;
        Ok(Locale(LocaleChain::negotiate(
            preferred.iter().map(String::as_str),
            defaults,
        )))
    }
}

/// The client address for rate limiting: the right-most `X-Forwarded-For` entry when
/// the server sits behind a trusted gateway (that entry is the one the gateway itself
/// added), otherwise the TCP peer.
#[derive(Debug, Clone)]
pub(crate) struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.trust_forwarded_for {
            // Only the right-most entry is the gateway's; every entry left of it is
            // whatever the client sent. An entry the gateway wrote in a form not read
            // here falls back to the peer address, never to a client's entry.
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|entry| !entry.is_empty())
                .and_then(forwarded_address);
            if let Some(ip) = forwarded {
                return Ok(ClientIp(Some(ip.to_string())));
            }
        }
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// An `X-Forwarded-For` entry as gateways write it: `203.0.113.7`, `203.0.113.7:4711`,
/// `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn forwarded_address(entry: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

/// Parses an id from a path segment; a malformed id names nothing, so it is a 404.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str, entity: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(entity))
}
