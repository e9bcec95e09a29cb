//! The admin API: operators manage the catalog, orders, country rules and exchange
//! rates, admins manage staff. Every route needs an operator or admin token; writes are
//! audit-logged by the use cases.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use jangteo_core::catalog::{Category, Cursor, ProductInput, VariantInput};
use jangteo_core::compliance::ExchangeRates;
use jangteo_core::customer::Role;
use jangteo_core::ids::{OrderId, ProductId, VariantId};
use jangteo_core::locale::LocalizedText;
use jangteo_core::money::Currency;
use jangteo_core::order::OrderStatus;
use jangteo_core::service::orders::FulfillInput;
use jangteo_core::service::users::StaffUpdate;

use crate::dto::*;
use crate::extract::{parse_id, AdminOnly, ApiJson, ApiQuery, ClientIp, OptionalJson, Staff};
use crate::problem::{ApiError, Problem};
use crate::store::{login_as, order_cursor, order_list, parse_cancel, search_of};
use crate::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Signs an operator or admin in.
#[utoipa::path(post, path = "/admin/auth/login", tag = "auth", request_body = CredentialsBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<CredentialsBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    login_as(&s, b, ip, true).await
}

/// Trades a refresh token for a new pair (the old one stops working).
#[utoipa::path(post, path = "/admin/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<RefreshBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    crate::store::refresh_tokens(&s, &b.refresh_token).await
}

/// Signs this device out (the refresh token and its rotations stop working).
#[utoipa::path(post, path = "/admin/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn logout(
    state: State<AppState>,
    body: ApiJson<RefreshBody>,
) -> ApiResult<StatusCode> {
    crate::store::logout(state, body).await
}

/// Changes the caller's own password; every session is signed out, the answer is a
/// fresh pair. Audited as `user.password`.
#[utoipa::path(post, path = "/admin/auth/password", tag = "auth", request_body = PasswordChangeBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn change_password(
    State(s): State<AppState>,
    Staff(p): Staff,
    ApiJson(b): ApiJson<PasswordChangeBody>,
) -> ApiResult<axum::Json<TokenResponse>> {
    crate::store::password_changed(&s, &p, b).await
}

/// Lists products, drafts included.
#[utoipa::path(get, path = "/admin/products", tag = "catalog", params(ProductListQuery, ProductStatusQuery),
    responses((status = 200, body = ProductList<AdminProduct>), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_products(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<ProductListQuery>,
    ApiQuery(status): ApiQuery<ProductStatusQuery>,
) -> ApiResult<axum::Json<ProductList<AdminProduct>>> {
    let page = s
        .engine
        .search_products(&search_of(&q, Some(status)))
        .await?;
    Ok(axum::Json(ProductList {
        products: page.products.iter().map(AdminProduct::from).collect(),
        next_cursor: page.next.as_ref().map(Cursor::encode),
    }))
}

/// Creates a product.
#[utoipa::path(post, path = "/admin/products", tag = "catalog", request_body = NewProductBody,
    responses((status = 201, body = AdminProduct), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create_product(
    State(s): State<AppState>,
    Staff(p): Staff,
    ApiJson(b): ApiJson<ProductInput>,
) -> ApiResult<impl IntoResponse> {
    let product = s.engine.create_product(&p, b).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AdminProduct::from(&product)),
    ))
}

fn product_id(id: &str) -> ApiResult<ProductId> {
    parse_id(id, "product")
}

/// A product, drafts included.
#[utoipa::path(get, path = "/admin/products/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, body = AdminProduct), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_product(
    State(s): State<AppState>,
    _s: Staff,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AdminProduct>> {
    let p = s.engine.product(&id, true).await?;
    Ok(axum::Json(AdminProduct::from(p.as_ref())))
}

/// Changes a product; the body is any subset of the create body.
#[utoipa::path(patch, path = "/admin/products/{id}", tag = "catalog", params(("id" = String, Path)), request_body = ProductPatchBody,
    responses((status = 200, body = AdminProduct), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn update_product(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ProductInput>,
) -> ApiResult<axum::Json<AdminProduct>> {
    let product = s.engine.update_product(&p, product_id(&id)?, b).await?;
    Ok(axum::Json(AdminProduct::from(&product)))
}

/// Deletes a product.
#[utoipa::path(delete, path = "/admin/products/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn delete_product(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_product(&p, product_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes one variant: `{"stock": 10}`, new prices, options or SKU.
#[utoipa::path(patch, path = "/admin/products/{id}/variants/{variant_id}", tag = "catalog",
    params(("id" = String, Path), ("variant_id" = String, Path)), request_body = VariantBody,
    responses((status = 200, body = AdminProduct), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn update_variant(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path((id, vid)): Path<(String, String)>,
    ApiJson(b): ApiJson<VariantInput>,
) -> ApiResult<axum::Json<AdminProduct>> {
    let vid: VariantId = parse_id(&vid, "variant")?;
    let product = s
        .engine
        .update_variant(&p, product_id(&id)?, vid, b)
        .await?;
    Ok(axum::Json(AdminProduct::from(&product)))
}

/// Categories with every locale.
#[utoipa::path(get, path = "/admin/categories", tag = "catalog",
    responses((status = 200, body = Vec<AdminCategory>)), security(("bearer" = [])))]
pub(crate) async fn list_categories(
    State(s): State<AppState>,
    _s: Staff,
) -> ApiResult<axum::Json<Vec<AdminCategory>>> {
    let cats = s.engine.categories().await?;
    Ok(axum::Json(
        cats.into_iter()
            .map(|c| AdminCategory {
                handle: c.handle,
                name: c.name.0,
            })
            .collect(),
    ))
}

/// Creates or renames a category.
#[utoipa::path(post, path = "/admin/categories", tag = "catalog", request_body = CategoryBody,
    responses((status = 200, body = AdminCategory), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn upsert_category(
    State(s): State<AppState>,
    Staff(p): Staff,
    ApiJson(b): ApiJson<CategoryBody>,
) -> ApiResult<axum::Json<AdminCategory>> {
    let c = s
        .engine
        .upsert_category(
            &p,
            Category {
                handle: b.handle,
                name: LocalizedText(b.name),
            },
        )
        .await?;
    Ok(axum::Json(AdminCategory {
        handle: c.handle,
        name: c.name.0,
    }))
}

/// Orders, newest first, optionally by status.
#[utoipa::path(get, path = "/admin/orders", tag = "orders", params(OrderListQuery),
    responses((status = 200, body = OrderList), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_orders(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<OrderListQuery>,
) -> ApiResult<axum::Json<OrderList>> {
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(OrderStatus::parse)
        .transpose()?;
    let limit = q.limit.unwrap_or(20);
    let orders = s
        .engine
        .admin_orders(status, limit, order_cursor(q.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(order_list(&orders)))
}

fn order_id(id: &str) -> ApiResult<OrderId> {
    parse_id(id, "order")
}

/// One order.
#[utoipa::path(get, path = "/admin/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_order(
    State(s): State<AppState>,
    _s: Staff,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderDto>> {
    Ok(axum::Json(OrderDto::from(
        &s.engine.order_by_id(order_id(&id)?).await?,
    )))
}

/// Hands a paid order to a carrier.
#[utoipa::path(post, path = "/admin/orders/{id}/fulfill", tag = "orders", params(("id" = String, Path)), request_body = FulfillBody,
    responses((status = 200, body = OrderDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn fulfill_order(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FulfillBody>,
) -> ApiResult<axum::Json<OrderDto>> {
    let o = s
        .engine
        .fulfill_order(
            &p,
            order_id(&id)?,
            FulfillInput {
                carrier: b.carrier,
                tracking_number: b.tracking_number,
            },
        )
        .await?;
    Ok(axum::Json(OrderDto::from(&o)))
}

/// Records delivery of a fulfilled order.
#[utoipa::path(post, path = "/admin/orders/{id}/deliver", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn deliver_order(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderDto>> {
    Ok(axum::Json(OrderDto::from(
        &s.engine.mark_delivered(&p, order_id(&id)?).await?,
    )))
}

/// Cancels a pending or paid order (refund and restock).
#[utoipa::path(post, path = "/admin/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)), request_body(content = Option<CancelBody>),
    responses((status = 200, body = OrderDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn cancel_order(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CancelBody>,
) -> ApiResult<axum::Json<OrderDto>> {
    let reason = parse_cancel(body)?;
    Ok(axum::Json(OrderDto::from(
        &s.engine.cancel_by_staff(&p, order_id(&id)?, reason).await?,
    )))
}

/// Confirms a pending `manual` payment (a bank transfer checked by hand, cash on
/// delivery). Payments of real providers are confirmed by their webhooks only.
#[utoipa::path(post, path = "/admin/orders/{id}/confirm-payment", tag = "orders", params(("id" = String, Path)),
    request_body(content = Option<ConfirmPaymentBody>),
    responses((status = 200, body = OrderDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn confirm_payment(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<ConfirmPaymentBody>,
) -> ApiResult<axum::Json<OrderDto>> {
    let o = s
        .engine
        .confirm_manual_payment(&p, order_id(&id)?, b.reference)
        .await?;
    Ok(axum::Json(OrderDto::from(&o)))
}

/// Refunds a fulfilled or delivered order (a return).
#[utoipa::path(post, path = "/admin/orders/{id}/refund", tag = "orders", params(("id" = String, Path)), request_body(content = Option<CancelBody>),
    responses((status = 200, body = OrderDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn refund_order(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CancelBody>,
) -> ApiResult<axum::Json<OrderDto>> {
    let reason = parse_cancel(body)?;
    Ok(axum::Json(OrderDto::from(
        &s.engine.refund_order(&p, order_id(&id)?, reason).await?,
    )))
}

/// Staff users (admin only).
#[utoipa::path(get, path = "/admin/users", tag = "users",
    responses((status = 200, body = UserList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn list_users(
    State(s): State<AppState>,
    AdminOnly(p): AdminOnly,
) -> ApiResult<axum::Json<UserList>> {
    let users = s.engine.staff_users(&p).await?;
    Ok(axum::Json(UserList {
        users: users.iter().map(UserDto::from).collect(),
    }))
}

/// Creates an operator or admin (admin only).
#[utoipa::path(post, path = "/admin/users", tag = "users", request_body = CreateUserBody,
    responses((status = 201, body = UserDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn create_user(
    State(s): State<AppState>,
    AdminOnly(p): AdminOnly,
    ApiJson(b): ApiJson<CreateUserBody>,
) -> ApiResult<impl IntoResponse> {
    let role = Role::parse(&b.role)?;
    let u = s
        .engine
        .create_staff(&p, &b.email, &b.password, role)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserDto::from(&u))))
}

/// Changes a staff account: role, password, or disabled (admin only). Disabling (an
/// employee leaves) or a new password signs the account out at once; the last enabled
/// admin cannot be demoted or disabled (`409 last_admin`).
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUserBody,
    responses((status = 200, body = UserDto), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn update_user(
    State(s): State<AppState>,
    AdminOnly(p): AdminOnly,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateUserBody>,
) -> ApiResult<axum::Json<UserDto>> {
    let change = StaffUpdate {
        role: b.role.as_deref().map(Role::parse).transpose()?,
        disabled: b.disabled,
        password: b.password,
    };
    let u = s
        .engine
        .update_staff(&p, parse_id(&id, "user")?, change)
        .await?;
    Ok(axum::Json(UserDto::from(&u)))
}

/// Every admin write, newest first.
#[utoipa::path(get, path = "/admin/audit-log", tag = "users", params(AuditQuery),
    responses((status = 200, body = AuditList)), security(("bearer" = [])))]
pub(crate) async fn audit_log(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<axum::Json<AuditList>> {
    let limit = q.limit.unwrap_or(50);
    let entries = s.engine.audit_log(limit, q.before).await?;
    let next = (entries.len() as u32 >= limit.clamp(1, 500))
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(axum::Json(AuditList {
        entries: entries
            .into_iter()
            .map(|e| AuditDto {
                id: e.id,
                at: e.at,
                actor_email: e.actor_email,
                actor_id: e.actor_id.map(|a| a.to_string()),
                action: e.action,
                target_type: e.target_type,
                target_id: e.target_id,
                details: e.details,
            })
            .collect(),
        next_before: next,
    }))
}

/// Daily sales per destination country and product (from the sales-statistics
/// consumer; net of refunds).
#[utoipa::path(get, path = "/admin/stats/sales", tag = "reports", params(SalesQuery),
    responses((status = 200, body = SalesReport),
              (status = 400, description = "invalid_query: a date is missing or malformed", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 422, description = "Bad range", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn sales_report(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<SalesQuery>,
) -> ApiResult<axum::Json<SalesReport>> {
    let rows = s.engine.sales_report(q.from, q.to).await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            // A day's sum may pass the largest amount one order can have (`Money`'s
            // range): formatted from the minor units as they are.
            let currency = r.currency.parse::<Currency>()?;
            let revenue = crate::dto::MoneyDto {
                amount: rust_decimal::Decimal::new(r.revenue_minor, currency.exponent())
                    .to_string(),
                currency: currency.code().to_string(),
            };
            Ok(SalesRowDto {
                day: r.day,
                country: r.country,
                product_id: r.product_id.to_string(),
                orders: r.orders,
                units: r.units,
                revenue,
            })
        })
        .collect::<Result<Vec<_>, jangteo_core::CoreError>>()?;
    Ok(axum::Json(SalesReport { rows }))
}

/// Buyer notifications the default notifier recorded, newest first.
#[utoipa::path(get, path = "/admin/notifications", tag = "reports", params(AuditQuery),
    responses((status = 200, body = NotificationList)))]
pub(crate) async fn notifications(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<axum::Json<NotificationList>> {
    let limit = q.limit.unwrap_or(50);
    let list = s.engine.notifications(limit, q.before).await?;
    let next = (list.len() as u32 >= limit.clamp(1, 500))
        .then(|| list.last().map(|n| n.id))
        .flatten();
    Ok(axum::Json(NotificationList {
        notifications: list
            .into_iter()
            .map(|n| NotificationDto {
                id: n.id,
                event_id: n.event_id.to_string(),
                channel: n.channel,
                recipient: n.recipient,
                locale: n.locale,
                template: n.template,
                subject: n.subject,
                body: n.body,
                created_at: n.created_at,
            })
            .collect(),
        next_before: next,
    }))
}

/// `ETag` of a versioned document: its version, quoted.
fn etag(version: i64) -> [(header::HeaderName, HeaderValue); 1] {
    let v = HeaderValue::from_str(&format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    [(header::ETAG, v)]
}

/// The version a replacing PUT expects to replace (`If-Match: "3"`): `None` for `*`
/// (replace whatever is stored). Required: a whole-document PUT without it would
/// silently undo another operator's change made since this one read the document.
/// An extractor placed before the body, so a missing header is reported first.
pub(crate) struct IfMatch(Option<i64>);

impl axum::extract::FromRequestParts<AppState> for IfMatch {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, ApiError> {
        if_match(&parts.headers).map(IfMatch)
    }
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the quoted version from the ETag you read, or * to replace whatever is stored",
        ));
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_if_match",
            "If-Match must be the quoted version from the ETag, e.g. \"3\"",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s == "*" {
        return Ok(None);
    }
    // Only the strong, quoted form the ETag has: a weak tag (`W/"3"`) never matches
    // under If-Match's strong comparison, and an unquoted `3` is not an entity tag.
    let inner = s.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
    match inner.map(str::parse::<i64>) {
        Some(Ok(v)) if v >= 0 => Ok(Some(v)),
        _ => Err(bad()),
    }
}

/// A country code from the path, in either case.
fn country_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Countries the store has a plugin for, with the version of their rules in force.
#[utoipa::path(get, path = "/admin/countries", tag = "compliance",
    responses((status = 200, body = CountryList)), security(("bearer" = [])))]
pub(crate) async fn list_countries(
    State(s): State<AppState>,
    _s: Staff,
) -> ApiResult<axum::Json<CountryList>> {
    let list = s.engine.countries().await?;
    Ok(axum::Json(CountryList {
        countries: list
            .into_iter()
            .map(|(code, version)| CountryDto { code, version })
            .collect(),
    }))
}

/// A country's rules in force (the plugin's defaults until an operator stores a
/// version). The `ETag` is the version.
#[utoipa::path(get, path = "/admin/countries/{code}/rules", tag = "compliance",
    params(("code" = String, Path, description = "ISO 3166-1 alpha-2 code, either case")),
    responses((status = 200, body = CountryRulesDto, headers(("ETag" = String, description = "The version, quoted"))),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn get_country_rules(
    State(s): State<AppState>,
    _s: Staff,
    Path(code): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let view = s.engine.country_rules(&country_code(&code)).await?;
    Ok((etag(view.version), axum::Json(CountryRulesDto::from(view))))
}

/// Replaces a country's rules with a new version, in force at once on every instance
/// within the refresh period. Send `If-Match: "<version>"` from the `ETag` you edited:
/// if another version was stored meanwhile the answer is 409 `version_conflict`.
/// Unknown fields, overlapping periods, bad patterns or rates: 422 with field errors.
#[utoipa::path(put, path = "/admin/countries/{code}/rules", tag = "compliance",
    params(("code" = String, Path, description = "ISO 3166-1 alpha-2 code, either case"),
           ("If-Match" = String, Header, description = "The version being replaced, quoted (`\"3\"`), or `*` for any")),
    request_body = CountryRulesDoc,
    responses((status = 200, body = CountryRulesDto, headers(("ETag" = String, description = "The new version, quoted"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "version_conflict"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "if_match_required"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn put_country_rules(
    State(s): State<AppState>,
    Staff(p): Staff,
    Path(code): Path<String>,
    IfMatch(expected): IfMatch,
    ApiJson(doc): ApiJson<serde_json::Value>,
) -> ApiResult<impl IntoResponse> {
    let view = s
        .engine
        .put_country_rules(&p, &country_code(&code), doc, expected)
        .await?;
    Ok((etag(view.version), axum::Json(CountryRulesDto::from(view))))
}

/// Stored versions of a country's rules, newest first.
#[utoipa::path(get, path = "/admin/countries/{code}/rules/history", tag = "compliance",
    params(("code" = String, Path, description = "ISO 3166-1 alpha-2 code, either case"), HistoryQuery),
    responses((status = 200, body = CountryRulesHistory),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "limit out of range", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn country_rules_history(
    State(s): State<AppState>,
    _s: Staff,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<axum::Json<CountryRulesHistory>> {
    let code = country_code(&code);
    let docs = s
        .engine
        .country_rules_history(&code, q.limit.unwrap_or(10))
        .await?;
    Ok(axum::Json(CountryRulesHistory {
        versions: docs
            .into_iter()
            .map(|d| CountryRulesDto {
                country: d.key,
                version: d.version,
                updated_by: d.actor_email,
                updated_at: Some(d.created_at),
                rules: d.doc,
            })
            .collect(),
    }))
}

/// The newest stored exchange-rate table (the `ETag` is its version) and which version
/// is in force today (`in_force_version`; earlier while the newest waits for its
/// `valid_from`).
#[utoipa::path(get, path = "/admin/exchange-rates", tag = "compliance",
    responses((status = 200, body = ExchangeRatesDto, headers(("ETag" = String, description = "The version, quoted")))),
    security(("bearer" = [])))]
pub(crate) async fn get_exchange_rates(
    State(s): State<AppState>,
    _s: Staff,
) -> ApiResult<impl IntoResponse> {
    let view = s.engine.exchange_rates().await?;
    Ok((etag(view.version), axum::Json(ExchangeRatesDto::from(view))))
}

/// Stored exchange-rate tables, newest version first: which rates were in force when.
#[utoipa::path(get, path = "/admin/exchange-rates/history", tag = "compliance", params(HistoryQuery),
    responses((status = 200, body = ExchangeRatesHistory),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn exchange_rates_history(
    State(s): State<AppState>,
    _s: Staff,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<axum::Json<ExchangeRatesHistory>> {
    let docs = s
        .engine
        .exchange_rates_history(q.limit.unwrap_or(10))
        .await?;
    let versions = docs
        .into_iter()
        .map(|d| {
            let rates: ExchangeRates = serde_json::from_value(d.doc).map_err(|e| {
                ApiError::from(jangteo_core::CoreError::Internal(format!(
                    "stored rates unreadable: {e}"
                )))
            })?;
            Ok(ExchangeRatesDto {
                version: d.version,
                updated_by: d.actor_email,
                updated_at: Some(d.created_at),
                rates: (&rates).into(),
                in_force_version: None,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(axum::Json(ExchangeRatesHistory { versions }))
}

/// Replaces the exchange-rate table: it converts prices a variant lacks in a cart's
/// currency, and limits and duty bands set in other currencies. `If-Match` as for
/// country rules.
#[utoipa::path(put, path = "/admin/exchange-rates", tag = "compliance",
    params(("If-Match" = String, Header, description = "The version being replaced, quoted (`\"3\"`), or `*` for any")),
    request_body = ExchangeRatesBody,
    responses((status = 200, body = ExchangeRatesDto, headers(("ETag" = String, description = "The new version, quoted"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "version_conflict"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "if_match_required"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn put_exchange_rates(
    State(s): State<AppState>,
    Staff(p): Staff,
    IfMatch(expected): IfMatch,
    ApiJson(rates): ApiJson<ExchangeRates>,
) -> ApiResult<impl IntoResponse> {
    let view = s.engine.put_exchange_rates(&p, rates, expected).await?;
    Ok((etag(view.version), axum::Json(ExchangeRatesDto::from(view))))
}
