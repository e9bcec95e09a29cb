//! The store API: what buyers' front ends call. Handlers extract, call one use case and
//! map the result; no business rule lives here.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jangteo_core::catalog::Cursor;
use jangteo_core::ids::{CartId, LineId, OrderId, VariantId};
use jangteo_core::money::Currency;
use jangteo_core::service::carts::{CartUpdate, NewCart};
use jangteo_core::service::catalog::ProductSearch;
use jangteo_core::service::checkout::PaymentChoice;
use jangteo_core::service::orders::OrderAccess;
use jangteo_core::service::users::LoginAttempt;

use crate::dto::*;
use crate::extract::{parse_id, ApiJson, ApiQuery, Auth, ClientIp, Locale, OptionalJson};
use crate::problem::{ApiError, Problem};
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn cart_json(s: &AppState, cart: jangteo_core::cart::PricedCart) -> axum::Json<CartDto> {
    axum::Json(CartDto::render(cart, &s.engine))
}

fn currency_param(c: Option<&str>) -> ApiResult<Option<Currency>> {
    match c.filter(|s| !s.is_empty()) {
        Some(c) => c
            .parse()
            .map(Some)
            .map_err(|e: jangteo_core::CoreError| e.into()),
        None => Ok(None),
    }
}

/// Lists and searches published products. With `?country=`, only products that may be
/// sold into that country today (registrations in force, no banned ingredient, ...).
#[utoipa::path(get, path = "/store/products", tag = "catalog", params(ProductListQuery),
    responses((status = 200, body = ProductList<StoreProduct>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_products(
    State(s): State<AppState>,
    Locale(chain): Locale,
    uri: axum::http::Uri,
    ApiQuery(q): ApiQuery<ProductListQuery>,
) -> ApiResult<Response> {
    let currency = currency_param(q.currency.as_deref())?;
    let page = s.engine.search_products(&search_of(&q, None)).await?;
    // The engine hands back another page value whenever the country's rules, the day
    // or the catalog change; the key adds everything the rendering itself depends on:
    // the locale chain (`?locale=` and `Accept-Language`) and the whole query string
    // (`country`, `currency`, ...).
    let key = format!("{}|{}", chain.0.join(","), uri.query().unwrap_or(""));
    Ok(s.listings.respond(key, &page, |page| ProductList {
        products: page
            .products
            .iter()
            .map(|p| StoreProduct::render(p, &chain, currency, true))
            .collect(),
        next_cursor: page.next.as_ref().map(Cursor::encode),
    }))
}

/// The engine's search from a listing query; `drafts` is the admin API's status filter
/// (`Some`, even of `None`, lists drafts too).
pub(crate) fn search_of(q: &ProductListQuery, drafts: Option<ProductStatusQuery>) -> ProductSearch {
    ProductSearch {
        q: q.q.clone(),
        category: q.category.clone(),
        currency: q.currency.clone(),
        min_price: q.min_price.clone(),
        max_price: q.max_price.clone(),
        sort: q.sort.clone(),
        limit: q.limit,
        cursor: q.cursor.clone(),
        include_drafts: drafts.is_some(),
        status: drafts.and_then(|d| d.status),
        country: q.country.clone(),
    }
}

/// A published product by id or handle. With `?country=`, `country` says whether it may
/// be sold there today and which statements its page must show there.
#[utoipa::path(get, path = "/store/products/{id_or_handle}", tag = "catalog",
    params(("id_or_handle" = String, Path, description = "Product id or handle"), ProductDetailQuery),
    responses((status = 200, body = StoreProduct), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid_country, unsupported_currency")))]
pub(crate) async fn get_product(
    State(s): State<AppState>,
    Locale(chain): Locale,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ProductDetailQuery>,
) -> ApiResult<Response> {
    let currency = currency_param(q.currency.as_deref())?;
    let p = s.engine.product(&id, false).await?;
    if let Some(country) = q.country.as_deref().filter(|c| !c.trim().is_empty()) {
        // The country view depends on the day and the rules in force, not only on the
        // product value, so it is rendered per request, outside the byte cache.
        let view = s.engine.product_country_view(&p, country, &chain).await?;
        let mut dto = StoreProduct::render(&p, &chain, currency, false);
        dto.country = Some((&view).into());
        return Ok(axum::Json(dto).into_response());
    }
    let key = format!("{}|{id}|{currency:?}", chain.0.join(","));
    Ok(s.details.respond(key, &p, |p| {
        StoreProduct::render(p, &chain, currency, false)
    }))
}

/// Categories.
#[utoipa::path(get, path = "/store/categories", tag = "catalog", responses((status = 200, body = CategoryList)))]
pub(crate) async fn list_categories(
    State(s): State<AppState>,
    Locale(chain): Locale,
) -> ApiResult<axum::Json<CategoryList>> {
    let cats = s.engine.categories().await?;
    Ok(axum::Json(CategoryList {
        categories: cats
            .iter()
            .map(|c| StoreCategory::render(c, &chain))
            .collect(),
    }))
}

/// Creates a cart. With a bearer token the cart belongs to that buyer.
#[utoipa::path(post, path = "/store/carts", tag = "cart", request_body = CreateCartBody,
    responses((status = 201, body = CartDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn create_cart(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Locale(chain): Locale,
    ApiJson(b): ApiJson<CreateCartBody>,
) -> ApiResult<impl IntoResponse> {
    let who = auth.map(|a| a.0);
    // Without a `locale` in the body the cart speaks the caller's language
    // (`?locale=`, then `Accept-Language`, then the store's default).
    let locale = b.locale.or_else(|| chain.0.first().cloned());
    let cart = s
        .engine
        .create_cart(
            NewCart {
                country: b.country,
                currency: b.currency,
                locale,
            },
            who.as_ref(),
        )
        .await?;
    Ok((StatusCode::CREATED, cart_json(&s, cart)))
}

/// A cart with prices and totals.
#[utoipa::path(get, path = "/store/carts/{id}", tag = "cart", params(("id" = String, Path)),
    responses((status = 200, body = CartDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn get_cart(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<CartDto>> {
    let id: CartId = parse_id(&id, "cart")?;
    let who = auth.map(|a| a.0);
    Ok(cart_json(&s, s.engine.cart(id, who.as_ref()).await?))
}

/// Adds a variant (or raises its quantity).
#[utoipa::path(post, path = "/store/carts/{id}/line-items", tag = "cart", params(("id" = String, Path)), request_body = AddLineBody,
    responses((status = 200, body = CartDto), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn add_line(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AddLineBody>,
) -> ApiResult<axum::Json<CartDto>> {
    let id: CartId = parse_id(&id, "cart")?;
    let variant: VariantId = b.variant_id.parse().map_err(|_| {
        ApiError::from(jangteo_core::CoreError::invalid_field(
            "variant_id",
            "unknown_variant",
            "no such variant for sale",
        ))
    })?;
    let who = auth.map(|a| a.0);
    let cart = s
        .engine
        .add_line(id, variant, b.quantity, who.as_ref())
        .await?;
    Ok(cart_json(&s, cart))
}

/// Changes a line's quantity.
#[utoipa::path(patch, path = "/store/carts/{id}/line-items/{line_id}", tag = "cart",
    params(("id" = String, Path), ("line_id" = String, Path)), request_body = UpdateLineBody,
    responses((status = 200, body = CartDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn update_line(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path((id, line)): Path<(String, String)>,
    ApiJson(b): ApiJson<UpdateLineBody>,
) -> ApiResult<axum::Json<CartDto>> {
    let id: CartId = parse_id(&id, "cart")?;
    let line: LineId = parse_id(&line, "line item")?;
    let who = auth.map(|a| a.0);
    let cart = s
        .engine
        .update_line(id, line, b.quantity, who.as_ref())
        .await?;
    Ok(cart_json(&s, cart))
}

/// Removes a line.
#[utoipa::path(delete, path = "/store/carts/{id}/line-items/{line_id}", tag = "cart",
    params(("id" = String, Path), ("line_id" = String, Path)),
    responses((status = 200, body = CartDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn remove_line(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path((id, line)): Path<(String, String)>,
) -> ApiResult<axum::Json<CartDto>> {
    let id: CartId = parse_id(&id, "cart")?;
    let line: LineId = parse_id(&line, "line item")?;
    let who = auth.map(|a| a.0);
    let cart = s.engine.remove_line(id, line, who.as_ref()).await?;
    Ok(cart_json(&s, cart))
}

/// Sets e-mail, shipping address, locale or the buyer identifiers customs need
/// (`{"buyer_identifiers": {"kr_pccc": "P123456789012"}}`; `null` removes one). An
/// identifier is validated by the country plugin that defines its kind (422
/// `buyer_id_invalid` on field `buyer_identifiers.<kind>`, without echoing the value)
/// and is only ever shown masked.
#[utoipa::path(patch, path = "/store/carts/{id}", tag = "cart", params(("id" = String, Path)), request_body = UpdateCartBody,
    responses((status = 200, body = CartDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn update_cart(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateCartBody>,
) -> ApiResult<axum::Json<CartDto>> {
    let id: CartId = parse_id(&id, "cart")?;
    let who = auth.map(|a| a.0);
    let update = CartUpdate {
        email: b.email,
        shipping_address: b.shipping_address.map(Into::into),
        locale: b.locale,
        buyer_identifiers: b.buyer_identifiers,
    };
    let cart = s.engine.update_cart(id, update, who.as_ref()).await?;
    Ok(cart_json(&s, cart))
}

/// Completes the cart: reserves stock, places the order and collects payment. Send an
/// `Idempotency-Key` so that a retried request returns the same order.
#[utoipa::path(post, path = "/store/carts/{id}/complete", tag = "cart",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the first answer")),
    request_body(content = Option<CompleteBody>),
    responses((status = 201, body = OrderDto, description = "The order (paid, or pending with `next_action`)"),
              (status = 402, body = Problem, content_type = "application/problem+json", description = "payment_declined"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "out_of_stock, cart_completed, line_unavailable"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "validation_failed; compliance_violation with a `violations` array (nothing was placed)")),
    security((), ("bearer" = [])))]
pub(crate) async fn complete_cart(
    State(s): State<AppState>,
    auth: Option<Auth>,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(b): OptionalJson<CompleteBody>,
) -> ApiResult<impl IntoResponse> {
    let id: CartId = parse_id(&id, "cart")?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_idempotency_key",
                "Idempotency-Key must be visible ASCII",
            )
        })?),
        None => None,
    };
    let payment = b
        .payment
        .map(|p| PaymentChoice {
            provider: p.provider,
            data: p.data,
        })
        .unwrap_or_default();
    let who = auth.map(|a| a.0);
    let r = s
        .engine
        .complete_cart(id, key, payment, who.as_ref())
        .await?;
    let mut dto = OrderDto::from(&r.order);
    dto.order_token = r.guest_token;
    dto.next_action = r.next_action;
    let mut res = (StatusCode::CREATED, axum::Json(dto)).into_response();
    if r.replayed {
        res.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(res)
}

/// Registers a buyer account.
#[utoipa::path(post, path = "/store/auth/register", tag = "auth", request_body = CredentialsBody,
    responses((status = 201, body = UserDto), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn register(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<CredentialsBody>,
) -> ApiResult<impl IntoResponse> {
    let c = s.engine.register(&b.email, &b.password).await?;
    Ok((StatusCode::CREATED, axum::Json(UserDto::from(&c))))
}

pub(crate) async fn login_as(
    s: &AppState,
    b: CredentialsBody,
    ip: Option<String>,
    staff_only: bool,
) -> ApiResult<axum::Json<TokenResponse>> {
    let pair = s
        .engine
        .login(LoginAttempt {
            email: &b.email,
            password: &b.password,
            client_ip: ip.as_deref(),
            staff_only,
        })
        .await?;
    Ok(axum::Json(tokens(pair)))
}

/// Signs a buyer in.
#[utoipa::path(post, path = "/store/auth/login", tag = "auth", request_body = CredentialsBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<CredentialsBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    login_as(&s, b, ip, false).await
}

/// Trades a refresh token for a new pair (the old one stops working).
#[utoipa::path(post, path = "/store/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<RefreshBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    refresh_tokens(&s, &b.refresh_token).await
}

/// Signs this device out: the refresh token and its rotations stop working; other
/// devices stay signed in. Unknown tokens are fine (204 either way).
#[utoipa::path(post, path = "/store/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn logout(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    s.engine.logout(&b.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password (the current one is checked; wrong ones count against
/// the login limit). Every session is signed out; the answer is a fresh pair.
#[utoipa::path(post, path = "/store/auth/password", tag = "auth", request_body = PasswordChangeBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn change_password(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<PasswordChangeBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    password_changed(&s, &p, b).await
}

pub(crate) async fn password_changed(
    s: &AppState,
    who: &jangteo_core::auth::Principal,
    b: PasswordChangeBody,
) -> ApiResult<axum::Json<TokenResponse>> {
    let pair = s
        .engine
        .change_password(who, &b.current_password, &b.new_password)
        .await?;
    Ok(axum::Json(tokens(pair)))
}

pub(crate) async fn refresh_tokens(
    s: &AppState,
    token: &str,
) -> ApiResult<axum::Json<TokenResponse>> {
    Ok(axum::Json(tokens(s.engine.refresh(token).await?)))
}

fn tokens(pair: jangteo_core::service::users::TokenPair) -> TokenResponse {
    TokenResponse {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        token_type: "Bearer".into(),
        expires_in: pair.expires_in,
    }
}

/// The signed-in account.
#[utoipa::path(get, path = "/store/customers/me", tag = "auth",
    responses((status = 200, body = UserDto), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn me(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<axum::Json<UserDto>> {
    Ok(axum::Json(UserDto::from(&s.engine.me(&p).await?)))
}

/// The buyer's orders, newest first.
#[utoipa::path(get, path = "/store/orders", tag = "orders", params(BuyerOrderListQuery),
    responses((status = 200, body = OrderList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_orders(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<BuyerOrderListQuery>,
) -> ApiResult<axum::Json<OrderList>> {
    let limit = q.limit.unwrap_or(20);
    let before = order_cursor(q.cursor.as_deref())?;
    let orders = s.engine.customer_orders(&p, limit, before).await?;
    Ok(axum::Json(order_list(&orders)))
}

pub(crate) fn order_cursor(c: Option<&str>) -> ApiResult<Option<OrderId>> {
    match c.filter(|c| !c.is_empty()) {
        Some(c) => c.parse().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor is not valid",
            )
        }),
        None => Ok(None),
    }
}

pub(crate) fn order_list(page: &jangteo_core::service::orders::OrderPage) -> OrderList {
    OrderList {
        orders: page.orders.iter().map(OrderDto::from).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }
}

fn access<'a>(auth: &'a Option<Auth>, headers: &'a HeaderMap) -> ApiResult<OrderAccess<'a>> {
    if let Some(Auth(p)) = auth {
        return Ok(OrderAccess::Customer(p));
    }
    match headers.get("x-order-token").and_then(|v| v.to_str().ok()) {
        Some(t) => Ok(OrderAccess::GuestToken(t)),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send the guest order token in X-Order-Token",
        )),
    }
}

/// One order of the buyer (bearer token), or of a guest (`X-Order-Token`).
#[utoipa::path(get, path = "/store/orders/{id}", tag = "orders",
    params(("id" = String, Path), ("X-Order-Token" = Option<String>, Header, description = "Guest order token")),
    responses((status = 200, body = OrderDto),
              (status = 401, description = "neither a bearer token nor X-Order-Token", body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn get_order(
    State(s): State<AppState>,
    auth: Option<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderDto>> {
    let id: OrderId = parse_id(&id, "order")?;
    let o = s
        .engine
        .customer_order(id, access(&auth, &headers)?)
        .await?;
    Ok(axum::Json(OrderDto::from(&o)))
}

/// Cancels an order that is not yet fulfilled; the payment is refunded and the stock
/// returns.
#[utoipa::path(post, path = "/store/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path), ("X-Order-Token" = Option<String>, Header, description = "Guest order token")),
    request_body(content = Option<CancelBody>),
    responses((status = 200, body = OrderDto), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub(crate) async fn cancel_order(
    State(s): State<AppState>,
    auth: Option<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CancelBody>,
) -> ApiResult<axum::Json<OrderDto>> {
    let id: OrderId = parse_id(&id, "order")?;
    let reason = parse_cancel(body)?;
    let o = s
        .engine
        .cancel_by_customer(id, access(&auth, &headers)?, reason)
        .await?;
    Ok(axum::Json(OrderDto::from(&o)))
}

/// A cancel or refund reason, checked.
pub(crate) fn parse_cancel(b: CancelBody) -> ApiResult<Option<String>> {
    if b.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(jangteo_core::CoreError::invalid_field(
            "reason",
            "too_long",
            "at most 500 characters",
        )
        .into());
    }
    Ok(b.reason)
}

/// A payment provider's webhook. The provider plugin verifies it (signature, shared
/// secret, or a call back to the provider) before anything changes.
#[utoipa::path(post, path = "/store/payments/{provider}/webhook", tag = "payments",
    params(("provider" = String, Path)),
    responses((status = 204, description = "Accepted"), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "unknown provider, or an order the provider names that does not exist", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn payment_webhook(
    State(s): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let h: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    s.engine
        .handle_payment_webhook(&provider, &h, &body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
