//! The `jangteo` binary as an operator runs it: demo start, restart, SIGTERM.

mod common;

use std::process::Command;

use common::{http, json, login, start};

#[test]
fn demo_store_serves_restarts_and_stops_gracefully() {
    let dir = std::env::temp_dir().join(format!("jangteo-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let srv = start(&dir);
    assert_eq!(http(&srv.store, "GET", "/health/ready", None, None).0, 200);
    let (st, body) = http(
        &srv.store,
        "GET",
        "/store/products?limit=100&locale=ko",
        None,
        None,
    );
    assert_eq!(st, 200);
    let n = json(&body)["products"].as_array().unwrap().len();
    assert!(n >= 45, "demo catalog has {n} published products");
    let token = login(&srv);
    let (st, body) = http(&srv.admin, "GET", "/admin/audit-log", Some(&token), None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        http(&srv.admin, "GET", "/admin/products", None, None).0,
        401
    );
    let (st, doc) = http(&srv.admin, "GET", "/openapi.json", None, None);
    assert_eq!(st, 200);
    assert!(json(&doc)["paths"].get("/admin/products").is_some());

    // SIGTERM: the process drains and exits cleanly.
    let mut srv = srv;
    let status = common::terminate(&mut srv.child);
    assert!(status.success(), "exit status {status}");
    drop(srv);

    // A restart keeps data, does not load the demo twice, and old tokens still work
    // (the generated JWT secret is kept in the data folder).
    let srv = start(&dir);
    let (_, body) = http(&srv.store, "GET", "/store/products?limit=100", None, None);
    assert_eq!(json(&body)["products"].as_array().unwrap().len(), n);
    assert_eq!(
        http(&srv.admin, "GET", "/admin/users", Some(&token), None).0,
        200
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store service and a back-office service from the same binary and database: each
/// opens only its own listener, so the admin API cannot be reached through the public
/// hosts even by a gateway's routing mistake.
#[test]
fn store_and_admin_apis_run_as_separate_services() {
    let dir = std::env::temp_dir().join(format!("jangteo-apis-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The admin port the store service would have used stays free.
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let spare = port(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let spare_addr = format!("127.0.0.1:{spare}");
    let store_only =
        common::start_args(&dir, &[], &["--apis", "store", "--admin-addr", &spare_addr]);
    assert!(store_only.admin.is_empty(), "admin API printed as running");
    assert_eq!(
        http(&store_only.store, "GET", "/health/ready", None, None).0,
        200
    );
    let (st, body) = http(
        &store_only.store,
        "GET",
        "/store/products?limit=1",
        None,
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert!(
        std::net::TcpStream::connect(&spare_addr).is_err(),
        "something listens on the admin address of a store-only service"
    );
    // The store router has no admin routes either.
    assert_eq!(
        http(&store_only.store, "GET", "/admin/products", None, None).0,
        404
    );

    // The back office beside it, on the same data: the first start loaded the demo.
    let admin_only = common::start_args(&dir, &[], &["--apis", "admin"]);
    assert!(admin_only.store.is_empty(), "store API printed as running");
    let token = login(&admin_only);
    let (st, body) = http(
        &admin_only.admin,
        "GET",
        "/admin/products?limit=1",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        http(&admin_only.admin, "GET", "/health/ready", None, None).0,
        200
    );
    drop(admin_only);
    drop(store_only);

    for (apis, what) in [
        ("shop", "`shop` is not an API"),
        ("", "server.apis is empty"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_jangteo"))
            .args(["serve", "--data-dir"])
            .arg(&dir)
            .env(
                "JANGTEO__SERVER__APIS",
                format!(
                    "[{}]",
                    if apis.is_empty() {
                        String::new()
                    } else {
                        format!("\"{apis}\"")
                    }
                ),
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{apis:?}: {err}");
        assert!(err.contains(what), "{apis:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Monitoring: the admin listener serves Prometheus metrics of requests, orders, the
/// outbox and the consumers; `server.metrics_addr` serves them (and the health checks)
/// for processes without an admin listener; the public store listener never does.
#[test]
fn metrics_show_requests_orders_outbox_and_consumers() {
    let dir = std::env::temp_dir().join(format!("jangteo-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spare = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let srv = common::start_with(
        &dir,
        &[("JANGTEO__SERVER__METRICS_ADDR", spare.to_string())],
    );
    let token = login(&srv);
    let (_, variant) = common::product(&srv, &token, "metered", 10);
    for _ in 0..2 {
        let r = common::complete(&srv, &common::ready_cart(&srv, &variant, 1)).unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }
    assert_eq!(
        http(
            &srv.store,
            "GET",
            "/store/products/no-such-product",
            None,
            None
        )
        .0,
        404
    );

    let m = |text: &str, name: &str, labels: &[(&str, &str)]| {
        common::metric(text, name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    common::eventually(
        30,
        "both orders' events applied and the outbox empty",
        || {
            let text = common::scrape(&srv.admin);
            common::metric(&text, "jangteo_outbox_unsent", &[]) == Some(0.0)
                && common::metric(
                    &text,
                    "jangteo_events_applied_total",
                    &[("handler", "sales-statistics")],
                )
                .is_some_and(|n| n >= 2.0)
        },
    );
    let text = common::scrape(&srv.admin);
    let completions = [
        ("api", "store"),
        ("method", "POST"),
        ("route", "/store/carts/{id}/complete"),
        ("status", "201"),
    ];
    assert_eq!(m(&text, "jangteo_http_requests_total", &completions), 2.0);
    // Templates, not paths: the unknown handle is counted under its route.
    let missing = [
        ("route", "/store/products/{id_or_handle}"),
        ("status", "404"),
    ];
    assert_eq!(m(&text, "jangteo_http_requests_total", &missing), 1.0);
    assert!(
        m(
            &text,
            "jangteo_http_request_duration_seconds_count",
            &completions[..3]
        ) >= 2.0
    );
    assert_eq!(
        m(
            &text,
            "jangteo_checkouts_total",
            &[("provider", "manual"), ("outcome", "paid")]
        ),
        2.0
    );
    // Each order has at least its placed and paid events, plus the product's.
    assert!(m(&text, "jangteo_outbox_published_total", &[]) >= 4.0);
    assert!(m(&text, "jangteo_outbox_delivery_seconds_count", &[]) >= 4.0);
    assert!(
        m(
            &text,
            "jangteo_events_applied_total",
            &[("handler", "notifications")]
        ) >= 4.0
    );
    assert_eq!(
        m(&text, "jangteo_outbox_oldest_unsent_age_seconds", &[]),
        0.0
    );
    assert_eq!(m(&text, "jangteo_database_up", &[]), 1.0);
    assert!(m(&text, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(m(&text, "process_cpu_seconds_total", &[]) >= 0.0);

    // The buyer-facing listener has no metrics route; the dedicated one has it and
    // the health checks.
    assert_eq!(http(&srv.store, "GET", "/metrics", None, None).0, 404);
    let own = format!("http://{spare}");
    assert!(common::metric(&common::scrape(&own), "jangteo_database_up", &[]) == Some(1.0));
    assert_eq!(http(&own, "GET", "/health/ready", None, None).0, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad settings exit 2 and name the setting; a database that does not answer exits 1
/// (deploy.md, "Exit codes"), so a deploy script can tell the two apart.
#[test]
fn bad_database_urls_and_settings_fail_clearly() {
    let run = |args: &[&str], vars: &[(&str, &str)], code: i32| {
        let out = Command::new(env!("CARGO_BIN_EXE_jangteo"))
            .args(args)
            .env("JANGTEO__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{args:?} {vars:?}: {err}");
        err
    };
    let migrate =
        |url: &str, code: i32| run(&["migrate"], &[("JANGTEO__DATABASE__URL", url)], code);
    let err = migrate("mysql://jangteo@127.0.0.1/jangteo", 2);
    assert!(err.contains("unsupported database URL"), "{err}");
    let data = std::env::temp_dir().join(format!("jangteo-bad-settings-{}", std::process::id()));
    let data_dir = data.to_str().unwrap();
    let serve = [
        "serve",
        "--data-dir",
        data_dir,
        "--store-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    let err = run(&serve, &[("JANGTEO__COMPLIANCE__ORIGIN_COUNTRY", "KOR")], 2);
    assert!(err.contains("compliance.origin_country"), "{err}");
    let err = run(
        &serve,
        &[("JANGTEO__COMPLIANCE__COUNTRIES", "[\"KR\", \"XX\"]")],
        2,
    );
    assert!(err.contains("compliance.countries"), "{err}");
    // Without Kafka nothing else could apply the events these processes would relay.
    for setting in ["RUN_CONSUMERS", "RUN_WORKERS"] {
        let var = format!("JANGTEO__EVENTS__{setting}");
        let err = run(&serve, &[(var.as_str(), "false")], 2);
        assert!(
            err.contains(&format!("events.{}", setting.to_lowercase())),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
    // Nothing listens on this port: `migrate` reports it instead of waiting forever.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = migrate(
        &format!("postgres://jangteo:pw@127.0.0.1:{port}/jangteo"),
        1,
    );
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        !err.contains(":pw@"),
        "the password must not be printed: {err}"
    );
}

#[test]
fn embedded_events_reach_notifications_and_sales_statistics() {
    let dir = std::env::temp_dir().join(format!("jangteo-bin-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let srv = start(&dir);
    let token = login(&srv);
    let (_, variant) = common::product(&srv, &token, "embedded-events", 10);
    let cart = common::ready_cart(&srv, &variant, 3);
    let r = common::complete(&srv, &cart).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    common::eventually(20, "two notifications and the sale", || {
        let (_, b) = http(
            &srv.admin,
            "GET",
            "/admin/notifications",
            Some(&token),
            None,
        );
        json(&b)["notifications"].as_array().unwrap().len() == 2
    });
    let (_, b) = http(
        &srv.admin,
        "GET",
        "/admin/notifications",
        Some(&token),
        None,
    );
    let notes = json(&b);
    let paid = &notes["notifications"][0];
    assert_eq!(paid["template"], "order.paid");
    assert_eq!(paid["locale"], "ko");
    assert!(
        paid["subject"].as_str().unwrap().contains("결제 완료"),
        "{paid}"
    );
    assert!(
        paid["body"].as_str().unwrap().contains("117000 KRW"),
        "{paid}"
    );
    let today = chrono_today();
    let (st, b) = http(
        &srv.admin,
        "GET",
        &format!("/admin/stats/sales?from={today}&to={today}"),
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{b}");
    let rows = json(&b)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["units"], 3);
    assert_eq!(rows[0]["revenue"]["amount"], "117000");
    let (st, b) = http(
        &srv.admin,
        "GET",
        "/admin/stats/sales?from=2026-02-01&to=2025-01-01",
        Some(&token),
        None,
    );
    assert_eq!(st, 422, "{b}");
    assert_eq!(json(&b)["code"], "validation_failed", "{b}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

fn chrono_today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
