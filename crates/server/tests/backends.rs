//! The binary on the production backends (PostgreSQL, Redis, a Kafka-protocol broker),
//! and the faults it must survive. Every test runs against real servers: the shared
//! ones `./scripts/test` starts, or a private set (`common::Stack`) for tests that stop
//! and start a server.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn data_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jangteo-{tag}-{}", uuid_ish()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn env(pairs: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("JANGTEO__DATABASE__MAX_CONNECTIONS", "40".to_string()),
        ("JANGTEO__DATABASE__ACQUIRE_TIMEOUT_SECS", "2".to_string()),
    ];
    v.extend(pairs.iter().cloned());
    v
}

#[test]
fn postgres_checkout_never_oversells_200_buyers_for_50_units() {
    let db = fresh_database(&postgres_admin_url());
    let srv = start_with(
        &data_dir("oversell"),
        &env(&[("JANGTEO__DATABASE__URL", db.clone())]),
    );
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "last-fifty", 50);
    let carts: Vec<String> = (0..200).map(|_| ready_cart(&srv, &variant, 1)).collect();
    let srv = Arc::new(srv);
    let barrier = Arc::new(std::sync::Barrier::new(carts.len()));
    let handles: Vec<_> = carts
        .into_iter()
        .map(|cart| {
            let (srv, barrier) = (srv.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let r = complete(&srv, &cart).expect("complete");
                (
                    r.status,
                    json(&r.body)["code"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    let mut by_status: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for h in handles {
        *by_status.entry(h.join().unwrap()).or_default() += 1;
    }
    assert_eq!(
        by_status.get(&(201, String::new())),
        Some(&50),
        "{by_status:?}"
    );
    assert_eq!(
        by_status.get(&(409, "out_of_stock".to_string())),
        Some(&150),
        "{by_status:?}"
    );
    assert_eq!(stock(&srv, &token, &pid), 0);
    assert_eq!(psql(&db, "SELECT count(*) FROM orders"), "50");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM outbox WHERE event_type = 'order.placed'"
        ),
        "50"
    );
}

/// NUL in a path or a cursor: PostgreSQL refuses even to compare text holding it, so
/// the engine answers before asking it, as SQLite would: no such product (404), a
/// tampered cursor (400).
#[test]
fn postgres_answers_nul_in_paths_and_cursors_as_sqlite_does() {
    let db = fresh_database(&postgres_admin_url());
    let srv = start_with(&data_dir("nul"), &env(&[("JANGTEO__DATABASE__URL", db)]));
    let token = login(&srv);
    let (status, body) = http(&srv.store, "GET", "/store/products/a%00b", None, None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = http(&srv.admin, "GET", "/admin/products/%00", Some(&token), None);
    assert_eq!(status, 404, "{body}");
    // {"key":"a\u0000","id":<uuid>} as the API encodes cursors (base64url, no padding).
    let cursor =
        "eyJrZXkiOiJhXHUwMDAwIiwiaWQiOiIwMWEyNDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAifQ";
    let (status, body) = http(
        &srv.store,
        "GET",
        &format!("/store/products?sort=handle&cursor={cursor}"),
        None,
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_cursor"), "{body}");
}

/// A double-clicked "place order" (and retries racing it, with and without the same
/// Idempotency-Key) on PostgreSQL: one order, stock taken once, every answer that order.
#[test]
fn postgres_one_cart_completed_twenty_times_at_once_is_one_order() {
    let db = fresh_database(&postgres_admin_url());
    let srv = start_with(
        &data_dir("one-cart"),
        &env(&[("JANGTEO__DATABASE__URL", db.clone())]),
    );
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "double-click", 10);
    let cart = ready_cart(&srv, &variant, 2);
    let srv = Arc::new(srv);
    let barrier = Arc::new(std::sync::Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (srv, barrier, cart) = (srv.clone(), barrier.clone(), cart.clone());
            thread::spawn(move || {
                let key: &[(&str, &str)] = if i % 2 == 0 {
                    &[]
                } else {
                    &[("Idempotency-Key", "double-click-1")]
                };
                barrier.wait();
                let r = try_http(
                    &srv.store,
                    "POST",
                    &format!("/store/carts/{cart}/complete"),
                    None,
                    Some(r#"{"payment":{"provider":"manual"}}"#),
                    key,
                )
                .expect("complete");
                assert_eq!(r.status, 201, "{}", r.body);
                json(&r.body)["id"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let ids: std::collections::BTreeSet<String> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "every answer is the one order: {ids:?}");
    assert_eq!(stock(&srv, &token, &pid), 8, "stock was taken once");
    assert_eq!(psql(&db, "SELECT count(*) FROM orders"), "1");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM outbox WHERE event_type = 'order.placed'"
        ),
        "1"
    );
}

/// Counts of what the consumers built, through the admin API.
fn consumer_totals(srv: &Server, token: &str) -> (usize, i64) {
    let (st, b) = http(
        &srv.admin,
        "GET",
        "/admin/notifications?limit=500",
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{b}");
    let notes = json(&b)["notifications"].as_array().unwrap().len();
    let today = chrono_today();
    let (st, b) = http(
        &srv.admin,
        "GET",
        &format!("/admin/stats/sales?from={today}&to={today}"),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{b}");
    let units = json(&b)["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["units"].as_i64().unwrap())
        .sum();
    (notes, units)
}

fn chrono_today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn kafka_stopped_while_200_orders_are_placed_loses_nothing() {
    let stack = Stack::up();
    let db = fresh_database(&stack.postgres);
    let srv = start_with(
        &data_dir("kafka-down"),
        &env(&[
            ("JANGTEO__DATABASE__URL", db.clone()),
            ("JANGTEO__EVENTS__KAFKA_BROKERS", stack.kafka.clone()),
            ("JANGTEO__EVENTS__MESSAGE_TIMEOUT_MS", "2000".to_string()),
            ("JANGTEO__EVENTS__RELAY_POLL_MS", "200".to_string()),
        ]),
    );
    let token = login(&srv);
    let (_, variant) = product(&srv, &token, "kafka-outage", 1000);
    // The pipeline is live: one order's two notifications arrive through Kafka.
    complete(&srv, &ready_cart(&srv, &variant, 1)).unwrap();
    eventually(60, "first order's events consumed", || {
        consumer_totals(&srv, &token) == (2, 1)
    });

    stack.stop("kafka");
    for _ in 0..200 {
        let r = complete(&srv, &ready_cart(&srv, &variant, 1)).unwrap();
        assert_eq!(
            r.status, 201,
            "orders are accepted while Kafka is down: {}",
            r.body
        );
    }
    let unsent: i64 = psql(&db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .parse()
        .unwrap();
    assert!(unsent >= 400, "events wait in the outbox: {unsent}");
    // Monitoring shows the outage: the backlog, its age, and the relay failing.
    eventually(60, "the outage in the metrics", || {
        let text = scrape(&srv.admin);
        let value = |name: &str| metric(&text, name, &[]).unwrap_or(0.0);
        value("jangteo_outbox_unsent") >= 400.0
            && value("jangteo_outbox_oldest_unsent_age_seconds") > 0.0
            && value("jangteo_outbox_relay_errors_total") >= 1.0
    });

    stack.start("kafka");
    eventually(180, "every event delivered and consumed once", || {
        let (notes, units) = consumer_totals(&srv, &token);
        assert!(
            notes <= 402 && units <= 201,
            "applied twice: {notes} {units}"
        );
        notes == 402 && units == 201
    });
    assert_eq!(
        psql(&db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        "0"
    );
    let text = scrape(&srv.admin);
    assert_eq!(metric(&text, "jangteo_outbox_unsent", &[]), Some(0.0));
    assert_eq!(
        metric(&text, "jangteo_outbox_oldest_unsent_age_seconds", &[]),
        Some(0.0)
    );
    // Each consumer recorded each event it applied exactly once.
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM processed_events WHERE consumer = 'sales-statistics'"
        ),
        "201"
    );
    // The notifications consumer's record is the message itself (the store notifier
    // keeps one per event and channel, so it writes no separate applied mark): one
    // message for each of the 402 events, none twice.
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) || '/' || count(DISTINCT (event_id, channel)) FROM notifications"
        ),
        "402/402"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM processed_events WHERE consumer = 'notifications'"
        ),
        "0"
    );
    // Nothing more arrives later (no duplicate application after a rebalance).
    thread::sleep(Duration::from_secs(2));
    assert_eq!(consumer_totals(&srv, &token), (402, 201));
}

#[test]
fn redis_stopped_reads_and_logins_keep_working() {
    let stack = Stack::up();
    let db = fresh_database(&stack.postgres);
    let srv = start_with(
        &data_dir("redis-down"),
        &env(&[
            ("JANGTEO__DATABASE__URL", db),
            ("JANGTEO__CACHE__URL", stack.redis.clone()),
            ("JANGTEO__AUTH__LOGIN_LIMIT", "3".to_string()),
        ]),
    );
    let reg = r#"{"email":"buyer@example.com","password":"buyer-password-1"}"#;
    let (st, b) = http(&srv.store, "POST", "/store/auth/register", None, Some(reg));
    assert!(st == 201 || st == 200, "{st} {b}");
    let (st, _) = http(&srv.store, "GET", "/store/products?limit=5", None, None);
    assert_eq!(st, 200);

    stack.stop("redis");
    let started = Instant::now();
    for _ in 0..20 {
        let (st, b) = http(&srv.store, "GET", "/store/products?limit=5", None, None);
        assert_eq!(st, 200, "{b}");
        let (st, b) = http(
            &srv.store,
            "GET",
            "/store/products/red-ginseng-stick-30",
            None,
            None,
        );
        assert_eq!(st, 200, "{b}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a dead Redis must not stall reads: {:?}",
        started.elapsed()
    );
    let (st, b) = http(&srv.store, "POST", "/store/auth/login", None, Some(reg));
    assert_eq!(st, 200, "login works without Redis: {b}");
    // Rate limiting degrades to per-instance counting; it still limits.
    let wrong = r#"{"email":"buyer@example.com","password":"not-the-password"}"#;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(http(&srv.store, "POST", "/store/auth/login", None, Some(wrong)).0);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Monitoring shows it: Redis down, operations failed or skipped by the breaker.
    let text = scrape(&srv.admin);
    assert_eq!(metric(&text, "jangteo_redis_up", &[]), Some(0.0), "{text}");
    assert!(metric(&text, "jangteo_redis_failures_total", &[]).unwrap_or(0.0) >= 1.0);

    stack.start("redis");
    eventually(10, "reads after Redis returns", || {
        http(&srv.store, "GET", "/store/products?limit=5", None, None).0 == 200
    });
    let mut page = 0;
    eventually(30, "Redis up again in the metrics", || {
        // A listing not cached in the process asks Redis (once the breaker's
        // cool-down allows a try).
        page += 1;
        let uri = format!("/store/products?limit={}", 10 + page % 90);
        let _ = http(&srv.store, "GET", &uri, None, None);
        metric(&scrape(&srv.admin), "jangteo_redis_up", &[]) == Some(1.0)
    });
}

#[test]
fn postgres_restarted_under_load_heals_without_a_restart() {
    let stack = Stack::up();
    let db = fresh_database(&stack.postgres);
    let srv = Arc::new(start_with(
        &data_dir("pg-restart"),
        &env(&[("JANGTEO__DATABASE__URL", db.clone())]),
    ));
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "restart-load", 100_000);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (status, Retry-After, when) of every answered request.
    type Seen = Vec<(u16, Option<String>, Instant)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (srv, stop, seen, variant) =
                (srv.clone(), stop.clone(), seen.clone(), variant.clone());
            thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let record = |r: std::io::Result<Response>| {
                        if let Ok(r) = r {
                            seen.lock().unwrap().push((r.status, r.header("retry-after"), Instant::now()));
                            Some(r)
                        } else {
                            None
                        }
                    };
                    record(try_http(&srv.store, "GET", "/store/products?limit=5", None, None, &[]));
                    let cart = record(try_http(
                        &srv.store,
                        "POST",
                        "/store/carts",
                        None,
                        Some(r#"{"country":"KR","currency":"KRW","locale":"ko"}"#),
                        &[],
                    ));
                    let Some(cart) = cart.filter(|r| r.status == 201) else {
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let id = json(&cart.body)["id"].as_str().unwrap().to_string();
                    let line = format!(r#"{{"variant_id":"{variant}","quantity":1}}"#);
                    record(try_http(&srv.store, "POST", &format!("/store/carts/{id}/line-items"), None, Some(&line), &[]));
                    let contact = r#"{"email":"buyer@example.com","shipping_address":{"name":"김민지","line1":"세종대로 110","city":"서울","postal_code":"04524","country":"KR","phone":"+82 10-1234-5678"}}"#;
                    record(try_http(&srv.store, "PATCH", &format!("/store/carts/{id}"), None, Some(contact), &[]));
                    record(complete(&srv, &id));
                }
            })
        })
        .collect();

    thread::sleep(Duration::from_secs(2));
    stack.stop("postgres");
    let down_at = Instant::now();
    // Monitoring sees the gap (the scrape itself answers, within its 3 s bound).
    let text = scrape(&srv.admin);
    assert_eq!(metric(&text, "jangteo_database_up", &[]), Some(0.0));
    thread::sleep(Duration::from_secs(3).saturating_sub(down_at.elapsed()));
    stack.start("postgres");
    let up_at = Instant::now();
    eventually(30, "ready again after the restart", || {
        http(&srv.store, "GET", "/health/ready", None, None).0 == 200
    });
    assert_eq!(
        metric(&scrape(&srv.admin), "jangteo_database_up", &[]),
        Some(1.0)
    );
    thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }

    let seen = seen.lock().unwrap();
    let server_errors: Vec<_> = seen.iter().filter(|(s, _, _)| *s == 500).collect();
    assert!(server_errors.is_empty(), "500s: {}", server_errors.len());
    let unavailable: Vec<_> = seen.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!unavailable.is_empty(), "requests in the gap answer 503");
    assert!(
        unavailable.iter().all(|(_, ra, _)| ra.is_some()),
        "every 503 carries Retry-After"
    );
    assert!(
        seen.iter().any(|(s, _, t)| *s == 201 && *t > up_at),
        "checkouts succeed after the restart"
    );
    assert!(
        seen.iter().any(|(s, _, t)| *s == 201 && *t < down_at),
        "checkouts succeeded before the restart"
    );
    // No half-written order: stock taken equals units ordered, and every order has its
    // order.placed event.
    let left = stock(&srv, &token, &pid);
    let ordered: i64 = psql(
        &db,
        "SELECT COALESCE(sum((l->>'quantity')::bigint), 0) FROM orders, jsonb_array_elements(doc->'lines') l WHERE status <> 'canceled'",
    )
    .parse()
    .unwrap();
    assert_eq!(left + ordered, 100_000);
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_id = o.id::text AND e.event_type = 'order.placed')"
        ),
        "0"
    );
}

/// A PostgreSQL that stops answering without refusing (SIGSTOP: as behind a network
/// partition, connections hang instead of failing): the health probe and the metrics
/// say so within seconds, a checkout in the gap gets an answer that is not a 500, and
/// once the database runs on, the retried checkout is one whole order.
#[test]
fn postgres_that_stops_answering_is_reported_at_once_and_heals() {
    let stack = Stack::up();
    let db = fresh_database(&stack.postgres);
    let srv = start_with(
        &data_dir("pg-frozen"),
        &env(&[
            ("JANGTEO__DATABASE__URL", db.clone()),
            // A request stuck on the silent database ends as 408 after this long.
            ("JANGTEO__SERVER__REQUEST_TIMEOUT_SECS", "5".to_string()),
        ]),
    );
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "silent-db", 100);
    let first = ready_cart(&srv, &variant, 1);
    assert_eq!(complete(&srv, &first).unwrap().status, 201);
    let cart = ready_cart(&srv, &variant, 2);
    let place = |srv: &Server| {
        complete_with(srv, &cart, &[("Idempotency-Key", "silent-db-1")])
            .expect("an answer to the checkout")
    };

    stack.freeze_postgres();
    let started = Instant::now();
    let probe = try_http(&srv.store, "GET", "/health/ready", None, None, &[]).unwrap();
    assert_eq!(probe.status, 503, "{probe:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the probe waited {:?} for a silent database",
        started.elapsed()
    );
    assert!(probe.header("retry-after").is_some(), "{probe:?}");
    assert!(
        probe
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/problem+json"),
        "{probe:?}"
    );
    let started = Instant::now();
    let text = scrape(&srv.admin);
    assert_eq!(
        metric(&text, "jangteo_database_up", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let in_gap = place(&srv);
    assert!(
        matches!(in_gap.status, 408 | 503),
        "a checkout against a silent database: {in_gap:?}"
    );
    assert!(
        in_gap
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/problem+json"),
        "{in_gap:?}"
    );

    stack.thaw_postgres();
    eventually(30, "ready once the database answers again", || {
        http(&srv.store, "GET", "/health/ready", None, None).0 == 200
    });
    assert_eq!(
        metric(&scrape(&srv.admin), "jangteo_database_up", &[]),
        Some(1.0)
    );
    let retried = place(&srv);
    assert_eq!(retried.status, 201, "{retried:?}");
    // Whatever the request in the gap got as far as, the cart is one order, its stock
    // taken once, with its event.
    assert_eq!(
        psql(
            &db,
            &format!("SELECT count(*) FROM orders WHERE cart_id = '{cart}'")
        ),
        "1"
    );
    assert_eq!(stock(&srv, &token, &pid), 100 - 1 - 2);
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_id = o.id::text AND e.event_type = 'order.placed')"
        ),
        "0"
    );
}

#[test]
fn sigkill_mid_checkout_leaves_whole_orders_or_nothing() {
    let db = fresh_database(&postgres_admin_url());
    let dir = data_dir("sigkill");
    let vars = env(&[("JANGTEO__DATABASE__URL", db.clone())]);
    let srv = start_with(&dir, &vars);
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "killed-mid-checkout", 1000);
    let carts: Vec<String> = (0..80).map(|_| ready_cart(&srv, &variant, 2)).collect();
    let store = srv.store.clone();
    let handles: Vec<_> = carts
        .into_iter()
        .map(|cart| {
            let store = store.clone();
            thread::spawn(move || {
                let _ = try_http(
                    &store,
                    "POST",
                    &format!("/store/carts/{cart}/complete"),
                    None,
                    Some(r#"{"payment":{"provider":"manual"}}"#),
                    &[],
                );
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(60));
    let mut srv = srv;
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    for h in handles {
        h.join().unwrap();
    }
    drop(srv);

    let srv = start_with(&dir, &vars);
    let token = login(&srv);
    let orders: i64 = psql(&db, "SELECT count(*) FROM orders").parse().unwrap();
    let left = stock(&srv, &token, &pid);
    let reserved: i64 = psql(
        &db,
        "SELECT COALESCE(sum((l->>'quantity')::bigint), 0) FROM orders, jsonb_array_elements(doc->'lines') l WHERE status <> 'canceled'",
    )
    .parse()
    .unwrap();
    assert_eq!(
        left + reserved,
        1000,
        "every unit is on the shelf or in an order ({orders} orders)"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_id = o.id::text AND e.event_type = 'order.placed')"
        ),
        "0",
        "every order has its event"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM outbox e WHERE e.event_type = 'order.placed' AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id::text = e.aggregate_id)"
        ),
        "0",
        "no event without its order"
    );
    // Orders caught between reservation and payment wait as pending with their stock
    // held; the expiry sweeper releases them (tested in the HTTP suite).
    let states = psql(&db, "SELECT string_agg(DISTINCT status, ',') FROM orders");
    assert!(
        states
            .split(',')
            .all(|s| s == "paid" || s == "pending" || s.is_empty()),
        "{states}"
    );
}

#[test]
fn a_server_and_a_worker_started_before_postgres_heal_when_it_answers() {
    let stack = Stack::up();
    stack.stop("postgres");
    let prefix = format!("late{}.", uuid_ish());
    let vars = env(&[
        ("JANGTEO__DATABASE__URL", stack.postgres.clone()),
        ("JANGTEO__EVENTS__KAFKA_BROKERS", stack.kafka.clone()),
        ("JANGTEO__EVENTS__TOPIC_PREFIX", prefix.clone()),
        ("JANGTEO__EVENTS__GROUP_PREFIX", prefix),
        ("JANGTEO__EVENTS__RELAY_POLL_MS", "100".to_string()),
    ]);
    // The API server does not relay: only the worker, started while the database is
    // down, can deliver the events.
    let mut api_vars = vars.clone();
    api_vars.push(("JANGTEO__EVENTS__RUN_WORKERS", "false".to_string()));
    let srv = start_with(&data_dir("pg-late"), &api_vars);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jangteo"));
    cmd.arg("worker")
        .env("JANGTEO__SERVER__DATA_DIR", data_dir("pg-late-worker"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    let _worker = Kill(cmd.spawn().expect("start jangteo worker"));

    let r = try_http(&srv.store, "GET", "/health/ready", None, None, &[]).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    let r = try_http(&srv.store, "GET", "/store/products", None, None, &[]).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(http(&srv.store, "GET", "/health/live", None, None).0, 200);
    thread::sleep(Duration::from_secs(2));
    stack.start("postgres");
    eventually(30, "ready once PostgreSQL answers", || {
        http(&srv.store, "GET", "/health/ready", None, None).0 == 200
    });
    // Migrations ran and the demo catalog was loaded after the fact.
    eventually(30, "demo catalog loaded", || {
        let (st, b) = http(&srv.store, "GET", "/store/products?limit=5", None, None);
        st == 200
            && json(&b)["products"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
    });
    let token = login(&srv);
    // The worker healed too: it relays an order's events and its consumers apply them.
    let (_, variant) = product(&srv, &token, "after-the-outage", 5);
    let r = complete(&srv, &ready_cart(&srv, &variant, 1)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    eventually(60, "the worker delivered the order's events", || {
        consumer_totals(&srv, &token) == (2, 1)
    });
}

/// Collects the ids of order events it sees.
#[derive(Debug, Default)]
struct Collect(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl jangteo_core::events::EventHandler for Collect {
    fn name(&self) -> &str {
        "test-collector"
    }
    fn wants(&self, event_type: &str) -> bool {
        event_type.starts_with("order.")
    }
    async fn handle(
        &self,
        event: &jangteo_core::events::DomainEvent,
    ) -> jangteo_core::CoreResult<()> {
        self.0.lock().unwrap().push(event.id.to_string());
        Ok(())
    }
}

/// Kills a child process on drop.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jangteo worker` (relay and consumers only) with these settings.
fn worker(vars: &[(&'static str, String)], tag: &str) -> Kill {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jangteo"));
    cmd.arg("worker")
        .env("JANGTEO__SERVER__DATA_DIR", data_dir(tag))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Kill(cmd.spawn().expect("start jangteo worker"))
}

/// The shared test broker (started by ./scripts/test).
fn kafka_brokers() -> String {
    std::env::var("JANGTEO_TEST_KAFKA_BROKERS").expect(
        "JANGTEO_TEST_KAFKA_BROKERS is not set: run ./scripts/test, or `scripts/stack up` and source its env",
    )
}

/// A split deployment on a fresh database and topics of its own: an API-only server
/// (`events.run_workers = false`) and the settings for `jangteo worker`s beside it.
struct Split {
    db: String,
    brokers: String,
    prefix: String,
    vars: Vec<(&'static str, String)>,
    srv: Server,
}

fn split_deployment(tag: &str) -> Split {
    let brokers = kafka_brokers();
    let db = fresh_database(&postgres_admin_url());
    let prefix = format!("{tag}{}.", uuid_ish());
    let vars = env(&[
        ("JANGTEO__DATABASE__URL", db.clone()),
        ("JANGTEO__EVENTS__KAFKA_BROKERS", brokers.clone()),
        ("JANGTEO__EVENTS__TOPIC_PREFIX", prefix.clone()),
        ("JANGTEO__EVENTS__GROUP_PREFIX", prefix.clone()),
        ("JANGTEO__EVENTS__RELAY_POLL_MS", "100".to_string()),
    ]);
    let mut api_vars = vars.clone();
    api_vars.push(("JANGTEO__EVENTS__RUN_WORKERS", "false".to_string()));
    let srv = start_with(&data_dir(&format!("{tag}-api")), &api_vars);
    Split {
        db,
        brokers,
        prefix,
        vars,
        srv,
    }
}

#[test]
fn two_workers_and_a_server_publish_each_event_once() {
    // The API process does not relay; two workers compete for the outbox lease.
    let Split {
        db,
        brokers,
        prefix,
        vars,
        srv,
    } = split_deployment("w");
    // Each worker serves its metrics and health checks on a listener of its own.
    let ports: Vec<std::net::SocketAddr> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let workers: Vec<Kill> = (0..2)
        .map(|i| {
            let mut vars = vars.clone();
            vars.push(("JANGTEO__SERVER__METRICS_ADDR", ports[i].to_string()));
            worker(&vars, &format!("worker{i}"))
        })
        .collect();
    let token = login(&srv);
    let (_, variant) = product(&srv, &token, "split-deploy", 100);
    for _ in 0..30 {
        let r = complete(&srv, &ready_cart(&srv, &variant, 1)).unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }
    eventually(
        90,
        "the workers' consumers applied every order event",
        || consumer_totals(&srv, &token) == (60, 30),
    );
    assert_eq!(
        psql(&db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
        "0"
    );
    // Between them the workers published every row, and their consumers applied the
    // order events (the API server, run_workers = false, records neither).
    let (mut published, mut applied) = (0.0, 0.0);
    for p in &ports {
        let base = format!("http://{p}");
        assert_eq!(http(&base, "GET", "/health/ready", None, None).0, 200);
        let text = scrape(&base);
        published += metric(&text, "jangteo_outbox_published_total", &[]).unwrap_or(0.0);
        applied += metric(
            &text,
            "jangteo_events_applied_total",
            &[("handler", "sales-statistics")],
        )
        .unwrap_or(0.0);
    }
    let rows: f64 = psql(&db, "SELECT count(*) FROM outbox").parse().unwrap();
    assert!(published >= rows, "published {published} of {rows} rows");
    assert!(
        applied >= 30.0,
        "sales statistics applied {applied} order.paid events"
    );
    let api = scrape(&srv.admin);
    assert_eq!(metric(&api, "jangteo_outbox_published_total", &[]), None);

    // Read the orders topic from the start with a fresh group: every event once.
    let collect = Arc::new(Collect::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut settings = jangteo_kafka::KafkaSettings::new(brokers);
        settings.topic_prefix = prefix.clone();
        settings.group_prefix = format!("{prefix}check.");
        let consumer = jangteo_kafka::KafkaConsumer::new(&settings, collect.clone()).unwrap();
        let seen = collect.clone();
        let stop = async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.0.lock().unwrap().len() < 60 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Anything published twice would arrive right behind the rest.
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        consumer.run(stop).await;
    });
    let ids = collect.0.lock().unwrap().clone();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 60, "every order event reached Kafka");
    assert_eq!(ids.len(), 60, "and none twice");
    drop(workers);
}

/// A rolling restart of the relay: the worker stopped with SIGTERM gives the outbox
/// lease up on its way out, so its replacement publishes at once instead of holding
/// every event back until the old lease runs out; a worker killed with SIGKILL leaves
/// a lease that runs out within 10 s.
#[test]
fn a_stopped_or_killed_worker_hands_the_relay_over() {
    let Split { db, vars, srv, .. } = split_deployment("handover");
    let token = login(&srv);
    let (_, variant) = product(&srv, &token, "relay-handover", 100);
    let unsent = || psql(&db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL");
    let place = |n: usize| {
        for _ in 0..n {
            let r = complete(&srv, &ready_cart(&srv, &variant, 1)).unwrap();
            assert_eq!(r.status, 201, "{}", r.body);
        }
    };

    let mut old = worker(&vars, "handover-old");
    place(3);
    eventually(60, "the first worker published", || unsent() == "0");
    let lease = "SELECT count(*) FROM outbox_leases WHERE name = 'relay'";
    assert_eq!(psql(&db, lease), "1", "the first worker holds the lease");

    let status = terminate(&mut old.0);
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        psql(&db, lease),
        "0",
        "a worker that stops gives the relay lease up"
    );

    place(3);
    let mut new = worker(&vars, "handover-new");
    eventually(60, "the replacement published the new events", || {
        unsent() == "0"
    });

    // A worker killed outright cannot give the lease up: it runs out. The lease is
    // short (renewed while a batch waits for the broker), so the one left behind
    // expires within 10 s, and a replacement then publishes.
    let left = "SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM outbox_leases WHERE name = 'relay'";
    eventually(30, "the replacement holds the lease", || {
        !psql(&db, left).is_empty()
    });
    new.0.kill().unwrap();
    new.0.wait().unwrap();
    let remaining: f64 = psql(&db, left).parse().unwrap();
    assert!(
        remaining <= 10.0,
        "a dead relay's lease runs {remaining} s more"
    );
    place(3);
    let _third = worker(&vars, "handover-third");
    eventually(
        60,
        "the third worker published after the lease ran out",
        || unsent() == "0",
    );
}

/// A product's English title as the store serves it (through its caches).
fn english_title(srv: &Server, handle: &str) -> String {
    let (st, body) = http(
        &srv.store,
        "GET",
        &format!("/store/products/{handle}?locale=en"),
        None,
        None,
    );
    assert_eq!(st, 200, "{body}");
    json(&body)["title"].as_str().unwrap().to_string()
}

#[test]
fn an_admin_change_on_the_back_office_shows_in_the_store_within_a_second() {
    let brokers = kafka_brokers();
    let redis = std::env::var("JANGTEO_TEST_REDIS_URL").expect(
        "JANGTEO_TEST_REDIS_URL is not set: run ./scripts/test, or `scripts/stack up` and source its env",
    );
    let db = fresh_database(&postgres_admin_url());
    let prefix = format!("c{}.", uuid_ish());
    let vars = env(&[
        ("JANGTEO__DATABASE__URL", db),
        ("JANGTEO__CACHE__URL", redis),
        ("JANGTEO__CACHE__PREFIX", prefix.clone()),
        // Long enough that only invalidation can explain a fresh read.
        ("JANGTEO__CACHE__TTL_SECS", "300".to_string()),
        ("JANGTEO__ENGINE__CATALOG_CACHE_MS", "60000".to_string()),
        ("JANGTEO__EVENTS__KAFKA_BROKERS", brokers),
        ("JANGTEO__EVENTS__TOPIC_PREFIX", prefix.clone()),
        ("JANGTEO__EVENTS__GROUP_PREFIX", prefix.clone()),
        ("JANGTEO__EVENTS__RELAY_POLL_MS", "100".to_string()),
    ]);
    // The split deployment of deploy.md: a back-office service edits, a store service
    // (no admin listener) serves buyers from its caches.
    let a = common::start_args(&data_dir("cache-a"), &vars, &["--apis", "admin"]);
    let b = common::start_args(&data_dir("cache-b"), &vars, &["--apis", "store"]);
    assert!(a.store.is_empty() && b.admin.is_empty());
    let token = login(&a);
    let (pid, _) = product(&a, &token, "cache-visible", 5);
    let title = |srv: &Server| english_title(srv, "cache-visible");
    // Warm both instances' caches (and Redis), then wait until B's catalog consumer has
    // joined its group, which a first product event reaching B proves.
    assert_eq!(title(&b), "Hanbit Red Ginseng Stick");
    let patch = |t: &str| {
        let body = serde_json::json!({"title": {"en": t}}).to_string();
        let (st, b) = http(
            &a.admin,
            "PATCH",
            &format!("/admin/products/{pid}"),
            Some(&token),
            Some(&body),
        );
        assert_eq!(st, 200, "{b}");
    };
    // A fresh consumer group starts at the latest offset once partitions are assigned,
    // which takes a few seconds; changes before that reach B only through its TTL.
    let joined = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let t = format!("Warm-up {n}");
        patch(&t);
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(1500) && title(&b) != t {
            thread::sleep(Duration::from_millis(50));
        }
        if title(&b) == t {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(60),
            "B never consumed a catalog event"
        );
    }
    patch("Renamed on A");
    let changed = Instant::now();
    eventually(5, "the change visible on B", || title(&b) == "Renamed on A");
    let took = changed.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "visible on B after {took:?}"
    );
}

/// Several instances on one PostgreSQL and one Redis without Kafka: catalog events
/// reach only the instance that holds the outbox lease, so the others follow the
/// shared cache's generations; a change made on one is served by the other within a
/// second, although each keeps pages in process for a minute.
#[test]
fn without_kafka_a_change_on_one_instance_shows_on_another_within_a_second() {
    let redis = std::env::var("JANGTEO_TEST_REDIS_URL").expect(
        "JANGTEO_TEST_REDIS_URL is not set: run ./scripts/test, or `scripts/stack up` and source its env",
    );
    let db = fresh_database(&postgres_admin_url());
    let prefix = format!("n{}.", uuid_ish());
    let vars = env(&[
        ("JANGTEO__DATABASE__URL", db),
        ("JANGTEO__CACHE__URL", redis),
        ("JANGTEO__CACHE__PREFIX", prefix),
        // Long enough that only invalidation can explain a fresh read.
        ("JANGTEO__CACHE__TTL_SECS", "300".to_string()),
        ("JANGTEO__ENGINE__CATALOG_CACHE_MS", "60000".to_string()),
    ]);
    let a = common::start_args(&data_dir("nokafka-a"), &vars, &["--apis", "admin"]);
    let token = login(&a);
    let (pid, _) = product(&a, &token, "no-kafka-visible", 5);
    // A relays its own first events and so holds the lease: B, started after, never
    // sees a catalog event.
    thread::sleep(Duration::from_secs(1));
    let b = common::start_args(&data_dir("nokafka-b"), &vars, &["--apis", "store"]);
    let title = |srv: &Server| english_title(srv, "no-kafka-visible");
    assert_eq!(title(&b), "Hanbit Red Ginseng Stick");
    for round in 1..=3 {
        let t = format!("Renamed on A, round {round}");
        let body = serde_json::json!({"title": {"en": t}}).to_string();
        let (st, resp) = http(
            &a.admin,
            "PATCH",
            &format!("/admin/products/{pid}"),
            Some(&token),
            Some(&body),
        );
        assert_eq!(st, 200, "{resp}");
        let changed = Instant::now();
        eventually(5, "the change visible on B", || title(&b) == t);
        let took = changed.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "round {round}: visible on B after {took:?}"
        );
        // B's copy is cached again before the next change.
        assert_eq!(title(&b), t);
    }
}

#[test]
fn product_edits_during_checkouts_never_undo_a_stock_decrement() {
    let db = fresh_database(&postgres_admin_url());
    let srv = Arc::new(start_with(
        &data_dir("edit-race"),
        &env(&[("JANGTEO__DATABASE__URL", db.clone())]),
    ));
    let token = login(&srv);
    let (pid, variant) = product(&srv, &token, "edited-while-sold", 50);
    let carts: Vec<String> = (0..100).map(|_| ready_cart(&srv, &variant, 1)).collect();
    let barrier = Arc::new(std::sync::Barrier::new(carts.len() + 4));
    let mut handles: Vec<thread::JoinHandle<u16>> = carts
        .into_iter()
        .map(|cart| {
            let (srv, barrier) = (srv.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                complete(&srv, &cart).expect("complete").status
            })
        })
        .collect();
    // Operators rename the product while buyers check out: each save writes the
    // variant rows back, which must not restore stock a checkout just took.
    for n in 0..4 {
        let (srv, barrier, token, pid) = (srv.clone(), barrier.clone(), token.clone(), pid.clone());
        handles.push(thread::spawn(move || {
            barrier.wait();
            for i in 0..10 {
                let body =
                    serde_json::json!({"title": {"en": format!("Renamed {n}-{i}")}}).to_string();
                let r = try_http(
                    &srv.admin,
                    "PATCH",
                    &format!("/admin/products/{pid}"),
                    Some(&token),
                    Some(&body),
                    &[],
                )
                .expect("patch");
                assert_eq!(r.status, 200, "{}", r.body);
            }
            0
        }));
    }
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 50, "{statuses:?}");
    assert_eq!(stock(&srv, &token, &pid), 0);
    assert_eq!(psql(&db, "SELECT count(*) FROM orders"), "50");

    // Text PostgreSQL cannot store (NUL) is the client's error, not a 500.
    let (_, other) = product(&srv, &token, "nul-check", 5);
    let cart = ready_cart(&srv, &other, 1);
    let bad = r#"{"email":"buyer@example.com","shipping_address":{"name":"Kim\u0000","line1":"x","city":"Seoul","postal_code":"04524","country":"KR","phone":"+82 10-1234-5678"}}"#;
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{cart}"),
        None,
        Some(bad),
    );
    assert!((400..500).contains(&st), "{st} {b}");
}
