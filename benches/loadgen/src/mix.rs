//! `loadgen mix`: N virtual users, each looping browse -> cart -> checkout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Method;

use crate::client::{client, encode_query, send, HttpClient, Rng};
use crate::stats::{self, Outcome, StepStats};

/// Which part of the shopper's loop each user runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Flow {
    /// list -> product -> create cart -> add line -> address -> complete.
    Full,
    /// create cart -> add line (measures cart flows alone).
    Cart,
    /// create cart -> add line -> address -> complete (no browsing).
    Checkout,
    /// `complete` alone: each user first fills `--prepared` carts (create, add line,
    /// address; not timed), then the clock starts and it completes them.
    Complete,
}

/// Settings of a mix run.
#[derive(Debug)]
pub(crate) struct MixArgs {
    pub(crate) store: String,
    pub(crate) users: usize,
    pub(crate) duration: Duration,
    pub(crate) flow: Flow,
    pub(crate) min_stock: i64,
    pub(crate) pool_pages: usize,
    pub(crate) timeout: Duration,
    pub(crate) json: Option<PathBuf>,
    pub(crate) seed: u64,
    /// Carts each user fills before the clock starts (`Flow::Complete`).
    pub(crate) prepared: usize,
}

const STEPS: [&str; 6] = [
    "list",
    "product",
    "cart_create",
    "add_line",
    "update_cart",
    "complete",
];
const LIST: usize = 0;
const PRODUCT: usize = 1;
const CART_CREATE: usize = 2;
const ADD_LINE: usize = 3;
const UPDATE_CART: usize = 4;
const COMPLETE: usize = 5;

/// A variant that can be bought many times over.
#[derive(Debug, Clone)]
struct Candidate {
    product_id: String,
    variant_id: String,
}

#[derive(Debug)]
struct Ctx {
    store: String,
    flow: Flow,
    timeout: Duration,
    pool: Vec<Candidate>,
    run_id: u64,
}

#[derive(Debug, Default)]
struct UserStats {
    steps: [StepStats; 6],
    flows: u64,
    orders: u64,
}

/// Reads the catalog listing (`available_quantity` of each variant) and keeps the
/// variants with at least `min_stock` units and a KRW price.
async fn build_pool(c: &HttpClient, a: &MixArgs) -> Result<(Vec<Candidate>, usize, usize), String> {
    let mut pool = Vec::new();
    let mut cursor: Option<String> = None;
    let mut products = 0;
    let mut variants = 0;
    for _ in 0..a.pool_pages.max(1) {
        let mut uri = format!("{}/store/products?limit=100", a.store);
        if let Some(cur) = &cursor {
            uri.push_str("&cursor=");
            uri.push_str(&encode_query(cur));
        }
        let r = send(c, Method::GET, &uri, &[], None, a.timeout)
            .await
            .map_err(|e| format!("GET {uri}: {e}"))?;
        if !r.is_success() {
            return Err(format!(
                "GET {uri}: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        let v = r.json().ok_or_else(|| format!("GET {uri}: not JSON"))?;
        for p in v["products"].as_array().into_iter().flatten() {
            products += 1;
            let Some(pid) = p["id"].as_str() else {
                continue;
            };
            for var in p["variants"].as_array().into_iter().flatten() {
                variants += 1;
                let stock = var["available_quantity"].as_i64().unwrap_or(0);
                let krw = var["prices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["currency"] == "KRW");
                if let (true, true, Some(vid)) = (stock >= a.min_stock, krw, var["id"].as_str()) {
                    pool.push(Candidate {
                        product_id: pid.to_string(),
                        variant_id: vid.to_string(),
                    });
                }
            }
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    Ok((pool, products, variants))
}

pub(crate) async fn run(a: MixArgs) -> Result<(), String> {
    let setup = client();
    let (pool, products, variants) = build_pool(&setup, &a).await?;
    if pool.is_empty() {
        return Err(format!(
            "no variant with >= {} units in stock and a KRW price among {products} products; \
             run `loadgen seed` first",
            a.min_stock
        ));
    }
    drop(setup);
    println!(
        "loadgen mix: {} users, {:?}, flow {:?}, target {}",
        a.users, a.duration, a.flow, a.store
    );
    println!(
        "  pool: {} variants with >= {} in stock (of {variants} variants, {products} products read)",
        pool.len(),
        a.min_stock
    );
    let ctx = Arc::new(Ctx {
        store: a.store.clone(),
        flow: a.flow,
        timeout: a.timeout,
        pool,
        run_id: a.seed,
    });
    let mut carts = Vec::new();
    if a.flow == Flow::Complete {
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(a.users);
        for ix in 0..a.users {
            tasks.push(tokio::spawn(prepare(ix as u64, ctx.clone(), a.prepared)));
        }
        for t in tasks {
            carts.push(t.await.map_err(|e| format!("a user task failed: {e}"))?);
        }
        let n: usize = carts.iter().map(Vec::len).sum();
        println!(
            "  prepared {n} carts (create, add line, address) in {:.1} s; now timing `complete` alone",
            t0.elapsed().as_secs_f64()
        );
        if n < a.users * a.prepared {
            return Err(format!(
                "only {n} of {} carts could be prepared; is the server healthy?",
                a.users * a.prepared
            ));
        }
    }
    let started = Instant::now();
    let deadline = started + a.duration;
    let mut tasks = Vec::with_capacity(a.users);
    let mut carts = carts.into_iter();
    for ix in 0..a.users {
        let ctx = ctx.clone();
        let mine = carts.next().unwrap_or_default();
        tasks.push(tokio::spawn(user(ix as u64, ctx, deadline, mine)));
    }
    let mut total = UserStats::default();
    for t in tasks {
        let u = t.await.map_err(|e| format!("a user task failed: {e}"))?;
        for (i, s) in u.steps.into_iter().enumerate() {
            total.steps[i].merge(s);
        }
        total.flows += u.flows;
        total.orders += u.orders;
    }
    let secs = started.elapsed().as_secs_f64();
    if a.flow == Flow::Complete && secs + 0.05 < a.duration.as_secs_f64() {
        println!(
            "  note: the prepared carts ran out after {secs:.2} s (of {:?}); rates are over that time. Raise --prepared.",
            a.duration
        );
    }

    println!("  elapsed {secs:.2} s");
    stats::print_header();
    let mut steps_json = serde_json::Map::new();
    let mut oos = 0;
    let mut errors = 0;
    for (i, name) in STEPS.iter().enumerate() {
        if total.steps[i].count == 0 {
            continue;
        }
        let s = total.steps[i].summary(secs);
        stats::print_row(name, &s);
        oos += s.out_of_stock;
        errors += s.errors;
        steps_json.insert(name.to_string(), s.to_json());
    }
    let flows_s = total.flows as f64 / secs;
    let orders_s = total.orders as f64 / secs;
    if a.flow != Flow::Complete {
        println!(
            "flows (cart create + add line): {} = {flows_s:.1} flows/s",
            total.flows
        );
    }
    if a.flow != Flow::Cart {
        println!(
            "orders (completed carts):       {} = {orders_s:.1} orders/s",
            total.orders
        );
    }
    println!("errors: {errors}   409 out_of_stock: {oos}");
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "mode": "mix",
            "flow": format!("{:?}", a.flow).to_lowercase(),
            "users": a.users,
            "elapsed_s": stats::round2(secs),
            "steps": steps_json,
            "flows": total.flows,
            "flows_per_s": stats::round2(flows_s),
            "orders": total.orders,
            "orders_per_s": stats::round2(orders_s),
            "errors": errors,
            "out_of_stock": oos,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Fills `n` carts for one user (create, add line, address), untimed; the ids and the
/// loop number each was filled in (for the idempotency key).
async fn prepare(ix: u64, ctx: Arc<Ctx>, n: usize) -> Vec<(String, u64)> {
    let c = client();
    let mut rng = Rng::new(ctx.run_id ^ (ix << 20) ^ 0x5eed);
    let mut st = UserStats::default();
    let mut out = Vec::with_capacity(n);
    let mut iter = 0u64;
    // A few failures are tolerated; a server that fails most requests ends the run.
    while out.len() < n && iter < 2 * n as u64 + 10 {
        iter += 1;
        if let Ok(id) = fill_cart(&c, &ctx, &mut rng, &mut st, ix, iter).await {
            out.push((id, iter));
        }
    }
    out
}

/// One virtual user: its own keep-alive connection, one request at a time. With
/// prepared carts (`Flow::Complete`) it completes them until they or the time run out.
async fn user(ix: u64, ctx: Arc<Ctx>, deadline: Instant, carts: Vec<(String, u64)>) -> UserStats {
    let c = client();
    let mut rng = Rng::new(ctx.run_id ^ (ix << 20) ^ 0x5eed);
    let mut st = UserStats::default();
    if ctx.flow == Flow::Complete {
        for (cart_id, iter) in carts {
            if Instant::now() >= deadline {
                break;
            }
            if complete(&c, &ctx, &mut st, &cart_id, ix, iter).await {
                st.flows += 1;
            }
        }
        return st;
    }
    let mut iter = 0u64;
    let mut failures_in_a_row = 0u32;
    while Instant::now() < deadline {
        iter += 1;
        let ok = one_flow(&c, &ctx, &mut rng, &mut st, ix, iter).await;
        if ok {
            failures_in_a_row = 0;
        } else {
            // Back off a little when the server is failing, so a dead server is not
            // hammered in a tight loop.
            failures_in_a_row = failures_in_a_row.saturating_add(1);
            if failures_in_a_row > 3 {
                let ms = u64::from(failures_in_a_row.min(50)) * 10;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }
    st
}

/// Runs one loop of the flow; false when a step failed (the rest of the loop is
/// skipped, since it depends on that step).
async fn one_flow(
    c: &HttpClient,
    ctx: &Ctx,
    rng: &mut Rng,
    st: &mut UserStats,
    ix: u64,
    iter: u64,
) -> bool {
    if ctx.flow == Flow::Full {
        let t = ctx.timeout;
        let base = &ctx.store;
        let cand = &ctx.pool[rng.below(ctx.pool.len())];
        let r = send(
            c,
            Method::GET,
            &format!("{base}/store/products?limit=20"),
            &[],
            None,
            t,
        )
        .await;
        if st.steps[LIST].record(&r, false) != Outcome::Ok {
            return false;
        }
        let r = send(
            c,
            Method::GET,
            &format!("{base}/store/products/{}", cand.product_id),
            &[],
            None,
            t,
        )
        .await;
        if st.steps[PRODUCT].record(&r, false) != Outcome::Ok {
            return false;
        }
    }
    match fill_cart(c, ctx, rng, st, ix, iter).await {
        Ok(cart_id) => complete(c, ctx, st, &cart_id, ix, iter).await,
        Err(ok) => ok,
    }
}

/// Creates a cart, adds a line and (except in the cart flow) sets the address. `Err`
/// ends the loop early: `Err(true)` when that is expected (cart flow, out of stock),
/// `Err(false)` on a failure.
async fn fill_cart(
    c: &HttpClient,
    ctx: &Ctx,
    rng: &mut Rng,
    st: &mut UserStats,
    ix: u64,
    iter: u64,
) -> Result<String, bool> {
    let t = ctx.timeout;
    let base = &ctx.store;
    let cand = &ctx.pool[rng.below(ctx.pool.len())];
    let body = br#"{"country":"KR","currency":"KRW","locale":"ko"}"#.to_vec();
    let r = send(
        c,
        Method::POST,
        &format!("{base}/store/carts"),
        &[],
        Some(body),
        t,
    )
    .await;
    if st.steps[CART_CREATE].record(&r, false) != Outcome::Ok {
        return Err(false);
    }
    let Some(cart_id) = r
        .ok()
        .and_then(|r| r.json())
        .and_then(|v| v["id"].as_str().map(str::to_string))
    else {
        *st.steps[CART_CREATE]
            .errors
            .entry("no_cart_id".into())
            .or_default() += 1;
        return Err(false);
    };

    let body = serde_json::to_vec(&serde_json::json!({
        "variant_id": cand.variant_id,
        "quantity": 1,
    }))
    .unwrap_or_default();
    let r = send(
        c,
        Method::POST,
        &format!("{base}/store/carts/{cart_id}/line-items"),
        &[],
        Some(body),
        t,
    )
    .await;
    let oos = is_out_of_stock(&r);
    if st.steps[ADD_LINE].record(&r, oos) != Outcome::Ok {
        return Err(oos);
    }
    if ctx.flow != Flow::Complete {
        st.flows += 1;
    }
    if ctx.flow == Flow::Cart {
        return Err(true);
    }

    let body = serde_json::to_vec(&serde_json::json!({
        "email": format!("lg-{}-u{ix}-{iter}@example.com", ctx.run_id),
        "shipping_address": {
            "name": "부하 테스트",
            "line1": "세종대로 110",
            "city": "Seoul",
            "postal_code": "04524",
            "country": "KR",
        },
    }))
    .unwrap_or_default();
    let r = send(
        c,
        Method::PATCH,
        &format!("{base}/store/carts/{cart_id}"),
        &[],
        Some(body),
        t,
    )
    .await;
    if st.steps[UPDATE_CART].record(&r, false) != Outcome::Ok {
        return Err(false);
    }
    Ok(cart_id)
}

/// Completes a cart; false on a failure (out of stock is not one).
async fn complete(
    c: &HttpClient,
    ctx: &Ctx,
    st: &mut UserStats,
    cart_id: &str,
    ix: u64,
    iter: u64,
) -> bool {
    let (t, base) = (ctx.timeout, &ctx.store);
    let key = format!("lg-{}-{ix}-{iter}", ctx.run_id);
    let r = send(
        c,
        Method::POST,
        &format!("{base}/store/carts/{cart_id}/complete"),
        &[("idempotency-key", key.as_str())],
        None,
        t,
    )
    .await;
    let oos = is_out_of_stock(&r);
    match st.steps[COMPLETE].record(&r, oos) {
        Outcome::Ok => {
            st.orders += 1;
            true
        }
        Outcome::OutOfStock => true,
        Outcome::Error => false,
    }
}

fn is_out_of_stock(r: &Result<crate::client::Resp, crate::client::Fail>) -> bool {
    match r {
        Ok(r) if r.status == 409 => r.problem_code().as_deref() == Some("out_of_stock"),
        _ => false,
    }
}
