//! `loadgen seed`: creates many products through the admin API, a few in flight.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Value};

use crate::client::{client, send, HttpClient};

/// Settings of a seed run.
#[derive(Debug)]
pub(crate) struct SeedArgs {
    pub(crate) admin: String,
    pub(crate) email: String,
    pub(crate) password: String,
    pub(crate) products: usize,
    pub(crate) variants: usize,
    pub(crate) concurrency: usize,
    pub(crate) start: usize,
    pub(crate) stock: i64,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    /// Latency of successful creations, microseconds.
    lat_us: Mutex<Vec<u64>>,
    /// First few error answers, shown at the end.
    samples: Mutex<Vec<String>>,
}

async fn login(c: &HttpClient, a: &SeedArgs) -> Result<String, String> {
    let body =
        serde_json::to_vec(&json!({"email": a.email, "password": a.password})).unwrap_or_default();
    let uri = format!("{}/admin/auth/login", a.admin);
    let r = send(c, Method::POST, &uri, &[], Some(body), a.timeout)
        .await
        .map_err(|e| format!("POST {uri}: {e}"))?;
    if r.status != 200 {
        return Err(format!(
            "POST {uri}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    r.json()
        .and_then(|v| v["access_token"].as_str().map(str::to_string))
        .ok_or_else(|| format!("POST {uri}: no access_token in the answer"))
}

pub(crate) async fn run(a: SeedArgs) -> Result<(), String> {
    let c = client();
    let token = Arc::new(Mutex::new(login(&c, &a).await?));
    println!(
        "loadgen seed: {} products x {} variants from #{} at {}, {} in flight",
        a.products, a.variants, a.start, a.admin, a.concurrency
    );
    let a = Arc::new(a);
    let next = Arc::new(AtomicUsize::new(a.start));
    let end = a.start + a.products;
    let counters = Arc::new(Counters::default());
    let relogins = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (a, next, counters, token, relogins) = (
            a.clone(),
            next.clone(),
            counters.clone(),
            token.clone(),
            relogins.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let body = serde_json::to_vec(&product(&a.prefix, i, a.variants, a.stock))
                    .unwrap_or_default();
                // At most one retry, after a fresh login when the token expired.
                for attempt in 0..2 {
                    let bearer = format!(
                        "Bearer {}",
                        token.lock().map(|t| t.clone()).unwrap_or_default()
                    );
                    let r = send(
                        &c,
                        Method::POST,
                        &format!("{}/admin/products", a.admin),
                        &[("authorization", bearer.as_str())],
                        Some(body.clone()),
                        a.timeout,
                    )
                    .await;
                    match r {
                        Ok(r) if r.status == 201 => {
                            counters.created.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut l) = counters.lat_us.lock() {
                                l.push(r.latency_us);
                            }
                        }
                        Ok(r)
                            if r.status == 409
                                && matches!(
                                    r.problem_code().as_deref(),
                                    Some("handle_taken") | Some("sku_taken")
                                ) =>
                        {
                            counters.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r)
                            if r.status == 401
                                && attempt == 0
                                && relogins.fetch_add(1, Ordering::Relaxed) < 5 =>
                        {
                            if let Ok(t) = login(&c, &a).await {
                                if let Ok(mut g) = token.lock() {
                                    *g = t;
                                }
                            }
                            continue;
                        }
                        other => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            let msg = match other {
                                Ok(r) => format!(
                                    "product #{i}: {} {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body)
                                ),
                                Err(e) => format!("product #{i}: {e}"),
                            };
                            if let Ok(mut s) = counters.samples.lock() {
                                if s.len() < 5 {
                                    s.push(msg);
                                }
                            }
                        }
                    }
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("a seed task failed: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let created = counters.created.load(Ordering::Relaxed);
    let skipped = counters.skipped.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let mut lat = counters
        .lat_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        lat[rank.clamp(1, lat.len()) - 1] as f64 / 1000.0
    };
    println!(
        "  created {created}, skipped (already there) {skipped}, failed {failed} in {secs:.2} s \
         ({:.1} products/s; create p50 {:.1} ms, p99 {:.1} ms)",
        created as f64 / secs,
        pct(50.0),
        pct(99.0)
    );
    if let Ok(s) = counters.samples.lock() {
        for m in s.iter() {
            println!("  error: {m}");
        }
    }
    if failed > 0 {
        return Err(format!("{failed} products could not be created"));
    }
    Ok(())
}

/// (ko, en, id) brand names.
const BRANDS: [(&str, &str, &str); 8] = [
    ("한빛", "Hanbit", "Hanbit"),
    ("솔담", "Soldam", "Soldam"),
    ("다온", "Daon", "Daon"),
    ("참살이", "Chamsari", "Chamsari"),
    ("푸른숲", "Pureun Forest", "Pureun Forest"),
    ("바른정성", "Bareun", "Bareun"),
    ("고운날", "Gounnal", "Gounnal"),
    ("새봄", "Saebom", "Saebom"),
];

/// (ko, en, id, category, unit) product kinds.
const KINDS: [(&str, &str, &str, &str, &str); 10] = [
    (
        "6년근 홍삼정 에브리타임",
        "6-Year Red Ginseng Everytime",
        "Ginseng Merah 6 Tahun Everytime",
        "ginseng",
        "sticks",
    ),
    (
        "프로바이오틱스 골드",
        "Probiotics Gold",
        "Probiotik Gold",
        "probiotics",
        "capsules",
    ),
    (
        "rTG 알티지 오메가3",
        "rTG Omega-3",
        "Omega-3 rTG",
        "omega-3",
        "softgels",
    ),
    (
        "루테인 지아잔틴",
        "Lutein Zeaxanthin",
        "Lutein Zeaxanthin",
        "eye-health",
        "capsules",
    ),
    (
        "저분자 피쉬 콜라겐",
        "Low-Molecular Fish Collagen",
        "Kolagen Ikan Molekul Rendah",
        "collagen",
        "sticks",
    ),
    (
        "멀티비타민 데일리",
        "Daily Multivitamin",
        "Multivitamin Harian",
        "vitamins",
        "tablets",
    ),
    (
        "마그네슘 아연",
        "Magnesium & Zinc",
        "Magnesium & Seng",
        "minerals",
        "tablets",
    ),
    (
        "어린이 비타민D 젤리",
        "Kids Vitamin D Jelly",
        "Jeli Vitamin D Anak",
        "kids",
        "jellies",
    ),
    (
        "밀크씨슬 간 건강",
        "Milk Thistle Liver Care",
        "Milk Thistle Kesehatan Hati",
        "liver-health",
        "tablets",
    ),
    (
        "가르시니아 다이어트",
        "Garcinia Slim",
        "Garcinia Langsing",
        "diet",
        "tablets",
    ),
];

/// (ko, en, id) series names.
const SERIES: [(&str, &str, &str); 5] = [
    ("", "", ""),
    ("플러스", "Plus", "Plus"),
    ("프리미엄", "Premium", "Premium"),
    ("골드", "Gold", "Gold"),
    ("맥스", "Max", "Max"),
];

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rounds to the nearest multiple of `m`.
fn round_to(v: u64, m: u64) -> u64 {
    (v + m / 2) / m * m
}

/// The create body of product number `i`: deterministic, so re-running skips what
/// exists (409 `handle_taken`).
pub(crate) fn product(prefix: &str, i: usize, variants: usize, stock: i64) -> Value {
    let (bko, ben, bid) = BRANDS[i % BRANDS.len()];
    let (kko, ken, kid, cat, unit) = KINDS[(i / BRANDS.len()) % KINDS.len()];
    let (sko, sen, sid) = SERIES[(i / (BRANDS.len() * KINDS.len())) % SERIES.len()];
    let n = i + 1;
    let title_ko = format!("{} {}호", join(&[bko, kko, sko]), n);
    let title_en = format!("{} #{}", join(&[ben, ken, sen]), n);
    let title_id = format!("{} #{}", join(&[kid, bid, sid]), n);
    let desc_ko = format!(
        "{bko}의 {kko} 제품입니다. 엄선한 원료로 매일 간편하게 섭취할 수 있으며, \
         건강기능식품 기준에 맞춰 국내 GMP 시설에서 생산했습니다."
    );
    let desc_en = format!(
        "{ben} {ken}: carefully sourced ingredients in an easy daily serving, made in a \
         GMP-certified facility in Korea to health functional food standards."
    );
    let desc_id = format!(
        "{kid} dari {bid}: bahan pilihan dalam takaran harian yang praktis, diproduksi di \
         fasilitas bersertifikat GMP di Korea sesuai standar pangan fungsional."
    );
    // A base price from 9,900 to 128,900 KRW; larger packs cost more, with a discount.
    let base = 9_900 + ((i as u64 * 7_919) % 120) * 1_000;
    let handle = format!("{prefix}-{i:05}");
    let variants: Vec<Value> = (0..variants)
        .map(|v| {
            let packs = v as u64 + 1;
            let discount = 100 - 5 * packs.min(7).saturating_sub(1);
            let krw = round_to(base * packs * discount / 100, 100);
            let usd_cents = krw * 100 / 1_350;
            let idr = round_to(krw * 23 / 2, 100);
            json!({
                "sku": format!("{}-{i:05}-{v}", prefix.to_uppercase()),
                "options": {"size": format!("{} {unit}", 30 * packs)},
                "prices": [
                    {"amount": krw.to_string(), "currency": "KRW"},
                    {"amount": format!("{}.{:02}", usd_cents / 100, usd_cents % 100), "currency": "USD"},
                    {"amount": idr.to_string(), "currency": "IDR"},
                ],
                "stock": stock,
            })
        })
        .collect();
    // Compliance data as a real catalog has it, so `?country=ID` listings filter for
    // real: one product in ten has an expired Indonesian registration and is hidden.
    let expires = if i % 10 == 9 {
        "2026-01-31"
    } else {
        "2029-12-31"
    };
    json!({
        "handle": handle,
        "status": "published",
        "title": {"ko": title_ko, "en": title_en, "id": title_id},
        "description": {"ko": desc_ko, "en": desc_en, "id": desc_id},
        "categories": [cat],
        "variants": variants,
        "ingredients": [
            {"name": "Vitamin C", "amount": "100", "unit": "mg"},
            {"name": "Vitamin D", "amount": "400", "unit": "IU"},
            {"name": "Zinc", "amount": "8.5", "unit": "mg"}
        ],
        "claims": {"en": ["Helps support immune function"]},
        "countries": {"ID": {
            "registration": {"number": format!("POM SI{:09}", 300_000_000 + i), "holder": "PT Loadgen Indonesia", "expires_on": expires},
            "halal": {"certificate_number": format!("KMF-LG-{i:05}"), "issuer": "KMF", "expires_on": "2028-06-30"}
        }},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_deterministic_and_distinct() {
        let a = product("loadgen", 7, 4, 1_000_000);
        assert_eq!(a, product("loadgen", 7, 4, 1_000_000));
        let b = product("loadgen", 8, 4, 1_000_000);
        assert_ne!(a["handle"], b["handle"]);
        assert_ne!(a["title"]["en"], b["title"]["en"]);
        let vs = a["variants"].as_array().unwrap();
        assert_eq!(vs.len(), 4);
        assert_eq!(vs[0]["sku"], "LOADGEN-00007-0");
        assert_eq!(vs[3]["stock"], 1_000_000);
        for v in vs {
            let prices = v["prices"].as_array().unwrap();
            assert_eq!(prices.len(), 3);
            let usd = prices[1]["amount"].as_str().unwrap();
            assert_eq!(usd.split('.').nth(1).unwrap().len(), 2, "{usd}");
        }
    }
}
