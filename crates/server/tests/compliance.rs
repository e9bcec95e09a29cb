//! Country rules through the HTTP API of the real binary with the demo catalog and the
//! seven shipped country plugins: domestic vs import sales, customs identifiers,
//! listings by country, page statements, and yearly limits under concurrent checkouts.

mod common;

use common::{http, json, login, start_with, Server};
use serde_json::{json as j, Value};

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("jangteo-compliance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The first variant id of a demo product, by handle and SKU.
fn variant(srv: &Server, handle: &str, sku: &str) -> String {
    let (st, b) = http(
        &srv.store,
        "GET",
        &format!("/store/products/{handle}"),
        None,
        None,
    );
    assert_eq!(st, 200, "{b}");
    json(&b)["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["sku"] == sku)
        .unwrap_or_else(|| panic!("{handle} has no {sku}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A guest cart to `country` in `currency` with one line and an address there.
fn cart(
    srv: &Server,
    country: &str,
    currency: &str,
    locale: &str,
    variant: &str,
    qty: i64,
) -> String {
    let body = j!({"country": country, "currency": currency, "locale": locale}).to_string();
    let (st, b) = http(&srv.store, "POST", "/store/carts", None, Some(&body));
    assert_eq!(st, 201, "{b}");
    let id = json(&b)["id"].as_str().unwrap().to_string();
    let line = j!({"variant_id": variant, "quantity": qty}).to_string();
    let (st, b) = http(
        &srv.store,
        "POST",
        &format!("/store/carts/{id}/line-items"),
        None,
        Some(&line),
    );
    assert_eq!(st, 200, "{b}");
    let contact = j!({"email": "buyer@example.com", "shipping_address": {
        "name": "Buyer", "line1": "1 Main St", "city": "City", "postal_code": "12345", "country": country}})
    .to_string();
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{id}"),
        None,
        Some(&contact),
    );
    assert_eq!(st, 200, "{b}");
    id
}

fn get_cart(srv: &Server, id: &str) -> Value {
    let (st, b) = http(&srv.store, "GET", &format!("/store/carts/{id}"), None, None);
    assert_eq!(st, 200, "{b}");
    json(&b)
}

fn codes(violations: &Value) -> Vec<String> {
    let mut c: Vec<String> = violations
        .as_array()
        .unwrap_or_else(|| panic!("no violations array: {violations}"))
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_string())
        .collect();
    c.sort();
    c
}

fn complete(srv: &Server, id: &str) -> (u16, Value) {
    let (st, b) = http(
        &srv.store,
        "POST",
        &format!("/store/carts/{id}/complete"),
        None,
        Some(r#"{"payment":{"provider":"manual"}}"#),
    );
    (st, json(&b))
}

#[test]
fn a_korean_buyer_is_not_an_importer_but_a_buyer_of_a_foreign_store_is() {
    // The demo store ships from Korea: 7 boxes to a Korean address is a domestic sale.
    let dir = data_dir("kr");
    let srv = start_with(&dir, &[]);
    let v = variant(&srv, "red-ginseng-stick-30", "RG-STICK-30");
    let id = cart(&srv, "KR", "KRW", "ko", &v, 7);
    let c = get_cart(&srv, &id);
    assert_eq!(c["compliance"]["ok"], true, "{c}");
    // VAT 10 % is inside Korean shelf prices: 273,000 won includes 24,818 won.
    assert_eq!(c["totals"]["total"]["amount"], "273000");
    assert_eq!(c["totals"]["tax"]["amount"], "24818");
    assert_eq!(c["totals"]["tax_included"], true);
    let (st, order) = complete(&srv, &id);
    assert_eq!(st, 201, "{order}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);

    // The same store configured to ship from the United States: Korea's import rules
    // apply (6 bottles per personal import, a personal customs code).
    let dir = data_dir("us-origin");
    let srv = start_with(
        &dir,
        &[("JANGTEO__COMPLIANCE__ORIGIN_COUNTRY", "US".into())],
    );
    let v = variant(&srv, "red-ginseng-stick-30", "RG-STICK-30");
    let id = cart(&srv, "KR", "KRW", "ko", &v, 7);
    let c = get_cart(&srv, &id);
    assert_eq!(c["compliance"]["ok"], false);
    assert_eq!(
        codes(&c["compliance"]["violations"]),
        ["buyer_id_required", "quantity_limit_exceeded"]
    );
    let q = c["compliance"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["code"] == "quantity_limit_exceeded")
        .unwrap();
    assert_eq!(
        (q["limit"].as_i64(), q["actual"].as_i64()),
        (Some(6), Some(7))
    );
    // Messages follow the cart's locale.
    assert!(q["message"].as_str().unwrap().contains("6개"), "{q}");
    // An import is zero-rated at origin: no Korean VAT on the price.
    assert_eq!(c["totals"]["tax"]["amount"], "0");

    let (st, body) = complete(&srv, &id);
    assert_eq!(st, 422, "{body}");
    assert_eq!(body["code"], "compliance_violation");
    assert_eq!(
        codes(&body["violations"]),
        ["buyer_id_required", "quantity_limit_exceeded"]
    );

    // A malformed customs code is refused and not echoed back.
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{id}"),
        None,
        Some(r#"{"buyer_identifiers":{"kr_pccc":"P12345"}}"#),
    );
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("buyer_id_invalid"), "{b}");
    assert!(!b.contains("P12345"), "the identifier was echoed: {b}");
    // Another country's identifier, valid there, is not Korea's to keep.
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{id}"),
        None,
        Some(r#"{"buyer_identifiers":{"id_nik":"3174015505900001"}}"#),
    );
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("buyer_identifiers.id_nik"), "{b}");
    assert!(
        !b.contains("3174015505900001"),
        "the identifier was echoed: {b}"
    );
    // A valid one is kept sealed and shown masked.
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{id}"),
        None,
        Some(r#"{"buyer_identifiers":{"kr_pccc":"p123456789012"}}"#),
    );
    assert_eq!(st, 200, "{b}");
    assert!(!b.contains("123456789"), "identifier not masked: {b}");
    assert_eq!(
        codes(&json(&b)["compliance"]["violations"]),
        ["quantity_limit_exceeded"]
    );
    let line = json(&b)["line_items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{id}/line-items/{line}"),
        None,
        Some(r#"{"quantity":6}"#),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(json(&b)["compliance"]["ok"], true, "{b}");
    let (st, order) = complete(&srv, &id);
    assert_eq!(st, 201, "{order}");
    // The identifier never leaves in clear: not in the order, not in the audit trail.
    assert!(!order.to_string().contains("123456789012"), "{order}");

    // Splitting does not dodge the limit: one more box to the same customs code within
    // 90 days makes seven; the same box to another recipient is fine.
    let second = cart(&srv, "KR", "KRW", "en", &v, 1);
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{second}"),
        None,
        Some(r#"{"buyer_identifiers":{"kr_pccc":"P123456789012"}}"#),
    );
    assert_eq!(st, 200, "{b}");
    let c = json(&b);
    assert_eq!(
        codes(&c["compliance"]["violations"]),
        ["quantity_limit_exceeded"]
    );
    assert_eq!(c["compliance"]["violations"][0]["actual"], 7);
    assert!(
        c["compliance"]["violations"][0]["message"]
            .as_str()
            .unwrap()
            .contains("90 days"),
        "{c}"
    );
    let (st, body) = complete(&srv, &second);
    assert_eq!(st, 422, "{body}");
    let (st, b) = http(
        &srv.store,
        "PATCH",
        &format!("/store/carts/{second}"),
        None,
        Some(r#"{"buyer_identifiers":{"kr_pccc":"P987654321098"}}"#),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(json(&b)["compliance"]["ok"], true, "{b}");
    let (st, body) = complete(&srv, &second);
    assert_eq!(st, 201, "{body}");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listings_and_pages_follow_each_countrys_rules() {
    let dir = data_dir("listing");
    let srv = start_with(&dir, &[]);
    let handles = |path: &str| -> Vec<String> {
        let (st, b) = http(&srv.store, "GET", path, None, None);
        assert_eq!(st, 200, "{b}");
        json(&b)["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["handle"].as_str().unwrap().to_string())
            .collect()
    };
    let all = handles("/store/products?limit=100");
    let id = handles("/store/products?limit=100&country=ID");
    for h in [
        "garcinia-cambogia",
        "propolis-throat-spray",
        "vitamin-d3-4000",
    ] {
        assert!(
            all.contains(&h.to_string()),
            "{h} missing from the full list"
        );
        assert!(!id.contains(&h.to_string()), "{h} listed for Indonesia");
    }
    // A country the store does not serve lists nothing, and says so at once.
    let (st, b) = http(
        &srv.store,
        "GET",
        "/store/products?limit=5&country=FR",
        None,
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(json(&b)["products"], j!([]));
    assert!(json(&b)["next_cursor"].is_null(), "{b}");
    // Declared not halal: sold, with the statement.
    assert!(id.contains(&"kids-multivitamin-gummy".to_string()));
    assert_eq!(
        all.len() - id.len(),
        3,
        "only the three non-compliant products are hidden"
    );
    // Pagination under the filter returns each product once.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (st, b) = http(
            &srv.store,
            "GET",
            &format!("/store/products?limit=7&country=ID{cursor}"),
            None,
            None,
        );
        assert_eq!(st, 200, "{b}");
        let page = json(&b);
        paged.extend(
            page["products"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["handle"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, id);

    // The expired registration explains itself on the product's Indonesian page.
    let (st, b) = http(
        &srv.store,
        "GET",
        "/store/products/garcinia-cambogia?country=ID&locale=id",
        None,
        None,
    );
    assert_eq!(st, 200, "{b}");
    let page = json(&b);
    assert_eq!(page["country"]["sellable"], false);
    assert_eq!(codes(&page["country"]["violations"]), ["not_registered"]);
    assert!(page["country"]["violations"][0]["message"]
        .as_str()
        .unwrap()
        .contains("2026-06-30"));

    // US pages carry the FDA disclaimer, worded by the number of claims, in bold.
    let statement = |handle: &str, country: &str, locale: &str, key: &str| -> Option<Value> {
        let (st, b) = http(
            &srv.store,
            "GET",
            &format!("/store/products/{handle}?country={country}&locale={locale}"),
            None,
            None,
        );
        assert_eq!(st, 200, "{b}");
        json(&b)["country"]["statements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .cloned()
    };
    let one = statement("vitamin-c-1000", "US", "en", "dshea_disclaimer").expect("disclaimer");
    assert!(one["text"]
        .as_str()
        .unwrap()
        .starts_with("This statement has not been evaluated by the Food and Drug Administration."));
    assert_eq!(one["emphasis"], true);
    let several =
        statement("red-ginseng-stick-30", "US", "en", "dshea_disclaimer").expect("disclaimer");
    assert!(several["text"]
        .as_str()
        .unwrap()
        .starts_with("These statements have not been evaluated"));
    assert!(
        statement("probiotics-10b", "US", "en", "dshea_disclaimer").is_none(),
        "no claim, no disclaimer"
    );
    // Indonesian halal status, Korean HFF mark.
    let non_halal =
        statement("kids-multivitamin-gummy", "ID", "id", "halal_status").expect("halal status");
    assert!(non_halal["text"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("tidak halal"));
    let hff = statement("red-ginseng-stick-30", "KR", "ko", "hff_mark").expect("HFF mark");
    assert!(hff["text"].as_str().unwrap().contains("건강기능식품"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chinas_yearly_limit_holds_under_concurrent_checkouts() {
    let dir = data_dir("cn");
    let srv = start_with(&dir, &[]);
    yearly_limit_race(&srv);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same race on PostgreSQL, where checkouts really run in parallel and the
/// per-buyer advisory lock is what keeps the sum honest.
#[test]
fn chinas_yearly_limit_holds_on_postgres() {
    let db = common::fresh_database(&common::postgres_admin_url());
    let dir = data_dir("cn-pg");
    let srv = start_with(&dir, &[("JANGTEO__DATABASE__URL", db)]);
    yearly_limit_race(&srv);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

fn yearly_limit_race(srv: &Server) {
    let token = login(srv);
    // 936,000 won = 4,867.20 yuan at the demo rate: under the CNY 5,000 order limit;
    // five such orders stay under the CNY 26,000 yearly limit, a sixth would not.
    let body = j!({
        "handle": "ginseng-gift-set", "status": "published",
        "title": {"en": "Red Ginseng Gift Set", "ko": "홍삼 선물세트"},
        "variants": [{"sku": "GIFT-SET", "prices": [{"amount": "936000", "currency": "KRW"}], "stock": 100}]
    });
    let (st, b) = http(
        &srv.admin,
        "POST",
        "/admin/products",
        Some(&token),
        Some(&body.to_string()),
    );
    assert_eq!(st, 201, "{b}");
    let v = json(&b)["variants"][0]["id"].as_str().unwrap().to_string();
    let product = json(&b)["id"].as_str().unwrap().to_string();
    // 18 characters with a valid ISO 7064 MOD 11-2 check digit.
    let resident_id = "11010519491231002X";
    let carts: Vec<String> = (0..8)
        .map(|_| {
            let id = cart(srv, "CN", "CNY", "en", &v, 1);
            let ids = j!({"buyer_identifiers": {"cn_resident_id": resident_id}}).to_string();
            let (st, b) = http(
                &srv.store,
                "PATCH",
                &format!("/store/carts/{id}"),
                None,
                Some(&ids),
            );
            assert_eq!(st, 200, "{b}");
            let c = json(&b);
            assert_eq!(c["line_items"][0]["unit_price"]["amount"], "4867.20", "{c}");
            assert_eq!(c["line_items"][0]["price_converted"], true);
            assert_eq!(c["compliance"]["ok"], true, "{c}");
            id
        })
        .collect();
    let barrier = std::sync::Barrier::new(carts.len());
    let barrier = &barrier;
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = carts
            .iter()
            .map(|c| {
                s.spawn(move || {
                    barrier.wait();
                    complete(srv, c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let placed = results.iter().filter(|(st, _)| *st == 201).count();
    let refused: Vec<_> = results.iter().filter(|(st, _)| *st == 422).collect();
    assert_eq!(placed, 5, "{results:?}");
    assert_eq!(refused.len(), 3, "{results:?}");
    for (_, body) in refused {
        assert_eq!(
            codes(&body["violations"]),
            ["annual_limit_exceeded"],
            "{body}"
        );
    }
    // Refused checkouts took no stock.
    assert_eq!(common::stock(srv, &token, &product), 95);
}

#[test]
fn per_country_product_data_is_checked_by_each_countrys_plugin() {
    let dir = data_dir("product-data");
    let srv = start_with(&dir, &[]);
    let token = login(&srv);
    let save = |countries: Value| {
        let body = j!({
            "handle": "schema-check", "status": "published",
            "title": {"en": "Schema check"},
            "ingredients": [{"name": "Vitamin D", "amount": "400", "unit": "IU"}],
            "countries": countries,
            "variants": [{"sku": "SCHEMA-1", "prices": [{"amount": "10000", "currency": "KRW"}], "stock": 1}]
        });
        http(
            &srv.admin,
            "POST",
            "/admin/products",
            Some(&token),
            Some(&body.to_string()),
        )
    };
    let fields = |b: &str| -> Vec<(String, String)> {
        json(b)["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no field errors: {b}"))
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().into(),
                    e["code"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let reg = |number: &str| j!({"number": number, "holder": "Local Importer", "expires_on": "2029-12-31"});
    // Indonesia: POM SI + 9 digits; Malaysia: MAL + 8 digits + N (+ letters); Korea's
    // own field must be a short string; unknown fields are refused.
    let (st, b) = save(j!({
        "ID": {"registration": reg("POM SI 12345")},
        "MY": {"registration": reg("MAL2101000")},
        "KR": {"ad_review_id": 42, "ad_reveiw_id": "typo"}
    }));
    assert_eq!(st, 422, "{b}");
    let mut got = fields(&b);
    got.sort();
    assert_eq!(
        got,
        [
            (
                "countries.ID.registration.number".into(),
                "invalid_format".into()
            ),
            ("countries.KR.ad_reveiw_id".into(), "unknown_field".into()),
            ("countries.KR.ad_review_id".into(), "invalid_format".into()),
            (
                "countries.MY.registration.number".into(),
                "invalid_format".into()
            ),
        ]
    );
    // A malformed halal object is a field error too, not a 500.
    let (st, b) = save(j!({"ID": {"halal": {"certificate_number": "X"}}}));
    assert_eq!(st, 422, "{b}");
    assert_eq!(fields(&b)[0].0, "countries.ID");
    // Valid data is stored and shown on the product page.
    let (st, b) = save(j!({
        "ID": {"registration": reg("POM SI123456789"), "halal": null},
        "MY": {"registration": reg("MAL21010001NC")},
        "KR": {"ad_review_id": "HFF-AD-2026-0001"}
    }));
    assert_eq!(st, 201, "{b}");
    let (st, b) = http(
        &srv.store,
        "GET",
        "/store/products/schema-check?country=ID&locale=id",
        None,
        None,
    );
    assert_eq!(st, 200, "{b}");
    let page = json(&b);
    assert_eq!(page["countries"]["ID"]["halal"], Value::Null);
    assert_eq!(page["country"]["sellable"], true, "{page}");
    // An expired halal certificate: off sale, and the page does not call it halal.
    let id = page["id"].as_str().unwrap().to_string();
    let expired = j!({"countries": {"ID": {"registration": reg("POM SI123456789"),
        "halal": {"certificate_number": "KMF-H-00001", "issuer": "KMF", "expires_on": "2026-01-31"}}}});
    let (st, b) = http(
        &srv.admin,
        "PATCH",
        &format!("/admin/products/{id}"),
        Some(&token),
        Some(&expired.to_string()),
    );
    assert_eq!(st, 200, "{b}");
    let (_, b) = http(
        &srv.store,
        "GET",
        "/store/products/schema-check?country=ID&locale=id",
        None,
        None,
    );
    let page = json(&b);
    assert_eq!(page["country"]["sellable"], false, "{page}");
    assert!(
        !page["country"]["statements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "halal_status"),
        "{page}"
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
