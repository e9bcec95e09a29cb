//! End-to-end tests of the store and admin APIs through the real routers, on SQLite.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::NaiveDate;
use http_body_util::BodyExt;
use jangteo_core::clock::{Clock, ManualClock, SystemClock};
use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};
use jangteo_core::money::{Currency, Money};
use jangteo_core::payment::{
    NextAction, PaymentOutcome, PaymentProvider, PaymentRegistry, PaymentRequest, RefundRequest,
    WebhookEvent,
};
use jangteo_core::{CoreError, CoreResult};
use jangteo_core::{Engine, EngineBuilder};
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: (&str, &str) = ("admin@shop.kr", "admin-password-1");

struct App {
    engine: Engine,
    store: Router,
    admin: Router,
}

struct Res {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

/// Rules of a fictional destination, `AQ`: a registration with a number pattern, two
/// page statements, a per-product import limit of 3 units, a buyer identifier and one
/// duty band for the landed-cost estimate. No sales tax.
const AQ_RULES: &str = r#"{
    "country": "AQ",
    "served": [{"valid_from": "2020-01-01", "source": "test"}],
    "registration": [{"valid_from": "2020-01-01", "source": "test", "authority": "AQFDA",
                      "pattern": "^AQR-[0-9]{6}$", "example": "AQR-123456"}],
    "label_statements": [
        {"valid_from": "2020-01-01", "source": "test", "key": "import_notice", "when": "always", "emphasis": true,
         "text": {"en": "Registered with AQFDA as {registration}.", "ko": "AQFDA 등록번호 {registration}."}},
        {"valid_from": "2020-01-01", "source": "test", "key": "claim_disclaimer", "when": "one_claim",
         "text": {"en": "This claim has not been evaluated.", "ko": "이 표시는 평가되지 않았습니다."}}
    ],
    "import": {
        "quantity_limits": [{"valid_from": "2020-01-01", "source": "test", "scope": "per_product", "max": 3}],
        "buyer_identifiers": [{"valid_from": "2020-01-01", "source": "test", "any_of": ["aq_station"]}],
        "duties": [{"valid_from": "2020-01-01", "source": "test", "duty_rate": "0.10", "import_tax_rate": "0.05",
                    "label": {"en": "AQ parcel duty 10 % + 5 % import tax", "ko": "AQ 소포 관세 10 % + 수입세 5 %"}}]
    }
}"#;

/// The test country plugin: rules from [`AQ_RULES`] and a station code `AQ` + 7 digits.
#[derive(Debug)]
struct Antarctica;

impl CountryCompliance for Antarctica {
    fn country(&self) -> &'static str {
        "AQ"
    }
    fn default_rules(&self) -> CountryRules {
        serde_json::from_str(AQ_RULES).unwrap()
    }
    fn identifier_kinds(&self) -> &'static [&'static str] {
        &["aq_station"]
    }
    fn validate_identifier(
        &self,
        kind: &str,
        value: &str,
        _day: NaiveDate,
    ) -> Result<String, String> {
        let v = value.trim().to_ascii_uppercase();
        match kind {
            "aq_station"
                if v.len() == 9
                    && v.starts_with("AQ")
                    && v[2..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(v)
            }
            "aq_station" => Err("AQ followed by 7 digits".into()),
            _ => Err(format!("{kind} is not an identifier of AQ")),
        }
    }
}

impl TaxPolicy for Antarctica {}

async fn app_with_clock(clock: Arc<dyn Clock>) -> App {
    build_app(clock, false, None).await
}

/// An app with one more payment provider installed.
async fn app_with_provider(extra: Arc<dyn PaymentProvider>) -> App {
    build_app(Arc::new(SystemClock), false, Some(extra)).await
}

/// An app whose engine has the `AQ` country plugin.
async fn compliance_app() -> App {
    build_app(Arc::new(SystemClock), true, None).await
}

/// A provider that confirms later by webhook, as Xendit's callbacks do: a shared token
/// in a header proves the sender, and a JSON body names the order and what happened.
/// Its payments stay pending until then (a QR code to scan).
#[derive(Debug)]
struct CallbackProvider;

const CALLBACK_TOKEN: &str = "callback-verification-token";

/// Titles of the provider's own error code, as a plugin crate ships them.
const CALLBACK_MESSAGES: &[(&str, &str)] = &[
    (
        "en",
        "error-malformed_webhook = The payment callback could not be read.\n",
    ),
    (
        "ko",
        "error-malformed_webhook = 결제 콜백을 읽을 수 없습니다.\n",
    ),
];

#[async_trait::async_trait]
impl PaymentProvider for CallbackProvider {
    fn name(&self) -> &str {
        "callback"
    }
    async fn authorize(&self, req: &PaymentRequest) -> CoreResult<PaymentOutcome> {
        Ok(PaymentOutcome::Pending {
            reference: format!("qr_{}", req.order_id),
            expires_at: None,
            next_action: Some(NextAction::Qr {
                qr_string: req.order_number.clone(),
            }),
        })
    }
    async fn refund(&self, req: &RefundRequest) -> CoreResult<String> {
        Ok(format!("qr_refund_{}", req.order_id))
    }
    async fn verify_webhook(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> CoreResult<WebhookEvent> {
        if headers.get("x-callback-token").map(String::as_str) != Some(CALLBACK_TOKEN) {
            return Err(CoreError::Unauthorized("invalid callback token".into()));
        }
        let malformed = |what: &str| CoreError::invalid("malformed_webhook", what.to_string());
        let v: Value = serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
        let order_id = v["external_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("external_id"))?;
        Ok(match v["status"].as_str() {
            Some("PAID") => WebhookEvent::Paid {
                order_id,
                reference: v["id"].as_str().ok_or_else(|| malformed("id"))?.into(),
                amount: Money::from_minor(
                    v["amount"].as_i64().ok_or_else(|| malformed("amount"))?,
                    Currency::KRW,
                )?,
            },
            Some("EXPIRED") => WebhookEvent::Failed {
                order_id,
                reason: "the QR code expired".into(),
            },
            _ => WebhookEvent::Ignored,
        })
    }
}

async fn build_app(
    clock: Arc<dyn Clock>,
    with_country: bool,
    extra: Option<Arc<dyn PaymentProvider>>,
) -> App {
    let dir = std::env::temp_dir().join(format!("jangteo-http-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = jangteo_sql::open(&url, &Default::default()).await.unwrap();
    let mut payments = PaymentRegistry::new()
        .register(jangteo_payment_manual::ManualConfig::default().build())
        .register(Arc::new(CallbackProvider));
    if let Some(p) = extra {
        payments = payments.register(p);
    }
    let mut builder = EngineBuilder::new(store, vec![42u8; 32])
        .payments(payments)
        .error_messages(CALLBACK_MESSAGES)
        .clock(clock);
    if with_country {
        builder = builder.country(Arc::new(Antarctica));
    }
    let engine = builder.build().unwrap();
    engine.bootstrap_admin(ADMIN.0, ADMIN.1).await.unwrap();
    let settings = jangteo_http::HttpSettings::default();
    App {
        store: jangteo_http::store_router(engine.clone(), &settings),
        admin: jangteo_http::admin_router(engine.clone(), &settings),
        engine,
    }
}

async fn app() -> App {
    app_with_clock(Arc::new(SystemClock)).await
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Res {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let req = match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    raw(router, req).await
}

async fn raw(router: &Router, req: Request<Body>) -> Res {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 from the API: {body}"
    );
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{status}: {body}"
        );
        assert!(body["code"].is_string(), "problem without code: {body}");
        assert_eq!(body["status"], status.as_u16());
    }
    Res {
        status,
        headers,
        body,
    }
}

impl App {
    async fn get(&self, uri: &str, token: Option<&str>) -> Res {
        send(&self.store, Method::GET, uri, token, None, &[]).await
    }
    async fn post(&self, uri: &str, token: Option<&str>, body: Value) -> Res {
        send(&self.store, Method::POST, uri, token, Some(body), &[]).await
    }
    async fn patch(&self, uri: &str, token: Option<&str>, body: Value) -> Res {
        send(&self.store, Method::PATCH, uri, token, Some(body), &[]).await
    }
    async fn admin_token(&self) -> String {
        let r = staff_login(self, ADMIN.0, ADMIN.1).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
    async fn admin(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Res {
        send(&self.admin, method, uri, Some(token), body, &[]).await
    }
    /// A new staff user (the user as answered).
    async fn create_staff(&self, admin: &str, email: &str, password: &str, role: &str) -> Value {
        let body = json!({"email": email, "password": password, "role": role});
        let r = self
            .admin(Method::POST, "/admin/users", admin, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
    /// A published product registered in `AQ` under `number` until `expires_on`.
    async fn aq_product(
        &self,
        admin: &str,
        handle: &str,
        number: &str,
        expires_on: NaiveDate,
    ) -> (String, String) {
        let body = json!({
            "handle": handle, "status": "published",
            "title": {"ko": "극지 비타민 D", "en": "Polar Vitamin D"},
            "categories": ["vitamins"],
            "ingredients": [{"name": "vitamin D3", "amount": "25", "unit": "mcg"}],
            "claims": {"en": ["Supports bone health"], "ko": ["뼈 건강에 도움"]},
            "countries": {"AQ": {
                "registration": {"number": number, "holder": "Polar Imports Ltd", "expires_on": expires_on},
                "label_statements": {"en": ["Keep frozen."], "ko": ["냉동 보관하세요."]}
            }},
            "variants": [{"sku": handle.to_uppercase(), "prices": [{"amount": "39000", "currency": "KRW"}, {"amount": "29.90", "currency": "USD"}], "stock": 10}]
        });
        let r = self
            .admin(Method::POST, "/admin/products", admin, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().into(),
            r.body["variants"][0]["id"].as_str().unwrap().into(),
        )
    }
    /// PUT with `If-Match: *`: replaces whatever version is stored.
    async fn put_any(&self, uri: &str, token: &str, body: Value) -> Res {
        let any = [("if-match", "*")];
        send(&self.admin, Method::PUT, uri, Some(token), Some(body), &any).await
    }
    /// Replaces `AQ`'s rules, which must be accepted.
    async fn put_aq_rules(&self, admin: &str, rules: Value) {
        let r = self
            .put_any("/admin/countries/AQ/rules", admin, rules)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    /// A product registered in `AQ` as `number`, the registration valid for a year.
    async fn aq_registered(&self, admin: &str, handle: &str, number: &str) -> (String, String) {
        let until = self.engine.today() + chrono::Duration::days(365);
        self.aq_product(admin, handle, number, until).await
    }
    async fn handles(&self, uri: &str) -> Vec<String> {
        let r = self.get(uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        r.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["handle"].as_str().unwrap().to_string())
            .collect()
    }
    async fn audit_actions(&self, token: &str) -> Vec<Value> {
        let r = self
            .admin(Method::GET, "/admin/audit-log?limit=100", token, None)
            .await;
        r.body["entries"].as_array().unwrap().clone()
    }
    async fn buyer(&self, email: &str) -> String {
        let r = self
            .post(
                "/store/auth/register",
                None,
                json!({"email": email, "password": "buyer-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = self
            .post(
                "/store/auth/login",
                None,
                json!({"email": email, "password": "buyer-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
    /// Creates a published product; returns (product id, variant id).
    async fn product(&self, admin: &str, handle: &str, stock: i64) -> (String, String) {
        let body = json!({
            "handle": handle, "status": "published",
            "title": {"ko": "한빛 홍삼정 스틱", "en": "Hanbit Red Ginseng Stick", "id": "Stik Ginseng Merah Hanbit"},
            "description": {"ko": "6년근 홍삼", "en": "Six-year red ginseng", "id": "Ginseng merah enam tahun"},
            "categories": ["ginseng"],
            "variants": [{"sku": format!("{handle}-30").to_uppercase(), "options": {"size": "30"},
                          "prices": [{"amount": "39000", "currency": "KRW"}, {"amount": "29.90", "currency": "USD"}], "stock": stock}]
        });
        let r = self
            .admin(Method::POST, "/admin/products", admin, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().into(),
            r.body["variants"][0]["id"].as_str().unwrap().into(),
        )
    }
    /// A new empty cart made from `body`; returns its id.
    async fn new_cart(&self, token: Option<&str>, body: Value) -> String {
        let r = self.post("/store/carts", token, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }
    /// A cart with one line, e-mail and address, ready to complete.
    async fn ready_cart(&self, token: Option<&str>, variant: &str, qty: i64) -> String {
        self.ready_cart_to(token, variant, qty, "KR").await
    }
    /// A cart into `country` in won, with one line, e-mail and address, ready to
    /// complete.
    async fn ready_cart_to(
        &self,
        token: Option<&str>,
        variant: &str,
        qty: i64,
        country: &str,
    ) -> String {
        let body = json!({"country": country, "currency": "KRW", "locale": "ko"});
        let cart = self.new_cart(token, body).await;
        let r = self
            .post(
                &format!("/store/carts/{cart}/line-items"),
                token,
                json!({"variant_id": variant, "quantity": qty}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = self
            .patch(
                &format!("/store/carts/{cart}"),
                token,
                json!({"email": "buyer@example.com", "shipping_address": {"name": "김민지", "line1": "세종대로 110", "city": "서울", "postal_code": "04524", "country": country, "phone": "+82 10-1234-5678"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        cart
    }
    async fn stock(&self, product: &str) -> i64 {
        self.engine.invalidate_catalog_cache();
        let r = self.get(&format!("/store/products/{product}"), None).await;
        r.body["variants"][0]["available_quantity"]
            .as_i64()
            .unwrap()
    }
    /// Completes `cart` with `payment` as a guest; the order must wait as pending with
    /// `action` as the buyer's next step. Returns the order.
    async fn complete_pending(&self, cart: &str, payment: Value, action: &str) -> Value {
        let r = self
            .post(
                &format!("/store/carts/{cart}/complete"),
                None,
                json!({ "payment": payment }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["status"], "pending");
        assert_eq!(r.body["next_action"]["type"], action, "{}", r.body);
        r.body
    }
    /// A guest order of `qty` x `variant` paid by bank transfer (the `manual`
    /// provider's pending card): it waits for an operator.
    async fn manual_transfer(&self, variant: &str, qty: i64) -> Value {
        let cart = self.ready_cart(None, variant, qty).await;
        let payment = json!({"card_number": jangteo_payment_manual::PENDING_CARD});
        self.complete_pending(&cart, payment, "virtual_account")
            .await
    }
    async fn events(&self) -> Vec<String> {
        let rows = self.outbox().await;
        rows.into_iter().map(|e| e.event_type).collect()
    }

    /// Every event written so far (none is relayed in these tests).
    async fn outbox(&self) -> Vec<jangteo_core::events::DomainEvent> {
        let rows = self.engine.store().outbox_pending(10_000).await.unwrap();
        rows.into_iter().map(|r| r.event).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_flow_search_cart_pay_list_cancel() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "red-ginseng-stick", 10).await;
    let buyer = app.buyer("minji@example.com").await;

    // Two-syllable Korean search, locale negotiation, money format.
    let r = app
        .get("/store/products?q=%ED%99%8D%EC%82%BC&currency=KRW", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["products"].as_array().unwrap().len(), 1);
    assert_eq!(
        r.body["products"][0]["variants"][0]["price"],
        json!({"amount": "39000", "currency": "KRW"})
    );
    let r = send(
        &app.store,
        Method::GET,
        "/store/products/red-ginseng-stick",
        None,
        None,
        &[("accept-language", "ko-KR,ko;q=0.9")],
    )
    .await;
    assert_eq!(r.body["title"], "한빛 홍삼정 스틱");
    assert_eq!(r.body["locale"], "ko");
    let r = app
        .get(
            &format!("/store/products/{pid}?locale=id&currency=USD"),
            None,
        )
        .await;
    assert_eq!(r.body["title"], "Stik Ginseng Merah Hanbit");
    assert_eq!(r.body["variants"][0]["price"]["amount"], "29.90");
    assert_eq!(
        app.get("/store/categories", None).await.body["categories"][0]["handle"],
        "ginseng"
    );

    let cart = app.ready_cart(Some(&buyer), &vid, 3).await;
    let r = app.get(&format!("/store/carts/{cart}"), Some(&buyer)).await;
    assert_eq!(
        r.body["totals"]["total"],
        json!({"amount": "117000", "currency": "KRW"})
    );
    assert_eq!(r.body["line_items"][0]["quantity"], 3);

    let complete = |key: &'static str| {
        let store = app.store.clone();
        let buyer = buyer.clone();
        let cart = cart.clone();
        async move {
            send(
                &store,
                Method::POST,
                &format!("/store/carts/{cart}/complete"),
                Some(&buyer),
                None,
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let first = complete("checkout-1").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["status"], "paid");
    assert_eq!(first.body["payment"]["status"], "captured");
    assert_eq!(first.body["totals"]["total"]["amount"], "117000");
    let order = first.body["id"].as_str().unwrap().to_string();
    let again = complete("checkout-1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.body["id"], first.body["id"],
        "a retried completion returns the same order"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.stock(&pid).await, 7, "stock was taken once");
    // The key again for another cart: refused, and that cart keeps its stock.
    let other = app.ready_cart(Some(&buyer), &vid, 1).await;
    let reused = send(
        &app.store,
        Method::POST,
        &format!("/store/carts/{other}/complete"),
        Some(&buyer),
        None,
        &[("idempotency-key", "checkout-1")],
    )
    .await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    assert_eq!(app.stock(&pid).await, 7, "the refused attempt kept nothing");
    let r = app
        .get(&format!("/store/carts/{other}"), Some(&buyer))
        .await;
    assert_eq!(r.body["status"], "open", "{}", r.body);

    let r = app.get("/store/orders", Some(&buyer)).await;
    assert_eq!(r.body["orders"].as_array().unwrap().len(), 1);
    let r = app
        .get(&format!("/store/orders/{order}"), Some(&buyer))
        .await;
    assert_eq!(r.body["number"], first.body["number"]);

    let r = app
        .post(
            &format!("/store/orders/{order}/cancel"),
            Some(&buyer),
            json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "canceled");
    assert_eq!(r.body["payment"]["status"], "refunded");
    assert_eq!(r.body["history"].as_array().unwrap().len(), 3);
    assert_eq!(app.stock(&pid).await, 10, "stock came back");
    let r = app
        .post(
            &format!("/store/orders/{order}/cancel"),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["code"], "invalid_state");

    let events = app.events().await;
    for e in [
        "product.created",
        "order.placed",
        "order.paid",
        "order.canceled",
        "customer.registered",
    ] {
        assert!(
            events.contains(&e.to_string()),
            "{e} missing from {events:?}"
        );
    }
}

/// The manual provider answers in process, so a captured payment commits with the
/// order: `order.placed` and `order.paid` leave in one transaction (adjacent outbox
/// rows, one instant). A payment that stays pending takes the usual second step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_capture_commits_with_its_order() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "one-commit", 100).await;
    let complete = |cart: String, card: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post(
                    &format!("/store/carts/{cart}/complete"),
                    None,
                    json!({"payment": {"provider": "manual", "card_number": card}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body
        }
    };
    let paid = complete(app.ready_cart(None, &vid, 1).await, "").await;
    assert_eq!(paid["status"], "paid");
    let pending = complete(app.ready_cart(None, &vid, 1).await, "4000000000003220").await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        pending["next_action"]["type"], "virtual_account",
        "{pending}"
    );

    let rows = app.engine.store().outbox_pending(10_000).await.unwrap();
    let of = |order: &serde_json::Value| -> Vec<_> {
        rows.iter()
            .filter(|r| r.event.aggregate_id == order["id"].as_str().unwrap())
            .map(|r| (r.seq, r.event.event_type.clone(), r.event.occurred_at))
            .collect()
    };
    let paid_events = of(&paid);
    assert_eq!(paid_events.len(), 2, "{paid_events:?}");
    let ((s1, t1, at1), (s2, t2, at2)) = (&paid_events[0], &paid_events[1]);
    assert_eq!((t1.as_str(), t2.as_str()), ("order.placed", "order.paid"));
    assert_eq!(*s2, s1 + 1, "written together");
    assert_eq!(at1, at2, "in the same transaction");
    let history = paid["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["at"], history[1]["at"]);
    let pending_events = of(&pending);
    assert_eq!(pending_events.len(), 1, "{pending_events:?}");
    assert_eq!(pending_events[0].1, "order.placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_checkout_uses_an_order_token() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "guest-item", 5).await;
    let cart = app.ready_cart(None, &vid, 1).await;
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            None,
            json!({"payment": {"provider": "manual"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let order = r.body["id"].as_str().unwrap().to_string();
    let token = r.body["order_token"]
        .as_str()
        .expect("guests get an order token")
        .to_string();
    let uri = format!("/store/orders/{order}");
    assert_eq!(
        send(
            &app.store,
            Method::GET,
            &uri,
            None,
            None,
            &[("x-order-token", &token)]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(app.get(&uri, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(
            &app.store,
            Method::GET,
            &uri,
            None,
            None,
            &[("x-order-token", "wrong")]
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let someone = app.buyer("other@example.com").await;
    assert_eq!(
        app.get(&uri, Some(&someone)).await.status,
        StatusCode::NOT_FOUND,
        "a guest order is not any buyer's"
    );
    // Completing the same cart again (no key) returns the same order and, should the
    // first answer have been lost, the same token.
    let r = app
        .post(&format!("/store/carts/{cart}/complete"), None, json!({}))
        .await;
    assert_eq!(r.body["id"], order.as_str());
    assert_eq!(r.body["order_token"], token.as_str());
    let r = send(
        &app.store,
        Method::POST,
        &format!("{uri}/cancel"),
        None,
        None,
        &[("x-order-token", &token)],
    )
    .await;
    assert_eq!(r.body["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_cannot_touch_each_others_orders_or_carts() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "private", 5).await;
    let alice = app.buyer("alice@example.com").await;
    let bob = app.buyer("bob@example.com").await;
    let cart = app.ready_cart(Some(&alice), &vid, 1).await;
    assert_eq!(
        app.get(&format!("/store/carts/{cart}"), Some(&bob))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/store/carts/{cart}/line-items"),
            Some(&bob),
            json!({"variant_id": vid, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.post(
            &format!("/store/carts/{cart}/complete"),
            Some(&bob),
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            Some(&alice),
            json!({}),
        )
        .await;
    let order = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&format!("/store/orders/{order}"), Some(&bob))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/store/orders/{order}/cancel"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(app.get("/store/orders", Some(&bob)).await.body["orders"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        app.get(&format!("/store/orders/{order}"), Some(&alice))
            .await
            .body["status"],
        "paid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_manages_catalog_and_orders_with_an_audit_trail() {
    let app = app().await;
    let admin = app.admin_token().await;
    app.create_staff(&admin, "op@shop.kr", "operator-pass", "operator")
        .await;
    let r = staff_login(&app, "op@shop.kr", "operator-pass").await;
    let op = r.body["access_token"].as_str().unwrap().to_string();
    let r = app
        .admin(
            Method::POST,
            "/admin/users",
            &op,
            Some(json!({"email": "x@shop.kr", "password": "operator-pass", "role": "admin"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "operators cannot create staff"
    );

    let (pid, vid) = app.product(&op, "omega-3", 20).await;
    let r = app.admin(Method::POST, "/admin/products", &op, Some(json!({"handle": "draft-one", "title": {"en": "Draft"}, "variants": [{"sku": "DR-1", "prices": [{"amount": "1000", "currency": "KRW"}]}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["status"], "draft");
    assert_eq!(
        app.get("/store/products/draft-one", None).await.status,
        StatusCode::NOT_FOUND,
        "drafts are not in the store"
    );
    let r = app
        .admin(Method::GET, "/admin/products?status=draft", &op, None)
        .await;
    assert_eq!(r.body["products"].as_array().unwrap().len(), 1);
    let r = app.admin(Method::POST, "/admin/products", &op, Some(json!({"handle": "omega-3", "title": {"en": "Dup"}, "variants": [{"sku": "NEW-1"}]}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["code"], "handle_taken");

    let r = app
        .admin(
            Method::PATCH,
            &format!("/admin/products/{pid}"),
            &op,
            Some(json!({"title": {"en": "Omega-3 rTG", "ko": "오메가3"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["variants"][0]["id"],
        vid.as_str(),
        "patching other fields keeps variants"
    );
    let r = app
        .admin(
            Method::PATCH,
            &format!("/admin/products/{pid}/variants/{vid}"),
            &op,
            Some(json!({"stock": 3, "prices": [{"amount": "45000", "currency": "KRW"}]})),
        )
        .await;
    assert_eq!(r.body["variants"][0]["stock"], 3);
    let r = app
        .get(&format!("/store/products/{pid}?currency=KRW"), None)
        .await;
    assert_eq!(
        r.body["variants"][0]["price"]["amount"], "45000",
        "an admin change is visible in the store at once"
    );
    assert_eq!(r.body["title"], "Omega-3 rTG");

    let cart = app.ready_cart(None, &vid, 1).await;
    let order = app
        .post(&format!("/store/carts/{cart}/complete"), None, json!({}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .admin(Method::GET, "/admin/orders?status=paid", &op, None)
        .await;
    assert_eq!(r.body["orders"][0]["id"], order.as_str());
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/orders/{order}/fulfill"),
            &op,
            Some(json!({"tracking_number": "6012345678901", "carrier": "cj"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "fulfilled");
    assert_eq!(r.body["fulfillment"]["tracking_number"], "6012345678901");
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/orders/{order}/cancel"),
            &op,
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "fulfilled orders are not canceled"
    );
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/orders/{order}/deliver"),
            &op,
            None,
        )
        .await;
    assert_eq!(r.body["status"], "delivered");
    let r = app
        .admin(
            Method::POST,
            &format!("/admin/orders/{order}/refund"),
            &op,
            Some(json!({"reason": "damaged"})),
        )
        .await;
    assert_eq!(r.body["status"], "refunded");

    let r = app
        .admin(Method::DELETE, &format!("/admin/products/{pid}"), &op, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/store/products/{pid}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/admin/orders/{order}"), &op, None)
            .await
            .body["line_items"][0]["sku"],
        "OMEGA-3-30",
        "orders keep their lines"
    );

    let r = app
        .admin(Method::GET, "/admin/audit-log?limit=100", &op, None)
        .await;
    let actions: Vec<&str> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.create",
        "product.create",
        "product.update",
        "variant.update",
        "order.fulfill",
        "order.deliver",
        "order.refund",
        "product.delete",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor_email"] == "op@shop.kr"));
    let r = app.admin(Method::GET, "/admin/users", &admin, None).await;
    assert_eq!(r.body["users"].as_array().unwrap().len(), 2);
}

async fn staff_login(app: &App, email: &str, password: &str) -> Res {
    send(
        &app.admin,
        Method::POST,
        "/admin/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
        &[],
    )
    .await
}

async fn staff_refresh(app: &App, refresh_token: &str) -> Res {
    let body = json!({"refresh_token": refresh_token});
    send(
        &app.admin,
        Method::POST,
        "/admin/auth/refresh",
        None,
        Some(body),
        &[],
    )
    .await
}

/// An employee leaves or changes job: a demoted admin loses admin routes on their very
/// next request, a disabled account loses its access token, refresh token and login at
/// once, a password reset signs out everywhere, and the last enabled admin cannot be
/// demoted or disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_accounts_are_demoted_disabled_and_reset_at_once() {
    let app = app().await;
    let root = app.admin_token().await;
    let user = app
        .create_staff(&root, "second@shop.kr", "second-pass", "admin")
        .await;
    assert!(user["disabled_at"].is_null());
    let id = user["id"].as_str().unwrap().to_string();
    let path = format!("/admin/users/{id}");
    let login = staff_login(&app, "second@shop.kr", "second-pass").await;
    let (token, refresh) = (
        login.body["access_token"].as_str().unwrap().to_string(),
        login.body["refresh_token"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/users", &token, None)
            .await
            .status,
        StatusCode::OK
    );

    // Demoted: the admin-only route refuses the same token; operator routes still work.
    let r = app
        .admin(
            Method::PATCH,
            &path,
            &root,
            Some(json!({"role": "operator"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["role"].clone()),
        (StatusCode::OK, json!("operator"))
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/users", &token, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/orders", &token, None)
            .await
            .status,
        StatusCode::OK
    );

    // Disabled: the access token, the refresh token and the password all stop working.
    let r = app
        .admin(Method::PATCH, &path, &root, Some(json!({"disabled": true})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["disabled_at"].is_string());
    let r = app.admin(Method::GET, "/admin/orders", &token, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        staff_refresh(&app, &refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        staff_login(&app, "second@shop.kr", "second-pass")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let listed = app.admin(Method::GET, "/admin/users", &root, None).await;
    let row = listed.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["disabled_at"].is_string(), "{row}");

    // Enabled again with a new password: the old one is refused, the new one works.
    let r = app
        .admin(
            Method::PATCH,
            &path,
            &root,
            Some(json!({"disabled": false, "password": "fresh-pass-1", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        staff_login(&app, "second@shop.kr", "second-pass")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let again = staff_login(&app, "second@shop.kr", "fresh-pass-1").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let second = again.body["access_token"].as_str().unwrap().to_string();

    // A password reset signs the account out everywhere, access tokens included.
    let before = again.body["refresh_token"].as_str().unwrap().to_string();
    let r = app
        .admin(
            Method::PATCH,
            &path,
            &root,
            Some(json!({"password": "fresh-pass-2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        staff_refresh(&app, &before).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.admin(Method::GET, "/admin/orders", &second, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let relogin = staff_login(&app, "second@shop.kr", "fresh-pass-2").await;
    let second = relogin.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.admin(Method::GET, "/admin/orders", &second, None)
            .await
            .status,
        StatusCode::OK,
        "a token issued right after the reset works"
    );

    // Two enabled admins: each may disable the other once, never the last one.
    let me = app
        .admin(Method::GET, "/admin/users", &root, None)
        .await
        .body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == ADMIN.0)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .admin(
            Method::PATCH,
            &format!("/admin/users/{me}"),
            &second,
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for change in [json!({"disabled": true}), json!({"role": "operator"})] {
        let r = app
            .admin(Method::PATCH, &path, &second, Some(change.clone()))
            .await;
        assert_eq!(
            (r.status, r.body["code"].clone()),
            (StatusCode::CONFLICT, json!("last_admin")),
            "{change}: {}",
            r.body
        );
    }

    // Bad input: problem documents, nothing changed.
    for (body, status, code) in [
        (
            json!({"role": "customer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"role": "owner"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"email": "x@shop.kr"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let r = app
            .admin(Method::PATCH, &path, &second, Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            r.body
        );
    }
    let buyer = app.buyer("not-staff@example.com").await;
    let buyer_id = app.get("/store/customers/me", Some(&buyer)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    for target in [buyer_id, uuid::Uuid::now_v7().to_string(), "nope".into()] {
        let r = app
            .admin(
                Method::PATCH,
                &format!("/admin/users/{target}"),
                &second,
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{target}: {}", r.body);
    }
    let audit = app
        .admin(Method::GET, "/admin/audit-log", &second, None)
        .await;
    let updates = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.update")
        .count();
    assert_eq!(updates, 5, "{}", audit.body);
}

/// Every admin route, read from the admin OpenAPI document, refuses anonymous callers
/// (401) and buyers (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_anonymous_and_customer_tokens() {
    let app = app().await;
    let buyer = app.buyer("shopper@example.com").await;
    let doc = send(&app.admin, Method::GET, "/openapi.json", None, None, &[])
        .await
        .body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Problem documents' extra members are typed for client generators.
    let schemas = doc["components"]["schemas"].to_string();
    for member in ["violations", "decline_code", "variant_id", "available"] {
        assert!(
            schemas.contains(&format!("\"{member}\"")),
            "{member} in {schemas:.300}"
        );
    }
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/admin/auth/") || path.starts_with("/health") {
            continue;
        }
        let uri = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{variant_id}", &uuid::Uuid::now_v7().to_string())
            .replace("{code}", "KR");
        for method in item.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let body = matches!(m, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
            let anon = send(&app.admin, m.clone(), &uri, None, body.clone(), &[]).await;
            assert_eq!(
                anon.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token"
            );
            let cust = send(&app.admin, m.clone(), &uri, Some(&buyer), body.clone(), &[]).await;
            assert_eq!(
                cust.status,
                StatusCode::FORBIDDEN,
                "{method} {path} with a customer token"
            );
            let forged = send(
                &app.admin,
                m,
                &uri,
                Some("eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ."),
                body,
                &[],
            )
            .await;
            assert_eq!(
                forged.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with alg=none"
            );
            checked += 1;
        }
    }
    assert!(checked >= 26, "only {checked} admin routes found");
    for (p, methods) in [
        ("/admin/countries", &["get"][..]),
        ("/admin/countries/{code}/rules", &["get", "put"][..]),
        ("/admin/countries/{code}/rules/history", &["get"][..]),
        ("/admin/exchange-rates", &["get", "put"][..]),
    ] {
        for m in methods {
            assert!(
                doc["paths"][p].get(*m).is_some(),
                "{m} {p} missing from the admin OpenAPI"
            );
        }
    }
    for schema in [
        "CountryList",
        "CountryRulesDto",
        "CountryRulesDoc",
        "CountryRulesHistory",
        "ExchangeRatesDto",
        "ExchangeRatesBody",
        "CountryDataDoc",
        "IngredientDoc",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing from the admin OpenAPI"
        );
    }
    let params = doc["paths"]["/admin/products"]["get"]["parameters"].to_string();
    assert!(params.contains("\"status\""), "{params}");
    // A client generator sees what a create needs, and that a patch needs nothing.
    let required = |schema: &str| -> Vec<String> {
        let s = &doc["components"]["schemas"][schema];
        let own = s["allOf"].as_array().map_or(s, |parts| {
            parts
                .iter()
                .find(|p| p.get("properties").is_some())
                .unwrap()
        });
        own["required"]
            .as_array()
            .map(|r| r.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut create = required("NewProductBody");
    create.sort();
    assert_eq!(create, ["handle", "title", "variants"]);
    assert_eq!(required("NewVariantBody"), ["sku"]);
    assert!(required("ProductPatchBody").is_empty());
    let body = &doc["paths"]["/admin/products"]["post"]["requestBody"];
    assert!(body.to_string().contains("NewProductBody"), "{body}");
    // The store's own doc is served too, and lists the buyer flow.
    let doc = app.get("/openapi.json", None).await.body;
    for p in [
        "/store/products",
        "/store/carts/{id}/complete",
        "/store/orders/{id}/cancel",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the store OpenAPI"
        );
    }
    for p in ["/store/products", "/store/products/{id_or_handle}"] {
        let params: Vec<&str> = doc["paths"][p]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"country"), "{p}: {params:?}");
        assert!(
            !params.contains(&"status"),
            "{p} lists published products only"
        );
    }
    for schema in [
        "ViolationDto",
        "ComplianceDto",
        "LandedCostDto",
        "TaxDto",
        "ProductCountryDto",
        "StatementDto",
        "CountryDataDoc",
        "IngredientDoc",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing from the store OpenAPI"
        );
    }
    let cart = &doc["components"]["schemas"]["CartDto"]["properties"];
    for field in ["tax", "landed_cost", "compliance", "buyer_identifiers"] {
        assert!(cart.get(field).is_some(), "CartDto.{field} undocumented");
    }
    assert!(doc["components"]["schemas"]["UpdateCartBody"]["properties"]
        .get("buyer_identifiers")
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_buyers_racing_for_ten_units_get_exactly_ten_orders() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "limited", 10).await;
    let mut carts = Vec::new();
    for _ in 0..50 {
        carts.push(app.ready_cart(None, &vid, 1).await);
    }
    let tasks: Vec<_> = carts
        .into_iter()
        .map(|c| {
            let store = app.store.clone();
            tokio::spawn(async move {
                send(
                    &store,
                    Method::POST,
                    &format!("/store/carts/{c}/complete"),
                    None,
                    None,
                    &[],
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut sold_out) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => ok += 1,
            StatusCode::CONFLICT => {
                assert_eq!(r.body["code"], "out_of_stock");
                sold_out += 1;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert_eq!((ok, sold_out), (10, 40));
    assert_eq!(app.stock(&pid).await, 0);
    let orders = app.engine.admin_orders(None, 100, None).await.unwrap();
    assert_eq!(orders.orders.len(), 10);
    let events = app.events().await;
    let count = |t: &str| events.iter().filter(|e| *e == t).count();
    assert_eq!(count("order.placed"), 10);
    // One `inventory.low` per order that left 5 or fewer (the default threshold):
    // stock 5, 4, 3, 2, 1 and 0.
    assert_eq!(count("inventory.low"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_pending_payments() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = app_with_clock(clock.clone()).await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "pay-test", 5).await;

    let cart = app.ready_cart(None, &vid, 2).await;
    let attempt = |key: &'static str, card: &'static str| {
        let (store, cart) = (app.store.clone(), cart.clone());
        async move {
            send(
                &store,
                Method::POST,
                &format!("/store/carts/{cart}/complete"),
                None,
                Some(json!({"payment": {"provider": "manual", "card_number": card}})),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let r = attempt("pay-1", "4000000000000002").await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.body);
    // The same key again is the same attempt: declined again, even with another card,
    // and nothing is placed or reserved for it.
    let again = attempt("pay-1", "4242424242424242").await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED, "{}", again.body);
    assert_eq!(again.body["decline_code"], "card_declined");
    assert_eq!(
        app.engine
            .admin_orders(None, 100, None)
            .await
            .unwrap()
            .orders
            .len(),
        1
    );
    assert_eq!(r.body["code"], "payment_declined");
    assert_eq!(
        r.body["decline_code"], "card_declined",
        "the provider's reason reaches the buyer"
    );
    assert_eq!(
        app.stock(&pid).await,
        5,
        "a declined payment holds no stock"
    );
    assert_eq!(
        app.get(&format!("/store/carts/{cart}"), None).await.body["status"],
        "open",
        "the buyer can try again"
    );
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            None,
            json!({"payment": {"card_number": "4242424242424242"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.stock(&pid).await, 3);

    // A payment that waits (virtual account, redirect) keeps its stock until expiry.
    let body = app.manual_transfer(&vid, 3).await;
    assert_eq!(app.stock(&pid).await, 0, "pending orders reserve stock");
    assert_eq!(
        app.engine.expire_pending_orders().await.unwrap(),
        0,
        "not yet expired"
    );
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.engine.expire_pending_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&pid).await, 3, "expiry released the reservation");
    let order = body["id"].as_str().unwrap();
    let token = body["order_token"].as_str().unwrap();
    let r = send(
        &app.store,
        Method::GET,
        &format!("/store/orders/{order}"),
        None,
        None,
        &[("x-order-token", token)],
    )
    .await;
    assert_eq!(r.body["status"], "canceled");
    assert_eq!(
        r.body["history"].as_array().unwrap().last().unwrap()["reason"],
        "payment expired"
    );

    // A manual payment that waits (bank transfer) is confirmed by an operator.
    let body = app.manual_transfer(&vid, 1).await;
    let order = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["next_action"]["account_number"], body["number"]);
    let uri = format!("/admin/orders/{order}/confirm-payment");
    let r = app
        .admin(
            Method::POST,
            &uri,
            &admin,
            Some(json!({"reference": "KB-2026-11-28-001"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "paid");
    assert_eq!(r.body["payment"]["reference"], "KB-2026-11-28-001");
    let r = app.admin(Method::POST, &uri, &admin, None).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "a paid order has nothing to confirm"
    );
    assert_eq!(app.stock(&pid).await, 2);
    // A blank reference is none: the payment is still named.
    let body = app.manual_transfer(&vid, 1).await;
    let order = body["id"].as_str().unwrap();
    let uri = format!("/admin/orders/{order}/confirm-payment");
    let r = app
        .admin(Method::POST, &uri, &admin, Some(json!({"reference": "  "})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["payment"]["reference"], format!("manual_{order}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_answers_configured_origins() {
    let app = app().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/store/carts")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,idempotency-key",
            )
            .body(Body::empty())
            .unwrap()
    };
    let res = app
        .store
        .clone()
        .oneshot(preflight("https://shop.example"))
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let settings = jangteo_http::HttpSettings {
        cors_origins: vec!["https://shop.example".into()],
        ..Default::default()
    };
    let store = jangteo_http::store_router(app.engine.clone(), &settings);
    let res = store
        .clone()
        .oneshot(preflight("https://shop.example"))
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let res = store
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_replay_revokes_the_family() {
    let app = app().await;
    app.buyer("rot@example.com").await;
    let r = app
        .post(
            "/store/auth/login",
            None,
            json!({"email": "ROT@example.com", "password": "buyer-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "e-mail is case-insensitive");
    let first = r.body["refresh_token"].as_str().unwrap().to_string();
    let r = app
        .post("/store/auth/refresh", None, json!({"refresh_token": first}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let second = r.body["refresh_token"].as_str().unwrap().to_string();
    let me = app
        .get("/store/customers/me", r.body["access_token"].as_str())
        .await;
    assert_eq!(me.body["email"], "rot@example.com");
    assert_eq!(
        app.post("/store/auth/refresh", None, json!({"refresh_token": first}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post(
            "/store/auth/refresh",
            None,
            json!({"refresh_token": second})
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED,
        "replaying a used token revoked its whole family"
    );
    assert_eq!(
        app.post(
            "/store/auth/register",
            None,
            json!({"email": "rot@example.com", "password": "another-pass"})
        )
        .await
        .body["code"],
        "email_taken"
    );
    assert_eq!(
        app.get("/store/customers/me", Some("not-a-jwt"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// A buyer signs one device out and changes the password: the signed-out device's
/// refresh token dies, the other device lives until the password changes; a wrong
/// current password is a field error and counts against the login limit; staff change
/// theirs on the admin API, audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_sign_out_and_change_their_password() {
    let app = app().await;
    app.buyer("phone@example.com").await;
    let sign_in = |password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/store/auth/login",
                None,
                json!({"email": "phone@example.com", "password": password}),
            )
            .await
        }
    };
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/store/auth/refresh", None, json!({"refresh_token": token}))
                .await
                .status
        }
    };
    let (phone, laptop) = (
        sign_in("buyer-password").await,
        sign_in("buyer-password").await,
    );
    let token_of = |r: &Res, field: &str| r.body[field].as_str().unwrap().to_string();

    let out = app
        .post(
            "/store/auth/logout",
            None,
            json!({"refresh_token": token_of(&phone, "refresh_token")}),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        refresh(token_of(&phone, "refresh_token")).await,
        StatusCode::UNAUTHORIZED
    );
    for unknown in ["", "never-issued"] {
        let again = app
            .post(
                "/store/auth/logout",
                None,
                json!({"refresh_token": unknown}),
            )
            .await;
        assert_eq!(again.status, StatusCode::NO_CONTENT, "{unknown:?}");
    }
    let r = refresh(token_of(&laptop, "refresh_token")).await;
    assert_eq!(r, StatusCode::OK, "the other device stays signed in");
    // The laptop's chain rotated: read its current tokens again.
    let laptop = sign_in("buyer-password").await;

    let access = token_of(&laptop, "access_token");
    let change = |current: &str, new: &str| {
        let (app, access) = (&app, access.clone());
        let body = json!({"current_password": current, "new_password": new});
        async move { app.post("/store/auth/password", Some(&access), body).await }
    };
    let wrong = change("not-my-password", "new-buyer-password").await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    assert_eq!(wrong.body["errors"][0]["code"], "incorrect");
    let short = change("buyer-password", "short").await;
    assert_eq!(
        short.body["errors"][0]["field"], "new_password",
        "{}",
        short.body
    );
    assert_eq!(
        app.post(
            "/store/auth/password",
            None,
            json!({"current_password": "a", "new_password": "b"})
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let changed = change("buyer-password", "new-buyer-password").await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body["access_token"].is_string());
    // Whoever holds an access token issued before the change (a thief, say) is cut
    // off on the next request, not when the token expires.
    let before = app.get("/store/customers/me", Some(&access)).await;
    assert_eq!(before.status, StatusCode::UNAUTHORIZED, "{}", before.body);
    let fresh = token_of(&changed, "access_token");
    assert_eq!(
        app.get("/store/customers/me", Some(&fresh)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        refresh(token_of(&laptop, "refresh_token")).await,
        StatusCode::UNAUTHORIZED,
        "every earlier session is signed out"
    );
    assert_eq!(
        refresh(token_of(&changed, "refresh_token")).await,
        StatusCode::OK
    );
    assert_eq!(
        sign_in("buyer-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in("new-buyer-password").await.status, StatusCode::OK);

    // Wrong current passwords are failed logins: with the limit (10) reached, even the
    // right password is refused until the window ends.
    let access = app.buyer("guess@example.com").await;
    for _ in 0..10 {
        let r = app
            .post(
                "/store/auth/password",
                Some(&access),
                json!({"current_password": "guess-guess", "new_password": "whatever-123"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
    let r = app
        .post(
            "/store/auth/password",
            Some(&access),
            json!({"current_password": "buyer-password", "new_password": "whatever-123"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);

    // Staff: the same on the admin API, audited.
    let admin = app.admin_token().await;
    app.create_staff(&admin, "ops@shop.kr", "ops-password", "operator")
        .await;
    let op = staff_login(&app, "ops@shop.kr", "ops-password").await;
    let r = app
        .admin(
            Method::POST,
            "/admin/auth/password",
            &token_of(&op, "access_token"),
            Some(json!({"current_password": "ops-password", "new_password": "ops-password-2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        staff_refresh(&app, &token_of(&op, "refresh_token"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(
        &app.admin,
        Method::POST,
        "/admin/auth/logout",
        None,
        Some(json!({"refresh_token": token_of(&r, "refresh_token")})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let audit = app
        .admin(Method::GET, "/admin/audit-log", &admin, None)
        .await;
    assert!(audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "user.password" && e["actor_email"] == "ops@shop.kr"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited() {
    let app = app().await;
    app.buyer("slow@example.com").await;
    let mut last = StatusCode::OK;
    for _ in 0..11 {
        last = app
            .post(
                "/store/auth/login",
                None,
                json!({"email": "slow@example.com", "password": "wrong-password"}),
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .post(
            "/store/auth/login",
            None,
            json!({"email": "slow@example.com", "password": "buyer-password"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the limit holds even with the right password"
    );
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
    let r = send(
        &app.admin,
        Method::POST,
        "/admin/auth/login",
        None,
        Some(json!({"email": "slow@example.com", "password": "buyer-password"})),
        &[],
    )
    .await;
    assert!(
        matches!(
            r.status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        ),
        "buyers cannot sign in to admin"
    );
}

/// A line whose total would pass the largest amount is refused with nothing saved, and
/// the cart stays readable and usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_too_expensive_to_total_is_refused_and_the_cart_stays_usable() {
    let app = app().await;
    let admin = app.admin_token().await;
    let body = json!({"handle": "gold-bar", "status": "published", "title": {"en": "Gold"},
        "variants": [{"sku": "GOLD-1", "stock": 1000,
                      "prices": [{"amount": "600000000000000", "currency": "KRW"}]}]});
    let r = app
        .admin(Method::POST, "/admin/products", &admin, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let gold = r.body["variants"][0]["id"].as_str().unwrap().to_string();
    let (_, ginseng) = app.product(&admin, "ginseng-ok", 5).await;
    let cart = app.ready_cart(None, &ginseng, 1).await;
    let lines = format!("/store/carts/{cart}/line-items");
    let r = app
        .post(&lines, None, json!({"variant_id": gold, "quantity": 2}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "invalid_amount");
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["line_items"].as_array().unwrap().len(),
        1,
        "nothing saved"
    );
    let r = app
        .post(&lines, None, json!({"variant_id": gold, "quantity": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "one unit totals fine: {}", r.body);
    let line = r.body["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["variant_id"] == gold.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &app.store,
        Method::PATCH,
        &format!("{lines}/{line}"),
        None,
        Some(json!({"quantity": 3})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totals"]["subtotal"]["amount"], "600000000039000");

    // The price raised afterwards past what the cart can total: a change that leaves
    // the cart unpriceable is refused with nothing saved (not saved and answered
    // with an error), and one that makes it priceable again goes through.
    let gold_product = r.body["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["variant_id"] == gold.as_str())
        .unwrap()["product_id"]
        .as_str()
        .unwrap()
        .to_string();
    let price = |amount: &'static str| {
        let (app, admin, uri) = (
            &app,
            admin.clone(),
            format!("/admin/products/{gold_product}/variants/{gold}"),
        );
        async move {
            let r = app
                .admin(
                    Method::PATCH,
                    &uri,
                    &admin,
                    Some(json!({"prices": [{"amount": amount, "currency": "KRW"}]})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    };
    price("1000000000000000").await;
    let r = app
        .patch(
            &format!("/store/carts/{cart}"),
            None,
            json!({"email": "changed@example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    price("600000000000000").await;
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["email"], "buyer@example.com",
        "the refused change left nothing"
    );
    assert_eq!(r.body["line_items"].as_array().unwrap().len(), 2);
    // Removing the line that cannot be totaled is what makes the cart whole again.
    price("1000000000000000").await;
    let r = send(
        &app.store,
        Method::DELETE,
        &format!("{lines}/{line}"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["line_items"].as_array().unwrap().len(), 1);
}

/// A guest cart completed by a signed-in buyer: replaying the completion shows the order
/// to that buyer only, not to whoever else holds the cart id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_completion_shows_a_buyers_order_to_that_buyer_only() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "replay-owner", 5).await;
    let buyer = app.buyer("owner@example.com").await;
    let cart = app.ready_cart(None, &vid, 1).await;
    let complete = format!("/store/carts/{cart}/complete");
    let r = app.post(&complete, Some(&buyer), json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let order = r.body["id"].clone();
    let r = app.post(&complete, None, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let stranger = app.buyer("stranger@example.com").await;
    let r = app.post(&complete, Some(&stranger), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.post(&complete, Some(&buyer), json!({})).await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(r.body["id"], order);
}

/// The sales report refuses ranges it cannot answer with a field code, before any
/// query (PostgreSQL's date type ends where chrono's does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_report_ranges_are_checked() {
    let app = app().await;
    let admin = app.admin_token().await;
    for (query, status, code) in [
        ("from=2026-11-02&to=2026-11-01", 422, "invalid_range"),
        ("from=2024-01-01&to=2025-01-01", 422, "range_too_long"),
        ("from=-4714-11-23&to=-4714-11-23", 422, "invalid_date"),
        ("from=0000-12-31&to=0001-01-01", 422, "invalid_date"),
        ("from=2026-13-01&to=2026-12-01", 400, "invalid_query"),
    ] {
        let r = app
            .admin(
                Method::GET,
                &format!("/admin/stats/sales?{query}"),
                &admin,
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{query}: {}", r.body);
        let got = r.body["errors"][0]["code"]
            .as_str()
            .or(r.body["code"].as_str())
            .unwrap_or_default()
            .to_string();
        assert_eq!(got, code, "{query}: {}", r.body);
    }
    let r = app
        .admin(
            Method::GET,
            "/admin/stats/sales?from=2025-01-01&to=2025-12-31",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A day's revenue beyond what one order may total is reported as it is, not
    // refused as if the caller had sent a bad amount.
    let day = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
    let mut tx = app.engine.store().begin().await.unwrap();
    tx.add_sales(&[jangteo_core::ports::SalesRow {
        day,
        country: "KR".into(),
        product_id: jangteo_core::ids::ProductId::new(),
        currency: "USD".into(),
        orders: 93,
        units: 93,
        revenue_minor: 930_000_000_000_000_000,
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = app
        .admin(
            Method::GET,
            "/admin/stats/sales?from=2025-06-01&to=2025-06-01",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["rows"][0]["revenue"],
        json!({"amount": "9300000000000000.00", "currency": "USD"})
    );
}

/// Wrong passwords sent all at once are limited as if sent one by one: each attempt
/// is counted when it starts, so no more than the limit (10) is ever checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_is_limited_like_a_sequence() {
    let app = app().await;
    app.buyer("burst@example.com").await;
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let store = app.store.clone();
        attempts.spawn(async move {
            let body = json!({"email": "burst@example.com", "password": "wrong-password"});
            send(
                &store,
                Method::POST,
                "/store/auth/login",
                None,
                Some(body),
                &[],
            )
            .await
            .status
        });
    }
    let (mut checked, mut limited) = (0, 0);
    while let Some(status) = attempts.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((checked, limited), (10, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_problem_documents_never_500() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "bad-input", 5).await;
    let cart = app
        .post(
            "/store/carts",
            None,
            json!({"country": "KR", "currency": "KRW"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines = format!("/store/carts/{cart}/line-items");

    let raw_post = |uri: String, ct: Option<&'static str>, body: Vec<u8>| {
        let store = app.store.clone();
        async move {
            let mut b = Request::builder().method(Method::POST).uri(uri);
            if let Some(ct) = ct {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            raw(&store, b.body(Body::from(body)).unwrap()).await
        }
    };
    let r = raw_post(
        lines.clone(),
        Some("application/json"),
        b"{\"variant_id\": ".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "malformed_json")
    );
    let r = raw_post(
        lines.clone(),
        Some("application/json"),
        br#"{"variant_id": 5, "quantity": "two"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = raw_post(
        lines.clone(),
        None,
        br#"{"variant_id": "x", "quantity": 1}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = raw_post(
        lines.clone(),
        Some("application/json"),
        vec![b' '; 70 * 1024],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = raw_post(
        format!("/store/carts/{cart}/complete"),
        Some("application/json"),
        b"{\"payment\": ".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Optional bodies follow the same rules when present: JSON objects sent as JSON.
    for (ct, body, status, code) in [
        (
            Some("text/plain"),
            &br#"{"payment": {"provider": "manual"}}"#[..],
            415,
            "unsupported_media_type",
        ),
        (
            None,
            &br#"{"payment": {"provider": "manual"}}"#[..],
            415,
            "unsupported_media_type",
        ),
        (Some("application/json"), &b"[]"[..], 422, "invalid_body"),
        (
            Some("application/json"),
            &b" \"manual\""[..],
            422,
            "invalid_body",
        ),
    ] {
        let r = raw_post(format!("/store/carts/{cart}/complete"), ct, body.to_vec()).await;
        assert_eq!(r.status.as_u16(), status, "{ct:?}: {}", r.body);
        assert_eq!(r.body["code"], code);
    }
    let r = raw_post(
        format!("/store/carts/{cart}/complete"),
        None,
        b"  ".to_vec(),
    )
    .await;
    assert_ne!(
        r.status.as_u16(),
        415,
        "a blank body is no body: {}",
        r.body
    );

    for qty in [
        json!(0),
        json!(-1),
        json!(1000),
        json!(1_000_000_000_000i64),
        json!(1.5),
        json!(null),
    ] {
        let r = app
            .post(&lines, None, json!({"variant_id": vid, "quantity": qty}))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity {qty}: {}",
            r.body
        );
    }
    let r = app
        .post(&lines, None, json!({"variant_id": vid, "quantity": 6}))
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "out_of_stock")
    );
    assert_eq!(r.body["available"], 5);
    let r = app
        .post(
            &lines,
            None,
            json!({"variant_id": uuid::Uuid::now_v7().to_string(), "quantity": 1}),
        )
        .await;
    assert_eq!(r.body["code"], "validation_failed");
    assert_eq!(r.body["errors"][0]["code"], "unknown_variant");
    let r = app
        .post(
            &lines,
            None,
            json!({"variant_id": vid, "quantity": 1, "extra": true}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    // A struct is not read from an array of its fields, on any route.
    let r = app.post(&lines, None, json!([vid, 1])).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
        "{}",
        r.body
    );
    let r = app
        .post("/store/carts", None, json!(["KR", "KRW", null]))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app
        .post(
            "/store/auth/login",
            None,
            json!(["buyer1@example.com", "correct horse battery"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Nor are unknown fields dropped inside prices and media.
    let admin = app.admin_token().await;
    // A wrong type for an enum is a wrong shape (422), not malformed JSON (400).
    for status in [json!(1), json!(true), json!([])] {
        let body = json!({"handle": "enum-typed", "title": {"en": "Enum"}, "status": status,
            "variants": [{"sku": "ENUM-1", "prices": [{"amount": "1000", "currency": "KRW"}]}]});
        let r = app
            .admin(Method::POST, "/admin/products", &admin, Some(body))
            .await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
            "status {status}: {}",
            r.body
        );
    }
    for (field, value) in [
        (
            "prices",
            json!([{"amount": "1000", "currency": "KRW", "sale": "900"}]),
        ),
        (
            "media",
            json!([{"url": "https://cdn.example/a.jpg", "width": 800}]),
        ),
    ] {
        let mut body = json!({"handle": format!("extra-{field}"), "title": {"en": "Extra"},
            "variants": [{"sku": format!("EXTRA-{field}"), "prices": [{"amount": "1000", "currency": "KRW"}]}]});
        if field == "prices" {
            body["variants"][0]["prices"] = value;
        } else {
            body["media"] = value;
        }
        let r = app
            .admin(Method::POST, "/admin/products", &admin, Some(body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.body
        );
        assert!(
            r.body.to_string().contains("unknown field"),
            "{field}: {}",
            r.body
        );
    }

    for uri in [
        "/store/carts/not-a-uuid",
        "/store/orders/0",
        "/store/products/..%2F..%2Fetc",
        "/store/nowhere",
        "/store/carts/01234567-89ab-cdef-0123-456789abcdef",
    ] {
        let r = app.get(uri, None).await;
        assert!(
            matches!(r.status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED),
            "{uri}: {}",
            r.status
        );
    }
    assert_eq!(
        send(&app.store, Method::PUT, "/store/products", None, None, &[])
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let r = app
        .post(
            "/store/carts",
            None,
            json!({"country": "Korea", "currency": "XYZ", "locale": "<script>"}),
        )
        .await;
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 3);
    let r = app.patch(&format!("/store/carts/{cart}"), None, json!({"email": "not-an-email", "shipping_address": {"name": "", "line1": "x", "city": "x", "postal_code": "1", "country": "ID"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(&format!("/store/carts/{cart}/complete"), None, json!({}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no e-mail or address yet: {}",
        r.body
    );
    let r = send(
        &app.store,
        Method::POST,
        &format!("/store/carts/{cart}/complete"),
        None,
        None,
        &[("idempotency-key", "has space")],
    )
    .await;
    assert_eq!(r.body["code"], "validation_failed");

    let hostile = [
        "'",
        "\"",
        "\\",
        "%",
        "_",
        "*",
        "' OR '1'='1",
        "\"; DROP TABLE products; --",
        "NEAR(홍삼 스틱)",
        "홍삼\"",
        "\u{0000}",
        "🙂🙂🙂",
        "a AND b OR NOT c",
        "(((",
        "^",
        "$",
        ":",
        "title:홍삼",
        &"가".repeat(200),
        &"x".repeat(201),
    ];
    for q in hostile {
        let enc: String = q.bytes().map(|b| format!("%{b:02X}")).collect();
        let r = app.get(&format!("/store/products?q={enc}"), None).await;
        assert!(
            matches!(r.status, StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY),
            "{q:?}: {}",
            r.status
        );
    }
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "cursor=garbage",
        "sort=cheapest",
        "min_price=1000",
        "currency=KRW&min_price=1.5",
        "currency=KRW&max_price=-1",
    ] {
        let r = app.get(&format!("/store/products?{query}"), None).await;
        assert!(r.status.is_client_error(), "{query}: {}", r.status);
    }
    let r = app.admin(Method::POST, "/admin/products", &admin, Some(json!({"handle": "Bad Handle", "title": {"xx-!!": "t"}, "variants": [{"sku": "", "prices": [{"amount": "-5", "currency": "KRW"}], "stock": -3}]}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["errors"].as_array().unwrap().len() >= 4,
        "{}",
        r.body
    );
    let r = app
        .admin(
            Method::PATCH,
            &format!("/admin/products/{}", uuid::Uuid::now_v7()),
            &admin,
            Some(json!({"title": {"en": "x"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .admin(Method::GET, "/admin/orders?status=lost", &admin, None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_paginate_and_filter() {
    let app = app().await;
    let admin = app.admin_token().await;
    for i in 0..7 {
        app.product(&admin, &format!("item-{i}"), 5).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/store/products?limit=3&sort=handle".to_string();
    loop {
        let r = app.get(&uri, None).await;
        seen.extend(
            r.body["products"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["handle"].as_str().unwrap().to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/store/products?limit=3&sort=handle&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("item-{i}")).collect::<Vec<_>>()
    );
    // A cursor belongs to its sort (and a price sort's currency): reused with another
    // it is refused, not a silently wrong page.
    let r = app
        .get("/store/products?limit=2&sort=price_asc&currency=KRW", None)
        .await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .get(
            &format!("/store/products?limit=2&sort=price_asc&currency=KRW&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for other in [
        "sort=newest",
        "sort=handle",
        "sort=price_desc&currency=KRW",
        "sort=price_asc&currency=USD",
    ] {
        let r = app
            .get(
                &format!("/store/products?limit=2&{other}&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.body["errors"][0]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_cursor")),
            "{other}: {}",
            r.body
        );
    }
    let r = app
        .get(
            "/store/products?category=ginseng&currency=KRW&min_price=39000&max_price=39000",
            None,
        )
        .await;
    assert_eq!(r.body["products"].as_array().unwrap().len(), 7);
    let r = app.get("/store/products?currency=IDR", None).await;
    assert!(
        r.body["products"].as_array().unwrap().is_empty(),
        "nothing is priced in IDR"
    );
    assert_eq!(app.get("/health/ready", None).await.status, StatusCode::OK);
    assert_eq!(
        send(&app.admin, Method::GET, "/health/live", None, None, &[])
            .await
            .status,
        StatusCode::OK
    );
}

/// Behind a trusted gateway the per-address login limit follows `X-Forwarded-For`, so
/// one abusive client is limited without locking out everyone behind the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_limit_follows_x_forwarded_for_when_trusted() {
    let app = app().await;
    let settings = jangteo_http::HttpSettings {
        trust_forwarded_for: true,
        ..Default::default()
    };
    let store = jangteo_http::store_router(app.engine.clone(), &settings);
    let login = |email: String, ip: &str| {
        let (store, ip) = (store.clone(), ip.to_string());
        async move {
            send(
                &store,
                Method::POST,
                "/store/auth/login",
                None,
                Some(json!({"email": email, "password": "wrong-password"})),
                &[("x-forwarded-for", ip.as_str())],
            )
            .await
            .status
        }
    };
    // 10 failures per account, 50 per address: spread over accounts, one address.
    for i in 0..50 {
        assert_eq!(
            login(format!("user{i}@example.com"), "203.0.113.7").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("fresh@example.com".into(), "203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login("fresh@example.com".into(), "198.51.100.2, 203.0.113.9").await,
        StatusCode::UNAUTHORIZED,
        "another client (the right-most address) is not limited"
    );
    // A gateway that writes `ip:port`: still its entry, not the client's before it.
    assert_eq!(
        login("fresh@example.com".into(), "198.51.100.3, 203.0.113.7:4711").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the gateway's entry with a port names the limited client"
    );
    assert_eq!(
        login(
            "fresh@example.com".into(),
            "198.51.100.3, [::ffff:203.0.113.7]:4711"
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "an IPv4-mapped address is the IPv4 address"
    );
    // One IPv6 subscriber (a /64) is one client, however many addresses it uses.
    let v6: Vec<String> = (0..51)
        .map(|i| format!("2001:db8:1:2::{:x}", i + 1))
        .collect();
    for (i, ip) in v6.iter().take(50).enumerate() {
        assert_eq!(
            login(format!("v6user{i}@example.com"), ip).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("fresh@example.com".into(), &v6[50]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "another address of the same /64 is limited"
    );
    assert_eq!(
        login("fresh@example.com".into(), "2001:db8:1:3::1").await,
        StatusCode::UNAUTHORIZED,
        "the next /64 is another client"
    );
}

/// A limited address that tries e-mail after e-mail is refused before any per-account
/// window is made: the limiter's memory does not grow with the e-mails it invents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_address_adds_no_window_per_e_mail_it_tries() {
    use jangteo_core::auth::InMemoryRateLimiter;
    use jangteo_core::service::users::LoginAttempt;
    let store = jangteo_sql::open("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    let limiter = Arc::new(InMemoryRateLimiter::default());
    let engine = EngineBuilder::new(store, vec![42u8; 32])
        .payments(
            PaymentRegistry::new()
                .register(jangteo_payment_manual::ManualConfig::default().build()),
        )
        .rate_limiter(limiter.clone())
        .build()
        .unwrap();
    let attempt = |i: usize| {
        let engine = engine.clone();
        async move {
            let email = format!("flood{i}@example.com");
            engine
                .login(LoginAttempt {
                    email: &email,
                    password: "wrong-password",
                    client_ip: Some("203.0.113.7"),
                    staff_only: false,
                })
                .await
        }
    };
    for i in 0..50 {
        assert!(matches!(attempt(i).await, Err(CoreError::Unauthorized(_))));
    }
    let windows = limiter.tracked_keys();
    assert_eq!(windows, 51, "one per e-mail and one for the address");
    for i in 50..550 {
        assert!(matches!(
            attempt(i).await,
            Err(CoreError::RateLimited { .. })
        ));
    }
    assert_eq!(limiter.tracked_keys(), windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_expire_after_a_week_without_activity() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = app_with_clock(clock.clone()).await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "expiring", 5).await;
    let cart = app.ready_cart(None, &vid, 1).await;
    clock.advance(chrono::Duration::days(6));
    let lines = format!("/store/carts/{cart}/line-items");
    let r = app
        .post(&lines, None, json!({"variant_id": vid, "quantity": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "activity extends the cart's life");
    clock.advance(chrono::Duration::days(8));
    let r = app
        .post(&lines, None, json!({"variant_id": vid, "quantity": 1}))
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "cart_expired")
    );
    let r = app
        .post(&format!("/store/carts/{cart}/complete"), None, json!({}))
        .await;
    assert_eq!(r.body["code"], "cart_expired");
    assert_eq!(app.engine.purge_expired_carts().await.unwrap(), 1);
    assert_eq!(
        app.get(&format!("/store/carts/{cart}"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

/// `?country=` hides products the destination's rules refuse today; the product page
/// explains why and lists the statements it must show there, in the page's locale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_and_product_pages_follow_the_destination_rules() {
    let app = compliance_app().await;
    let admin = app.admin_token().await;
    let today = app.engine.today();
    let yesterday = today - chrono::Duration::days(1);
    let next_year = today + chrono::Duration::days(365);
    let (valid, _) = app
        .aq_product(&admin, "aq-valid", "AQR-000001", next_year)
        .await;
    let (expired, _) = app
        .aq_product(&admin, "aq-expired", "AQR-000002", yesterday)
        .await;

    assert_eq!(
        app.handles("/store/products?sort=handle").await,
        ["aq-expired", "aq-valid"]
    );
    assert_eq!(
        app.handles("/store/products?sort=handle&country=AQ").await,
        ["aq-valid"],
        "an expired registration hides the product"
    );
    assert_eq!(
        app.handles("/store/products?sort=handle&country=aq&locale=ko")
            .await,
        ["aq-valid"]
    );
    assert!(
        app.handles("/store/products?country=KR").await.is_empty(),
        "no plugin for KR: not served"
    );
    let r = app.get("/store/products?country=Korea", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["code"], "invalid_country");

    // The page of a sellable product, in Korean: statements in order, the registration
    // number filled in, the product's own statement last.
    let r = app
        .get("/store/products/aq-valid?country=AQ&locale=ko", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], valid.as_str());
    assert_eq!(
        r.body["country"],
        json!({
            "country": "AQ", "sellable": true, "violations": [],
            "statements": [
                {"key": "import_notice", "text": "AQFDA 등록번호 AQR-000001.", "emphasis": true},
                {"key": "claim_disclaimer", "text": "이 표시는 평가되지 않았습니다.", "emphasis": false},
                {"key": "product_statement_0", "text": "냉동 보관하세요.", "emphasis": false}
            ]
        })
    );
    assert_eq!(
        r.body["countries"],
        json!({"AQ": {
            "registration": {"number": "AQR-000001", "holder": "Polar Imports Ltd", "expires_on": next_year.to_string()},
            "label_statements": {"en": ["Keep frozen."], "ko": ["냉동 보관하세요."]}
        }})
    );
    assert_eq!(
        r.body["ingredients"],
        json!([{"name": "vitamin D3", "amount": "25", "unit": "mcg"}])
    );
    assert_eq!(
        r.body["claims"],
        json!({"en": ["Supports bone health"], "ko": ["뼈 건강에 도움"]})
    );
    // The same page negotiated by Accept-Language.
    let r = send(
        &app.store,
        Method::GET,
        "/store/products/aq-valid?country=aq",
        None,
        None,
        &[("accept-language", "en-US,en;q=0.9")],
    )
    .await;
    assert_eq!(
        r.body["country"]["statements"],
        json!([
            {"key": "import_notice", "text": "Registered with AQFDA as AQR-000001.", "emphasis": true},
            {"key": "claim_disclaimer", "text": "This claim has not been evaluated.", "emphasis": false},
            {"key": "product_statement_0", "text": "Keep frozen.", "emphasis": false}
        ])
    );
    assert_eq!(r.body["title"], "Polar Vitamin D");

    // The expired one: reachable by link, not sellable, with the reason localized.
    let r = app
        .get(
            &format!("/store/products/{expired}?country=AQ&locale=en"),
            None,
        )
        .await;
    assert_eq!(r.body["country"]["sellable"], false);
    assert_eq!(
        r.body["country"]["violations"],
        json!([{"code": "not_registered",
                "message": format!("This product's AQFDA registration for AQ expired on {yesterday}.")}])
    );
    let r = app
        .get(
            &format!("/store/products/{expired}?country=AQ&locale=ko"),
            None,
        )
        .await;
    assert_eq!(
        r.body["country"]["violations"][0]["message"],
        format!("이 상품의 AQ AQFDA 등록이 {yesterday}에 만료되었습니다.")
    );
    let r = app
        .get("/store/products/aq-valid?country=KR&locale=en", None)
        .await;
    assert_eq!(
        r.body["country"],
        json!({"country": "KR", "sellable": false, "statements": [],
               "violations": [{"code": "country_not_served", "message": "We do not ship to KR at the moment."}]})
    );
    let r = app.get("/store/products/aq-valid", None).await;
    assert!(
        r.body.get("country").is_none(),
        "no country view unless asked: {}",
        r.body
    );
    let r = app.get("/store/products/aq-valid?country=XYZ", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Operators read and replace a country's rules as versioned documents; a change is in
/// force on the next listing and leaves an audit entry.
/// A cart created without a `locale` speaks the caller's language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cart_takes_the_callers_language() {
    let app = app().await;
    let body = json!({"country": "KR", "currency": "KRW"});
    let create = |headers: &'static [(&'static str, &'static str)], uri: &'static str| {
        let (store, body) = (app.store.clone(), body.clone());
        async move { send(&store, Method::POST, uri, None, Some(body), headers).await }
    };
    let r = create(
        &[("accept-language", "id-ID,id;q=0.9,en;q=0.5")],
        "/store/carts",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["locale"], "id-ID");
    let r = create(&[("accept-language", "id")], "/store/carts?locale=ko").await;
    assert_eq!(r.body["locale"], "ko");
    let r = create(&[], "/store/carts").await;
    let default = app.engine.settings().default_locales[0].clone();
    assert_eq!(r.body["locale"], default.as_str());
    let r = send(
        &app.store,
        Method::POST,
        "/store/carts",
        None,
        Some(json!({"country": "KR", "currency": "KRW", "locale": "en"})),
        &[("accept-language", "ko")],
    )
    .await;
    assert_eq!(r.body["locale"], "en", "the body wins");
}

/// Thousands of bad entries in one body: the answer lists the first hundred, as a
/// problem document of a few kilobytes, not a body of megabytes (or none at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bad_fields_get_a_short_problem_document() {
    let app = compliance_app().await;
    let r = app
        .post(
            "/store/carts",
            None,
            json!({"country": "AQ", "currency": "KRW"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cart = r.body["id"].as_str().unwrap().to_string();
    let kinds: serde_json::Map<String, Value> = (0..1700)
        .map(|i| (format!("kind_{i}"), json!("x")))
        .collect();
    for locale in ["en", "ko"] {
        let r = send(
            &app.store,
            Method::PATCH,
            &format!("/store/carts/{cart}"),
            None,
            Some(json!({ "buyer_identifiers": kinds })),
            &[("accept-language", locale)],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
        assert!(r.body.to_string().len() < 64 * 1024, "{locale}");
    }
    // A value of the wrong type is refused without being quoted back.
    let r = app
        .patch(
            &format!("/store/carts/{cart}"),
            None,
            json!({"buyer_identifiers": {"aq_station": 1234567}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "invalid_body");
    assert!(!r.body.to_string().contains("1234567"), "{}", r.body);
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(r.body["buyer_identifiers"], json!({}), "nothing stored");
}

/// Duty bands bounded in a currency the rate table lacks: the cart says so before
/// checkout refuses, and both clear once an operator adds the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_exchange_rate_shows_in_the_cart_before_checkout_refuses() {
    let app = compliance_app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.aq_registered(&admin, "aq-rate", "AQR-000001").await;
    let mut rules = serde_json::to_value(Antarctica.default_rules()).unwrap();
    let band = rules["import"]["duties"][0].clone();
    let (mut low, mut high) = (band.clone(), band);
    low["up_to"] = json!({"amount": "150", "currency": "USD"});
    high["above"] = json!({"amount": "150", "currency": "USD"});
    rules["import"]["duties"] = json!([low, high]);
    rules["import"]["buyer_identifiers"] = json!([]);
    app.put_aq_rules(&admin, rules).await;
    let cart = app.ready_cart_to(None, &vid, 1, "AQ").await;
    let codes = |r: &Res| -> Vec<String> {
        r.body["compliance"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["code"].as_str().unwrap().to_string())
            .collect()
    };
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(codes(&r), ["exchange_rate_missing"], "{}", r.body);
    assert_eq!(r.body["compliance"]["ok"], false);
    let complete = format!("/store/carts/{cart}/complete");
    let r = app.post(&complete, None, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["code"], "exchange_rate_missing");

    let rates = json!({"base": "KRW", "rates": {"USD": "0.00072"}, "source": "test"});
    let r = app.put_any("/admin/exchange-rates", &admin, rates).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert!(codes(&r).is_empty(), "{}", r.body);
    assert!(!r.body["landed_cost"].is_null(), "{}", r.body);
    let r = app.post(&complete, None, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A new registration format: products registered in the old one stay editable (a
/// change that leaves their AQ data alone is not judged by the new rule), are off sale
/// in AQ until updated, and new AQ data must follow the new format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registration_format_leaves_existing_products_editable() {
    let app = compliance_app().await;
    let admin = app.admin_token().await;
    let today = app.engine.today();
    let (pid, _) = app
        .aq_registered(&admin, "aq-old-format", "AQR-000001")
        .await;
    let listing = "/store/products?sort=handle&country=AQ";
    assert_eq!(app.handles(listing).await, ["aq-old-format"]);
    let mut rules = serde_json::to_value(Antarctica.default_rules()).unwrap();
    rules["registration"][0]["valid_to"] = json!(today - chrono::Duration::days(1));
    let mut next = rules["registration"][0].clone();
    next["valid_from"] = json!(today);
    next.as_object_mut().unwrap().remove("valid_to");
    next["pattern"] = json!("^AQX-[0-9]{8}$");
    next["example"] = json!("AQX-12345678");
    rules["registration"].as_array_mut().unwrap().push(next);
    app.put_aq_rules(&admin, rules).await;
    assert!(app.handles(listing).await.is_empty(), "off sale in AQ");

    let product = format!("/admin/products/{pid}");
    let patch = |body: Value| app.admin(Method::PATCH, &product, &admin, Some(body));
    for edit in [
        json!({"status": "draft"}),
        json!({"title": {"en": "Polar Vitamin D 2"}}),
    ] {
        let r = patch(edit).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let aq = |number: &str| {
        json!({"countries": {"AQ": {"registration": {"number": number,
            "holder": "Polar Imports Ltd", "expires_on": today + chrono::Duration::days(365)},
            "label_statements": {"en": ["Keep frozen."]}}}})
    };
    let r = patch(aq("AQR-000009")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["field"],
        "countries.AQ.registration.number"
    );
    for edit in [aq("AQX-12345678"), json!({"status": "published"})] {
        let r = patch(edit).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(app.handles(listing).await, ["aq-old-format"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_replace_country_rules_with_versions() {
    let app = compliance_app().await;
    let admin = app.admin_token().await;
    let today = app.engine.today();
    app.aq_registered(&admin, "aq-valid", "AQR-000001").await;
    app.aq_product(
        &admin,
        "aq-expired",
        "AQR-000002",
        today - chrono::Duration::days(1),
    )
    .await;
    let listing = "/store/products?sort=handle&country=AQ";
    assert_eq!(app.handles(listing).await, ["aq-valid"]);

    let r = app
        .admin(Method::GET, "/admin/countries", &admin, None)
        .await;
    assert_eq!(r.body, json!({"countries": [{"code": "AQ", "version": 0}]}));
    let r = app
        .admin(Method::GET, "/admin/countries/aq/rules", &admin, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"0\"");
    let defaults = serde_json::to_value(Antarctica.default_rules()).unwrap();
    assert_eq!(
        r.body,
        json!({"country": "AQ", "version": 0, "updated_by": null, "updated_at": null, "rules": defaults})
    );

    // Drop the registration rule: the expired product becomes sellable.
    let mut rules = r.body["rules"].clone();
    rules["registration"] = json!([]);
    let put = |rules: Value, if_match: Option<&'static str>| {
        let admin_router = app.admin.clone();
        let token = admin.clone();
        async move {
            let extra: Vec<(&str, &str)> = if_match.map(|m| ("if-match", m)).into_iter().collect();
            send(
                &admin_router,
                Method::PUT,
                "/admin/countries/aq/rules",
                Some(&token),
                Some(rules),
                &extra,
            )
            .await
        }
    };
    let r = put(rules.clone(), Some("\"0\"")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"1\"");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["updated_by"], ADMIN.0);
    assert_eq!(r.body["rules"]["registration"], json!([]));
    assert_eq!(
        app.handles(listing).await,
        ["aq-expired", "aq-valid"],
        "the change is in force on the next listing"
    );

    // A stale If-Match is a conflict; nothing changes.
    let r = put(defaults.clone(), Some("\"0\"")).await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    for malformed in ["version one", "1", "W/\"1\"", "\"-1\""] {
        let r = put(defaults.clone(), Some(malformed)).await;
        assert_eq!(
            (r.status, r.body["code"].as_str().unwrap()),
            (StatusCode::BAD_REQUEST, "invalid_if_match"),
            "{malformed}"
        );
    }
    // Unknown fields and bad values are 422 with field errors; nothing is stored.
    let mut bad = defaults.clone();
    bad["served"][0]["valid_too"] = json!("2030-01-01");
    let r = put(bad, Some("\"1\"")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "validation_failed");
    assert_eq!(
        r.body["errors"],
        json!([{"field": "served[0].valid_too", "code": "unknown_field", "message": "unknown field"}])
    );
    // Without If-Match nothing is replaced: the caller must say which version it read.
    let r = put(defaults.clone(), None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::PRECONDITION_REQUIRED, "if_match_required")
    );
    // Said before anything about the body: fixing the body first would not help.
    let mut bad = defaults.clone();
    bad["served"][0]["valid_too"] = json!("2030-01-01");
    let r = put(bad, None).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED, "{}", r.body);
    let mut bad = defaults.clone();
    bad["country"] = json!("KR");
    let r = put(bad, Some("*")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["code"], "country_mismatch");
    let r = app
        .admin(Method::GET, "/admin/countries/AQ/rules", &admin, None)
        .await;
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.headers[header::ETAG], "\"1\"");

    // Restore the defaults (`If-Match: *`: whatever is current): version 2.
    let r = put(defaults.clone(), Some("*")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(app.handles(listing).await, ["aq-valid"]);

    let r = app
        .admin(
            Method::GET,
            "/admin/countries/aq/rules/history",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let versions: Vec<i64> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    let newest = |limit: &str| {
        let uri = format!("/admin/countries/AQ/rules/history?limit={limit}");
        let (app, admin) = (&app, &admin);
        async move { app.admin(Method::GET, &uri, admin, None).await }
    };
    let one = newest("1").await;
    assert_eq!(one.body["versions"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["versions"][0]["version"], 2);
    assert_eq!(newest("0").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["versions"][1]["rules"]["registration"], json!([]));
    assert_eq!(r.body["versions"][0]["rules"], defaults);
    assert_eq!(r.body["versions"][0]["updated_by"], ADMIN.0);
    assert_eq!(
        app.admin(Method::GET, "/admin/countries", &admin, None)
            .await
            .body,
        json!({"countries": [{"code": "AQ", "version": 2}]})
    );

    for (m, uri) in [
        (Method::GET, "/admin/countries/ZZ/rules"),
        (Method::GET, "/admin/countries/zz/rules/history"),
        (Method::PUT, "/admin/countries/zz/rules"),
        (Method::GET, "/admin/countries/korea/rules"),
    ] {
        let body = (m == Method::PUT).then(|| defaults.clone());
        let any = [("if-match", "*")];
        let r = send(&app.admin, m.clone(), uri, Some(&admin), body, &any).await;
        assert_eq!(
            (r.status, r.body["code"].as_str().unwrap()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{m} {uri}"
        );
    }

    let entries = app.audit_actions(&admin).await;
    let replaced: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "country_rules.replace")
        .collect();
    assert_eq!(replaced.len(), 2, "one entry per stored version");
    assert_eq!(replaced[0]["target_type"], "country");
    assert_eq!(replaced[0]["target_id"], "AQ");
    assert_eq!(replaced[0]["actor_email"], ADMIN.0);
    assert_eq!(
        replaced[0]["details"],
        json!({"country": "AQ", "version": 2, "previous": 1})
    );
    assert_eq!(
        replaced[1]["details"],
        json!({"country": "AQ", "version": 1, "previous": 0})
    );
}

/// A cart into `AQ` shows the destination's verdict in the cart's locale, takes buyer
/// identifiers without ever showing them back, and cannot be completed while it
/// breaks a rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_carry_compliance_identifiers_and_landed_cost() {
    let app = compliance_app().await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.aq_registered(&admin, "aq-valid", "AQR-000001").await;
    let r = app
        .post(
            "/store/carts",
            None,
            json!({"country": "AQ", "currency": "KRW", "locale": "ko"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["buyer_identifiers"], json!({}));
    let cart = r.body["id"].as_str().unwrap().to_string();
    let uri = format!("/store/carts/{cart}");
    let r = app
        .post(
            &format!("{uri}/line-items"),
            None,
            json!({"variant_id": vid, "quantity": 4}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let line = r.body["line_items"][0]["id"].as_str().unwrap().to_string();

    let r = app.get(&uri, None).await;
    assert_eq!(
        r.body["compliance"],
        json!({"ok": false, "violations": [
            {"code": "quantity_limit_exceeded", "message": "AQ 개인 수입은 최대 3개까지 가능합니다. 현재 장바구니는 4개입니다.",
             "line_id": line, "product_id": pid, "limit": 3, "actual": 4},
            {"code": "buyer_id_required", "message": "AQ 통관에는 구매자의 다음 식별번호 중 하나가 필요합니다: aq_station."}
        ]})
    );
    assert_eq!(r.body["tax"], Value::Null, "AQ has no sales tax");
    assert_eq!(
        r.body["landed_cost"],
        json!({
            "estimate": true,
            "duty": {"amount": "15600", "currency": "KRW"},
            "import_tax": {"amount": "8580", "currency": "KRW"},
            "total": {"amount": "24180", "currency": "KRW"},
            "charged": false,
            "label": "AQ 소포 관세 10 % + 수입세 5 %",
            "note": "관세 및 수입세 예상액입니다. 최종 금액은 세관이 정합니다."
        })
    );
    assert_eq!(
        r.body["totals"],
        json!({
            "subtotal": {"amount": "156000", "currency": "KRW"},
            "shipping": {"amount": "0", "currency": "KRW"},
            "tax": {"amount": "0", "currency": "KRW"},
            "tax_included": false,
            "total": {"amount": "156000", "currency": "KRW"}
        }),
        "duties only estimated, not charged: no `duties`"
    );
    assert_eq!(
        r.body["line_items"][0]["tax"],
        json!({"amount": "0", "currency": "KRW"})
    );
    assert_eq!(r.body["line_items"][0]["price_converted"], false);

    // The cart's locale decides the language of the verdict.
    let r = app.patch(&uri, None, json!({"locale": "en"})).await;
    assert_eq!(
        r.body["compliance"]["violations"][0]["message"],
        "A personal import into AQ allows at most 3 units; this cart has 4."
    );
    assert_eq!(
        r.body["compliance"]["violations"][1]["message"],
        "Customs in AQ need one of these identifiers from the buyer: aq_station."
    );
    assert_eq!(
        r.body["landed_cost"]["note"],
        "Estimate of duties and import taxes; customs assess the final amount."
    );
    assert_eq!(
        r.body["landed_cost"]["label"],
        "AQ parcel duty 10 % + 5 % import tax"
    );

    // A malformed identifier: 422 on its field, the value never echoed.
    let r = app
        .patch(
            &uri,
            None,
            json!({"buyer_identifiers": {"aq_station": "XYZZY-0042"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "validation_failed");
    assert_eq!(
        r.body["errors"],
        json!([{"field": "buyer_identifiers.aq_station", "code": "buyer_id_invalid", "message": "AQ followed by 7 digits"}])
    );
    assert!(!r.body.to_string().contains("XYZZY"), "{}", r.body);
    let r = app
        .patch(&uri, None, json!({"buyer_identifiers": {"nope_id": "123"}}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["field"], "buyer_identifiers.nope_id");
    assert_eq!(r.body["errors"][0]["code"], "buyer_id_invalid");
    assert_eq!(
        app.get(&uri, None).await.body["buyer_identifiers"],
        json!({})
    );

    // A valid one (normalized) is kept sealed and shown masked.
    let r = app
        .patch(
            &uri,
            None,
            json!({"buyer_identifiers": {"aq_station": "aq1234567"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["buyer_identifiers"],
        json!({"aq_station": "******567"})
    );
    assert!(!r.body.to_string().to_lowercase().contains("aq1234567"));
    let quantity_violation = json!({
        "code": "quantity_limit_exceeded", "message": "A personal import into AQ allows at most 3 units; this cart has 4.",
        "line_id": line, "product_id": pid, "limit": 3, "actual": 4
    });
    assert_eq!(
        r.body["compliance"],
        json!({"ok": false, "violations": [quantity_violation]})
    );
    // null removes it; setting it again brings it back.
    let r = app
        .patch(
            &uri,
            None,
            json!({"buyer_identifiers": {"aq_station": null}}),
        )
        .await;
    assert_eq!(r.body["buyer_identifiers"], json!({}));
    assert_eq!(
        r.body["compliance"]["violations"][1]["code"],
        "buyer_id_required"
    );
    let r = app
        .patch(&uri, None, json!({
            "buyer_identifiers": {"aq_station": "AQ1234567"},
            "email": "frost@example.com",
            "shipping_address": {"name": "Dr. Frost", "line1": "Vostok Station", "city": "Vostok", "postal_code": "AQ-1", "country": "AQ"}
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["buyer_identifiers"],
        json!({"aq_station": "******567"})
    );

    // Completing while a rule is broken: 422 with the violations; nothing is placed.
    let r = app.post(&format!("{uri}/complete"), None, json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "compliance_violation");
    assert_eq!(r.body["type"], "urn:jangteo:problem:compliance_violation");
    assert_eq!(r.body["violations"], json!([quantity_violation]));
    assert_eq!(
        r.body["detail"],
        "A personal import into AQ allows at most 3 units; this cart has 4."
    );
    assert_eq!(app.stock(&pid).await, 10, "no stock was taken");
    let r = app.get(&uri, None).await;
    assert_eq!(
        (r.body["status"].as_str(), &r.body["order_id"]),
        (Some("open"), &Value::Null)
    );
    let r = app.admin(Method::GET, "/admin/orders", &admin, None).await;
    assert_eq!(r.body["orders"], json!([]), "no order was created");
    assert!(!app.events().await.contains(&"order.placed".to_string()));

    // Within the limit the order goes through, with per-line tax and the new totals.
    let r = app
        .patch(
            &format!("{uri}/line-items/{line}"),
            None,
            json!({"quantity": 3}),
        )
        .await;
    assert_eq!(r.body["compliance"], json!({"ok": true, "violations": []}));
    let r = app.post(&format!("{uri}/complete"), None, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["line_items"][0]["tax"],
        json!({"amount": "0", "currency": "KRW"})
    );
    assert_eq!(
        r.body["totals"],
        json!({
            "subtotal": {"amount": "117000", "currency": "KRW"},
            "shipping": {"amount": "0", "currency": "KRW"},
            "tax": {"amount": "0", "currency": "KRW"},
            "tax_included": false,
            "total": {"amount": "117000", "currency": "KRW"}
        })
    );
    let order = r.body["id"].as_str().unwrap().to_string();
    let token = r.body["order_token"].as_str().unwrap().to_string();
    assert_eq!(app.stock(&pid).await, 7);
    let store_view = send(
        &app.store,
        Method::GET,
        &format!("/store/orders/{order}"),
        None,
        None,
        &[("x-order-token", &token)],
    )
    .await;
    let admin_view = app
        .admin(Method::GET, &format!("/admin/orders/{order}"), &admin, None)
        .await;
    for view in [&store_view.body, &admin_view.body] {
        assert_eq!(view["id"], order.as_str());
        assert!(view.get("buyer_identifiers").is_none(), "{view}");
        assert!(view.get("buyer_key").is_none(), "{view}");
        assert!(!view.to_string().contains("1234567"), "{view}");
    }
}

/// Operators keep an exchange-rate table; a variant without a price in the cart's
/// currency is then sold at its converted base price, flagged as converted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_rates_convert_prices_a_variant_lacks() {
    let app = app().await;
    let admin = app.admin_token().await;
    let r = app
        .admin(Method::POST, "/admin/products", &admin, Some(json!({
            "handle": "won-only", "status": "published", "title": {"en": "Won only"},
            "variants": [{"sku": "WON-1", "prices": [{"amount": "39000", "currency": "KRW"}], "stock": 5}]
        })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let vid = r.body["variants"][0]["id"].as_str().unwrap().to_string();
    let cart = app
        .post(
            "/store/carts",
            None,
            json!({"country": "KR", "currency": "USD", "locale": "en"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines = format!("/store/carts/{cart}/line-items");
    let r = app
        .post(&lines, None, json!({"variant_id": vid, "quantity": 2}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["errors"][0]["code"], "no_price");

    let r = app
        .admin(Method::GET, "/admin/exchange-rates", &admin, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"0\"");
    assert_eq!(
        r.body,
        json!({"version": 0, "updated_by": null, "updated_at": null, "in_force_version": 0,
               "rates": {"base": "USD", "rates": {}, "source": "", "valid_from": null}})
    );
    let today = SystemClock.now().date_naive().to_string();
    let table =
        json!({"base": "KRW", "rates": {"USD": "0.00072"}, "source": "Bank of Korea, 2026-11-27"});
    let r = send(
        &app.admin,
        Method::PUT,
        "/admin/exchange-rates",
        Some(&admin),
        Some(table.clone()),
        &[("if-match", "\"0\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers[header::ETAG], "\"1\"");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["in_force_version"], 1);
    assert_eq!(r.body["updated_by"], ADMIN.0);
    let mut stored = table.clone();
    stored["valid_from"] = json!(today);
    assert_eq!(
        r.body["rates"], stored,
        "in force from the day it is stored"
    );

    let r = app
        .post(&lines, None, json!({"variant_id": vid, "quantity": 2}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let line = &r.body["line_items"][0];
    assert_eq!(
        line["unit_price"],
        json!({"amount": "28.08", "currency": "USD"})
    );
    assert_eq!(
        line["line_total"],
        json!({"amount": "56.16", "currency": "USD"})
    );
    assert_eq!(line["price_converted"], true);
    assert_eq!(
        r.body["totals"]["total"],
        json!({"amount": "56.16", "currency": "USD"})
    );
    assert_eq!(r.body["unavailable_line_ids"], json!([]));
    assert_eq!(
        r.body["compliance"],
        json!({"ok": true, "violations": []}),
        "no country plugins: compliance is off"
    );
    assert_eq!(r.body["tax"], Value::Null);
    assert_eq!(r.body["landed_cost"], Value::Null);

    let r = send(
        &app.admin,
        Method::PUT,
        "/admin/exchange-rates",
        Some(&admin),
        Some(table.clone()),
        &[("if-match", "\"0\"")],
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    let r = app
        .put_any(
            "/admin/exchange-rates",
            &admin,
            json!({"base": "KRW", "rates": {"USD": "-1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.body["errors"],
        json!([{"field": "rates.USD", "code": "out_of_range", "message": "a rate is positive"}])
    );
    let r = app
        .put_any(
            "/admin/exchange-rates",
            &admin,
            json!({"base": "KRW", "rates": {}, "bogus": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_str().unwrap()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
    );
    let r = app
        .admin(Method::GET, "/admin/exchange-rates", &admin, None)
        .await;
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["rates"], stored);
    let entries = app.audit_actions(&admin).await;
    let replaced: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "exchange_rates.replace")
        .collect();
    assert_eq!(replaced.len(), 1);
    assert_eq!(
        replaced[0]["details"],
        json!({"version": 1, "previous": 0, "base": "KRW", "valid_from": today})
    );
}

/// Customs rates are published ahead (Indonesia's weekly *kurs pajak*): a table stored
/// with a later `valid_from` waits for its day while the current one keeps pricing;
/// a past day is refused; the history shows which table was in force from when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_table_scheduled_ahead_waits_for_its_day() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = app_with_clock(clock.clone()).await;
    let admin = app.admin_token().await;
    let r = app
        .admin(Method::POST, "/admin/products", &admin, Some(json!({
            "handle": "won-only", "status": "published", "title": {"en": "Won only"},
            "variants": [{"sku": "WON-1", "prices": [{"amount": "39000", "currency": "KRW"}], "stock": 50}]
        })))
        .await;
    let vid = r.body["variants"][0]["id"].as_str().unwrap().to_string();
    let usd_price = || {
        let (app, vid) = (&app, vid.clone());
        async move {
            let cart = app
                .new_cart(None, json!({"country": "KR", "currency": "USD"}))
                .await;
            let r = app
                .post(
                    &format!("/store/carts/{cart}/line-items"),
                    None,
                    json!({"variant_id": vid, "quantity": 1}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["line_items"][0]["unit_price"]["amount"].clone()
        }
    };
    let day = |offset: i64| {
        (clock.now() + chrono::Duration::days(offset))
            .date_naive()
            .to_string()
    };
    let put = |body: Value, version: &str| {
        let (app, admin, version) = (&app, admin.clone(), format!("\"{version}\""));
        async move {
            send(
                &app.admin,
                Method::PUT,
                "/admin/exchange-rates",
                Some(&admin),
                Some(body),
                &[("if-match", &version)],
            )
            .await
        }
    };

    let r = put(
        json!({"base": "KRW", "rates": {"USD": "0.00072"}, "source": "this week"}),
        "0",
    )
    .await;
    assert_eq!(
        (r.status, r.body["in_force_version"].clone()),
        (StatusCode::OK, json!(1)),
        "{}",
        r.body
    );
    let next_week = day(5);
    let r = put(json!({"base": "KRW", "rates": {"USD": "0.0008"}, "source": "next week", "valid_from": next_week}), "1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (
            r.body["version"].clone(),
            r.body["in_force_version"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(usd_price().await, "28.08", "the scheduled table waits");

    let r = put(
        json!({"base": "KRW", "rates": {"USD": "0.0009"}, "valid_from": day(-1)}),
        "2",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "valid_from");
    assert_eq!(r.body["errors"][0]["code"], "out_of_range");

    clock.advance(chrono::Duration::days(5));
    assert_eq!(
        usd_price().await,
        "31.20",
        "on its day the scheduled table prices"
    );
    let admin = app.admin_token().await;
    let r = app
        .admin(Method::GET, "/admin/exchange-rates", &admin, None)
        .await;
    assert_eq!(
        (
            r.body["version"].clone(),
            r.body["in_force_version"].clone()
        ),
        (json!(2), json!(2))
    );

    let r = app
        .admin(
            Method::GET,
            "/admin/exchange-rates/history?limit=5",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let versions: Vec<_> = r.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].clone(),
                v["rates"]["valid_from"].clone(),
                v["rates"]["source"].clone(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            (json!(2), json!(next_week), json!("next week")),
            (json!(1), json!(day(-5)), json!("this week")),
        ]
    );
    assert!(r.body["versions"][0].get("in_force_version").is_none());
    let r = app
        .admin(
            Method::GET,
            "/admin/exchange-rates/history?limit=0",
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // Read, edit, send back: the table carries its stored day, past by now, which
    // means "from today" (any other past day is still refused, above).
    clock.advance(chrono::Duration::days(2));
    let admin = app.admin_token().await;
    let r = app
        .admin(Method::GET, "/admin/exchange-rates", &admin, None)
        .await;
    let mut edited = r.body["rates"].clone();
    assert_eq!(edited["valid_from"], json!(next_week));
    edited["rates"]["USD"] = json!("0.00081");
    let r = send(
        &app.admin,
        Method::PUT,
        "/admin/exchange-rates",
        Some(&admin),
        Some(edited),
        &[("if-match", "\"2\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["rates"]["valid_from"], json!(day(0)));
    assert_eq!(r.body["in_force_version"], r.body["version"]);
    assert_eq!(usd_price().await, "31.59", "the edited rate prices at once");

    // Many tables scheduled ahead (an importer storing every published rate) never push
    // the one in force out; more than 92 days ahead is refused.
    for week in 1..=25 {
        let body = json!({"base": "KRW", "rates": {"USD": "0.0009"}, "valid_from": day(week * 3)});
        let r = app.put_any("/admin/exchange-rates", &admin, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["in_force_version"], 3, "{}", r.body);
    }
    assert_eq!(usd_price().await, "31.59");
    let body = json!({"base": "KRW", "rates": {"USD": "0.0009"}, "valid_from": day(93)});
    let r = app.put_any("/admin/exchange-rates", &admin, body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "valid_from");
    clock.advance(chrono::Duration::days(3));
    assert_eq!(
        usd_price().await,
        "35.10",
        "the first scheduled table's day came"
    );
}

#[tokio::test]
async fn problem_titles_and_field_messages_follow_the_callers_language() {
    let app = app().await;
    // English by default: the title is the code's message, field messages stay the
    // specific ones the use case wrote.
    let r = app.get("/store/products/no-such-product", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["title"], "We could not find what you asked for.");
    assert_eq!(r.headers[header::CONTENT_LANGUAGE], "en");
    let bad = json!({"country": "Korea", "currency": "KRW"});
    let r = app.post("/store/carts", None, bad.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["errors"][0]["message"], "ISO 3166-1 alpha-2 code");
    assert!(
        r.body["detail"].as_str().unwrap().contains("ISO 3166-1"),
        "English keeps the specific detail"
    );

    // Korean by Accept-Language, Indonesian by ?locale= (which wins over the header).
    let r = send(
        &app.store,
        Method::GET,
        "/store/products/no-such-product",
        None,
        None,
        &[("accept-language", "ko-KR,ko;q=0.9,en;q=0.5")],
    )
    .await;
    assert_eq!(r.body["title"], "요청하신 항목을 찾을 수 없습니다.");
    assert_eq!(r.body["detail"], "요청하신 항목을 찾을 수 없습니다.");
    assert_eq!(r.headers[header::CONTENT_LANGUAGE], "ko");
    assert_eq!(
        r.body["code"], "not_found",
        "codes never change with the language"
    );
    let r = send(
        &app.store,
        Method::POST,
        "/store/carts?locale=id",
        None,
        Some(bad),
        &[("accept-language", "ko")],
    )
    .await;
    assert_eq!(r.body["title"], "Ada isian yang tidak valid.");
    assert_eq!(r.body["errors"][0]["code"], "invalid_country");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Gunakan kode negara dua huruf."
    );
    // Errors made outside the handlers (unknown routes) are localized too.
    let r = send(
        &app.store,
        Method::DELETE,
        "/store/categories",
        None,
        None,
        &[("accept-language", "ko")],
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["title"], "이 주소에서는 허용되지 않는 방식입니다.");

    // Figures survive translation.
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "last-one", 1).await;
    let cart = app
        .post(
            "/store/carts",
            None,
            json!({"country": "KR", "currency": "KRW"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &app.store,
        Method::POST,
        &format!("/store/carts/{cart}/line-items"),
        None,
        Some(json!({"variant_id": vid, "quantity": 5})),
        &[("accept-language", "ko")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["detail"], "재고가 부족합니다: 5개 요청, 1개 남음.");
    assert_eq!(
        (r.body["requested"].as_i64(), r.body["available"].as_i64()),
        (Some(5), Some(1))
    );
}

/// A rules change stored by one instance reaches another through the
/// `compliance.rules_updated` event (what the catalog-cache consumer does on every
/// instance), without waiting for the other's refresh period.
#[tokio::test]
async fn a_rules_change_on_one_instance_reaches_another_through_its_event() {
    use jangteo_core::consumers::CatalogCacheInvalidation;
    use jangteo_core::events::{DomainEvent, EventHandler};

    let dir = std::env::temp_dir().join(format!("jangteo-http-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = jangteo_sql::open(&url, &Default::default()).await.unwrap();
    let instance = || {
        let settings = jangteo_core::EngineSettings {
            // Long enough that only the event can explain a prompt change.
            rules_refresh: std::time::Duration::from_secs(3600),
            ..Default::default()
        };
        EngineBuilder::new(store.clone(), vec![42u8; 32])
            .payments(
                PaymentRegistry::new()
                    .register(jangteo_payment_manual::ManualConfig::default().build())
                    .register(Arc::new(CallbackProvider)),
            )
            .country(Arc::new(Antarctica))
            .settings(settings)
            .build()
            .unwrap()
    };
    let (one, two) = (instance(), instance());
    let version = |e: &Engine| {
        let e = e.clone();
        async move { e.countries().await.unwrap()[0].1 }
    };
    assert_eq!(version(&two).await, 0, "plugin defaults");

    let staff = jangteo_core::auth::Principal {
        id: jangteo_core::ids::CustomerId::new(),
        email: "ops@example.com".into(),
        role: jangteo_core::customer::Role::Admin,
    };
    let rules = serde_json::to_value(Antarctica.default_rules()).unwrap();
    one.put_country_rules(&staff, "AQ", rules, Some(0))
        .await
        .unwrap();
    assert_eq!(version(&one).await, 1, "the writer re-reads at once");
    assert_eq!(
        version(&two).await,
        0,
        "the other instance still has its snapshot"
    );

    let event = DomainEvent::new(
        "compliance.rules_updated",
        "country",
        "AQ",
        chrono::Utc::now(),
        json!({"country": "AQ", "version": 1}),
    );
    let consumer = CatalogCacheInvalidation::new(two.clone());
    assert!(consumer.wants(&event.event_type));
    consumer.handle(&event).await.unwrap();
    assert_eq!(version(&two).await, 1, "the event made it re-read");
}

/// Delivers a webhook of the `callback` provider as a provider would.
async fn callback(store: &Router, token: &str, body: Value) -> Res {
    send(
        store,
        Method::POST,
        "/store/payments/callback/webhook",
        None,
        Some(body),
        &[("x-callback-token", token)],
    )
    .await
}

/// A won amount of the API (no minor unit) as the integer providers send.
fn won(money: &Value) -> i64 {
    assert_eq!(money["currency"], "KRW");
    money["amount"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_webhooks_settle_pending_orders_once() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = app_with_clock(clock.clone()).await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "qr-pay", 5).await;
    let pay = |cart: String| {
        let app = &app;
        async move {
            app.complete_pending(&cart, json!({"provider": "callback"}), "qr")
                .await
        }
    };
    let order_status = |id: String| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = app
                .admin(Method::GET, &format!("/admin/orders/{id}"), admin, None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body
        }
    };
    let count = |events: &[String], t: &str| events.iter().filter(|e| *e == t).count();

    // A provider that is not installed: the webhook URL does not exist.
    let r = send(
        &app.store,
        Method::POST,
        "/store/payments/stripe/webhook",
        None,
        Some(json!({})),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{}",
        r.body
    );

    // Paid: refused until the sender and the amount check out, then applied once.
    let first = pay(app.ready_cart(None, &vid, 2).await).await;
    let id = first["id"].as_str().unwrap().to_string();
    let total = won(&first["totals"]["total"]);
    assert_eq!(app.stock(&pid).await, 3, "a pending order holds its stock");
    let paid =
        json!({"id": format!("qr_{id}"), "external_id": id, "status": "PAID", "amount": total});
    let r = callback(&app.store, "forged", paid.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
    // Money that is not the order's total does not pay it, but it was taken: it is
    // put on record for a refund, once, and acknowledged so the provider stops.
    let short = json!({"id": format!("qr_short_{id}"), "external_id": id, "status": "PAID", "amount": total - 1});
    for _ in 0..2 {
        let r = callback(&app.store, CALLBACK_TOKEN, short.clone()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let order = order_status(id.clone()).await;
    assert_eq!(order["status"], "pending");
    assert_eq!(
        order["payment"]["late_references"],
        json!([format!("qr_short_{id}")])
    );
    let unmatched: Vec<Value> = app
        .outbox()
        .await
        .into_iter()
        .filter(|e| e.event_type == "order.payment_unmatched")
        .map(|e| e.payload["late_payment"].clone())
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0]["reason"], "amount_mismatch");
    assert_eq!(won(&unmatched[0]["amount"]), total - 1);
    let r = callback(&app.store, CALLBACK_TOKEN, json!({"status": "PAID"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["code"], "malformed_webhook");
    // The plugin's own code is titled from its messages, in the caller's language.
    assert_eq!(r.body["title"], "The payment callback could not be read.");
    let r = send(
        &app.store,
        Method::POST,
        "/store/payments/callback/webhook",
        None,
        Some(json!({"status": "PAID"})),
        &[
            ("x-callback-token", CALLBACK_TOKEN),
            ("accept-language", "ko-KR"),
        ],
    )
    .await;
    assert_eq!(
        r.body["title"], "결제 콜백을 읽을 수 없습니다.",
        "{}",
        r.body
    );
    assert_eq!(order_status(id.clone()).await["status"], "pending");
    for _ in 0..3 {
        let r = callback(&app.store, CALLBACK_TOKEN, paid.clone()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let order = order_status(id.clone()).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["payment"]["reference"], format!("qr_{id}"));
    assert_eq!(app.stock(&pid).await, 3, "the paid order keeps its stock");
    assert_eq!(
        count(&app.events().await, "order.paid"),
        1,
        "redeliveries change nothing"
    );

    // Failed: the order is canceled and its stock comes back.
    let second = pay(app.ready_cart(None, &vid, 1).await).await;
    let id2 = second["id"].as_str().unwrap().to_string();
    assert_eq!(app.stock(&pid).await, 2);
    let r = callback(
        &app.store,
        CALLBACK_TOKEN,
        json!({"id": "x", "external_id": id2, "status": "EXPIRED"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(order_status(id2.clone()).await["status"], "canceled");
    assert_eq!(app.stock(&pid).await, 3);
    // Types the engine does not act on are acknowledged, so the provider stops sending.
    let r = callback(
        &app.store,
        CALLBACK_TOKEN,
        json!({"external_id": id2, "status": "SETTLING"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Paid after the expiry canceled it: recorded once per payment however often and
    // however concurrently the provider delivers it; someone must refund the money.
    let third = pay(app.ready_cart(None, &vid, 1).await).await;
    let id3 = third["id"].as_str().unwrap().to_string();
    let total3 = won(&third["totals"]["total"]);
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.engine.expire_pending_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&pid).await, 3, "the expiry released the stock");
    let late =
        json!({"id": format!("qr_{id3}"), "external_id": id3, "status": "PAID", "amount": total3});
    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (store, late) = (app.store.clone(), late.clone());
        deliveries.spawn(async move { callback(&store, CALLBACK_TOKEN, late).await });
    }
    while let Some(r) = deliveries.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let r = callback(&app.store, CALLBACK_TOKEN, late.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let order = order_status(id3.clone()).await;
    assert_eq!(
        order["status"], "canceled",
        "money after expiry does not revive an order"
    );
    assert_eq!(
        order["payment"]["late_references"],
        json!([format!("qr_{id3}")])
    );
    assert_eq!(app.stock(&pid).await, 3);
    let events = app.events().await;
    assert_eq!(
        count(&events, "order.payment_after_cancel"),
        1,
        "{events:?}"
    );
    // A second, different payment for the same order is a second refund.
    let other = json!({"id": "qr_second", "external_id": id3, "status": "PAID", "amount": total3});
    let r = callback(&app.store, CALLBACK_TOKEN, other).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        order_status(id3.clone()).await["payment"]["late_references"],
        json!([format!("qr_{id3}"), "qr_second"])
    );
    assert_eq!(count(&app.events().await, "order.payment_after_cancel"), 2);
}

/// Payments of `gated` wait until the test lets them go, then are captured: the
/// moment between checkout's commit and the provider's answer, held open.
#[derive(Debug, Default)]
struct GatedCapture {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl PaymentProvider for GatedCapture {
    fn name(&self) -> &str {
        "gated"
    }
    async fn authorize(&self, req: &PaymentRequest) -> CoreResult<PaymentOutcome> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(PaymentOutcome::Captured {
            reference: format!("cap_{}", req.order_id),
        })
    }
    async fn refund(&self, req: &RefundRequest) -> CoreResult<String> {
        Ok(format!("refund_{}", req.order_id))
    }
    /// Webhooks as `callback` reads them.
    async fn verify_webhook(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> CoreResult<WebhookEvent> {
        CallbackProvider.verify_webhook(headers, body).await
    }
}

/// The references announced by events of `event_type`, with their reasons.
async fn unapplied(app: &App, event_type: &str) -> Vec<(String, String)> {
    app.outbox()
        .await
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| {
            let p = &e.payload["late_payment"];
            (
                p["reference"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The buyer cancels (in another tab) while the provider is still taking the money:
/// the capture that arrives after the cancel is put on record for a refund, and the
/// checkout answers the canceled order, not "payment declined".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_that_loses_to_a_cancel_is_put_on_record() {
    let gate = Arc::new(GatedCapture::default());
    let app = app_with_provider(gate.clone()).await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "gated-item", 5).await;
    let buyer = app.buyer("gated@example.com").await;
    let cart = app.ready_cart(Some(&buyer), &vid, 1).await;
    let checkout = {
        let (store, cart, buyer) = (app.store.clone(), cart.clone(), buyer.clone());
        tokio::spawn(async move {
            send(
                &store,
                Method::POST,
                &format!("/store/carts/{cart}/complete"),
                Some(&buyer),
                Some(json!({"payment": {"provider": "gated"}})),
                &[("idempotency-key", "gated-1")],
            )
            .await
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gate.entered.notified())
        .await
        .unwrap();
    let list = app.get("/store/orders", Some(&buyer)).await;
    let id = list.body["orders"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/store/orders/{id}/cancel"),
            Some(&buyer),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    gate.release.notify_one();
    let answer = checkout.await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["status"], "canceled", "{}", answer.body);
    let reference = format!("cap_{id}");
    assert_eq!(
        answer.body["payment"]["late_references"],
        json!([reference])
    );
    assert_eq!(
        unapplied(&app, "order.payment_after_cancel").await,
        [(reference, "after_cancel".to_string())]
    );
    // A retry with the key answers the same order.
    let again = send(
        &app.store,
        Method::POST,
        &format!("/store/carts/{cart}/complete"),
        Some(&buyer),
        Some(json!({"payment": {"provider": "gated"}})),
        &[("idempotency-key", "gated-1")],
    )
    .await;
    assert_eq!(again.body["id"], answer.body["id"], "{}", again.body);
    assert_eq!(again.body["status"], "canceled");
}

/// A pending order paid, canceled (refunded), and then the provider redelivers its
/// "paid" webhook: the money was returned already, so nothing asks for a refund again;
/// a second, different payment for a paid order is new money and is put on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_second_payments_are_told_apart() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "redeliver", 5).await;
    let paid_order = || {
        let (app, vid) = (&app, vid.clone());
        async move {
            let cart = app.ready_cart(None, &vid, 1).await;
            let body = app
                .complete_pending(&cart, json!({"provider": "callback"}), "qr")
                .await;
            let id = body["id"].as_str().unwrap().to_string();
            let paid = json!({"id": format!("qr_{id}"), "external_id": id, "status": "PAID", "amount": won(&body["totals"]["total"])});
            let r = callback(&app.store, CALLBACK_TOKEN, paid.clone()).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
            (id, body["order_token"].as_str().unwrap().to_string(), paid)
        }
    };

    let (id, token, paid) = paid_order().await;
    let r = send(
        &app.store,
        Method::POST,
        &format!("/store/orders/{id}/cancel"),
        None,
        None,
        &[("x-order-token", &token)],
    )
    .await;
    assert_eq!(r.body["payment"]["status"], "refunded", "{}", r.body);
    let r = callback(&app.store, CALLBACK_TOKEN, paid).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let order = app
        .admin(Method::GET, &format!("/admin/orders/{id}"), &admin, None)
        .await
        .body;
    assert_eq!(order["payment"]["late_references"], json!([]), "{order}");
    assert!(unapplied(&app, "order.payment_after_cancel")
        .await
        .is_empty());

    let (id, _, mut paid) = paid_order().await;
    paid["id"] = json!("qr_second");
    for _ in 0..2 {
        let r = callback(&app.store, CALLBACK_TOKEN, paid.clone()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let order = app
        .admin(Method::GET, &format!("/admin/orders/{id}"), &admin, None)
        .await
        .body;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["payment"]["reference"], format!("qr_{id}"));
    assert_eq!(order["payment"]["late_references"], json!(["qr_second"]));
    assert_eq!(
        unapplied(&app, "order.payment_unmatched").await,
        [("qr_second".to_string(), "already_paid".to_string())]
    );
}

/// One provider's webhook never settles or cancels an order another provider takes
/// the payment of (a `manual` bank transfer is confirmed by an operator only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_settles_only_its_own_providers_orders() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "cross-provider", 5).await;
    let body = app.manual_transfer(&vid, 1).await;
    let id = body["id"].as_str().unwrap().to_string();
    let total = won(&body["totals"]["total"]);
    for status in ["PAID", "EXPIRED"] {
        let r = callback(
            &app.store,
            CALLBACK_TOKEN,
            json!({"id": "qr_foreign", "external_id": id, "status": status, "amount": total}),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{status}: {}", r.body);
    }
    let order = app
        .admin(Method::GET, &format!("/admin/orders/{id}"), &admin, None)
        .await
        .body;
    assert_eq!(order["status"], "pending", "{order}");
    assert_eq!(order["payment"]["reference"], body["payment"]["reference"]);
    assert_eq!(app.stock(&pid).await, 4, "the stock stays reserved");
}

/// Country codes are read in either case in an address too, as for the cart itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_country_is_read_in_either_case() {
    let app = app().await;
    let cart = app
        .new_cart(None, json!({"country": "kr", "currency": "KRW"}))
        .await;
    let r = app
        .patch(
            &format!("/store/carts/{cart}"),
            None,
            json!({"shipping_address": {"name": "김민지", "line1": "세종대로 110", "city": "서울", "postal_code": "04524", "country": "kr", "phone": "+82 10-1234-5678"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["shipping_address"]["country"], "KR");
}

/// A provider that refuses a request without a card token, and captures otherwise.
#[derive(Debug)]
struct NeedsToken;

#[async_trait::async_trait]
impl PaymentProvider for NeedsToken {
    fn name(&self) -> &str {
        "tokenized"
    }
    async fn authorize(&self, req: &PaymentRequest) -> CoreResult<PaymentOutcome> {
        if !req.data.contains_key("card_token") {
            return Err(CoreError::invalid_field(
                "payment.card_token",
                "required",
                "this provider needs a card token",
            ));
        }
        Ok(PaymentOutcome::Captured {
            reference: format!("tok_{}", req.order_id),
        })
    }
    async fn refund(&self, req: &RefundRequest) -> CoreResult<String> {
        Ok(format!("refund_{}", req.order_id))
    }
}

/// A provider that refuses the payment request itself (data it cannot use) charged
/// nothing: the order is canceled, its stock returned and the cart opened again, so
/// the buyer corrects the payment and completes the same cart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payment_request_reopens_the_cart() {
    let app = app_with_provider(Arc::new(NeedsToken)).await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "token-item", 5).await;
    let cart = app.ready_cart(None, &vid, 2).await;
    let complete = |payment: Value| {
        let (app, cart) = (&app, cart.clone());
        async move {
            app.post(
                &format!("/store/carts/{cart}/complete"),
                None,
                json!({ "payment": payment }),
            )
            .await
        }
    };
    let r = complete(json!({"provider": "tokenized"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["field"], "payment.card_token",
        "{}",
        r.body
    );
    assert_eq!(app.stock(&pid).await, 5, "the stock is back");
    let r = app.get(&format!("/store/carts/{cart}"), None).await;
    assert_eq!(r.body["status"], "open", "{}", r.body);
    let r = complete(json!({"provider": "tokenized", "card_token": "tok_visa"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "paid");
    assert_eq!(app.stock(&pid).await, 3);
    assert_eq!(
        app.events()
            .await
            .iter()
            .filter(|e| *e == "order.canceled")
            .count(),
        1,
        "the refused attempt's order is canceled"
    );
}

/// A payment of the wrong amount recorded while checkout waits for the provider is
/// kept when checkout then records the capture, and a redelivery announces nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_payment_recorded_during_checkout_is_kept() {
    let gate = Arc::new(GatedCapture::default());
    let app = app_with_provider(gate.clone()).await;
    let admin = app.admin_token().await;
    let (_, vid) = app.product(&admin, "gatedhook-item", 5).await;
    let cart = app.ready_cart(None, &vid, 1).await;
    let checkout = {
        let (store, cart) = (app.store.clone(), cart.clone());
        tokio::spawn(async move {
            send(
                &store,
                Method::POST,
                &format!("/store/carts/{cart}/complete"),
                None,
                Some(json!({"payment": {"provider": "gated"}})),
                &[],
            )
            .await
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gate.entered.notified())
        .await
        .unwrap();
    let list = app.admin(Method::GET, "/admin/orders", &admin, None).await;
    let id = list.body["orders"][0]["id"].as_str().unwrap().to_string();
    let total = won(&list.body["orders"][0]["totals"]["total"]);
    let short =
        json!({"id": "wrong_amount_1", "external_id": id, "status": "PAID", "amount": total - 1});
    let hook = |body: Value| {
        let store = app.store.clone();
        async move {
            send(
                &store,
                Method::POST,
                "/store/payments/gated/webhook",
                None,
                Some(body),
                &[("x-callback-token", CALLBACK_TOKEN)],
            )
            .await
        }
    };
    assert_eq!(hook(short.clone()).await.status, StatusCode::NO_CONTENT);
    gate.release.notify_one();
    assert_eq!(checkout.await.unwrap().status, StatusCode::CREATED);
    assert_eq!(hook(short).await.status, StatusCode::NO_CONTENT);
    let after = app
        .admin(Method::GET, &format!("/admin/orders/{id}"), &admin, None)
        .await
        .body;
    assert_eq!(after["status"], "paid");
    assert_eq!(
        after["payment"]["late_references"],
        json!(["wrong_amount_1"])
    );
    assert_eq!(
        unapplied(&app, "order.payment_unmatched").await,
        [("wrong_amount_1".to_string(), "amount_mismatch".to_string())]
    );
}
