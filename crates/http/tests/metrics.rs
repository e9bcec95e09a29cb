//! Request metrics as Prometheus sees them, including answers that no handler wrote
//! (a timeout). Its own test binary: the recorder is global to the process.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use jangteo_core::payment::PaymentRegistry;
use jangteo_core::EngineBuilder;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_is_counted_under_its_route() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let store = jangteo_sql::open("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    let engine = EngineBuilder::new(store, vec![42u8; 32])
        .payments(
            PaymentRegistry::new()
                .register(jangteo_payment_manual::ManualConfig::default().build()),
        )
        .build()
        .unwrap();
    engine
        .register("slow@example.com", "a-long-password")
        .await
        .unwrap();
    // A login hashes the password (tens of milliseconds): longer than this timeout.
    let settings = jangteo_http::HttpSettings {
        request_timeout: Duration::from_millis(1),
        ..Default::default()
    };
    let store_api = jangteo_http::store_router(engine, &settings);
    let send = |method: Method, uri: &str, body: &str| {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        store_api.clone().oneshot(req)
    };
    let login = r#"{"email": "slow@example.com", "password": "a-long-password"}"#;
    let res = send(Method::POST, "/store/auth/login", login)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    // A timeout is answered like every other error: a problem document.
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "timeout", "{problem}");
    assert_eq!(problem["status"], 408, "{problem}");
    let res = send(Method::GET, "/no/such/path", "").await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let text = recorder.render();
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| needle.iter().all(|n| l.contains(n)))
            .map(str::to_string)
    };
    let timed_out = line(&[
        "jangteo_http_requests_total{",
        r#"route="/store/auth/login""#,
        r#"status="408""#,
    ]);
    assert!(
        timed_out.as_deref().is_some_and(|l| l.ends_with(" 1")),
        "{timed_out:?} in\n{text}"
    );
    let unknown = line(&[
        "jangteo_http_requests_total{",
        r#"route="unmatched""#,
        r#"status="404""#,
    ]);
    assert!(unknown.is_some(), "{text}");
    assert!(
        line(&[r#"route="unmatched""#, r#"status="408""#]).is_none(),
        "a timeout counted as an unknown path:\n{text}"
    );
}
