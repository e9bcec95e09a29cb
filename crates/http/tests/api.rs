//! End-to-end tests of the store and admin APIs through the real routers, on SQLite.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jangteo_core::clock::{Clock, ManualClock, SystemClock};
use jangteo_core::payment::PaymentRegistry;
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

async fn app_with_clock(clock: Arc<dyn Clock>) -> App {
    let dir = std::env::temp_dir().join(format!("jangteo-http-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let store = jangteo_sql::open(&url, &Default::default()).await.unwrap();
    let engine = EngineBuilder::new(store, vec![42u8; 32])
        .payments(
            PaymentRegistry::new()
                .register(jangteo_payment_manual::ManualConfig::default().build()),
        )
        .clock(clock)
        .build()
        .unwrap();
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
        let r = send(
            &self.admin,
            Method::POST,
            "/admin/auth/login",
            None,
            Some(json!({"email": ADMIN.0, "password": ADMIN.1})),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }
    async fn admin(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Res {
        send(&self.admin, method, uri, Some(token), body, &[]).await
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
    /// A cart with one line, e-mail and address, ready to complete.
    async fn ready_cart(&self, token: Option<&str>, variant: &str, qty: i64) -> String {
        let r = self
            .post(
                "/store/carts",
                token,
                json!({"country": "KR", "currency": "KRW", "locale": "ko"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let cart = r.body["id"].as_str().unwrap().to_string();
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
                json!({"email": "buyer@example.com", "shipping_address": {"name": "김민지", "line1": "세종대로 110", "city": "서울", "postal_code": "04524", "country": "KR", "phone": "+82 10-1234-5678"}}),
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
    async fn events(&self) -> Vec<String> {
        let rows = self.engine.store().outbox_pending(10_000).await.unwrap();
        rows.into_iter().map(|r| r.event.event_type).collect()
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
    let r = app
        .admin(
            Method::POST,
            "/admin/users",
            &admin,
            Some(json!({"email": "op@shop.kr", "password": "operator-pass", "role": "operator"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = send(
        &app.admin,
        Method::POST,
        "/admin/auth/login",
        None,
        Some(json!({"email": "op@shop.kr", "password": "operator-pass"})),
        &[],
    )
    .await;
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
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/admin/auth/") || path.starts_with("/health") {
            continue;
        }
        let uri = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{variant_id}", &uuid::Uuid::now_v7().to_string());
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
    assert!(checked >= 17, "only {checked} admin routes found");
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
    assert_eq!(
        app.events()
            .await
            .iter()
            .filter(|e| *e == "order.placed")
            .count(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_and_pending_payments() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = app_with_clock(clock.clone()).await;
    let admin = app.admin_token().await;
    let (pid, vid) = app.product(&admin, "pay-test", 5).await;

    let cart = app.ready_cart(None, &vid, 2).await;
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            None,
            json!({"payment": {"provider": "manual", "card_number": "4000000000000002"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.body);
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
    let cart = app.ready_cart(None, &vid, 3).await;
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            None,
            json!({"payment": {"card_number": "4000000000003220"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["next_action"]["type"], "virtual_account");
    assert_eq!(app.stock(&pid).await, 0, "pending orders reserve stock");
    assert_eq!(
        app.engine.expire_pending_orders().await.unwrap(),
        0,
        "not yet expired"
    );
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.engine.expire_pending_orders().await.unwrap(), 1);
    assert_eq!(app.stock(&pid).await, 3, "expiry released the reservation");
    let order = r.body["id"].as_str().unwrap();
    let token = r.body["order_token"].as_str().unwrap();
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
    let cart = app.ready_cart(None, &vid, 1).await;
    let r = app
        .post(
            &format!("/store/carts/{cart}/complete"),
            None,
            json!({"payment": {"card_number": "4000000000003220"}}),
        )
        .await;
    let order = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["next_action"]["account_number"], r.body["number"]);
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
    let login = |email: String, ip: &'static str| {
        let store = store.clone();
        async move {
            send(
                &store,
                Method::POST,
                "/store/auth/login",
                None,
                Some(json!({"email": email, "password": "wrong-password"})),
                &[("x-forwarded-for", ip)],
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
