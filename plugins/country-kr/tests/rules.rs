//! Korea's rules, checked through the plugin's trait methods with hand-built facts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CartFacts, CountryCompliance, CountryData, ExchangeRates, LineFacts, ProductFacts, TaxPolicy,
    Violation,
};
use jangteo_core::ids::ProductId;
use jangteo_core::money::{Currency, Money};
use jangteo_country_kr::Korea;
use serde_json::json;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn product(v: serde_json::Value) -> ProductFacts {
    serde_json::from_value(v).unwrap()
}

fn vitamin_c() -> ProductFacts {
    product(json!({
        "countries": {"KR": {"ad_review_id": "2024-0417-001"}},
        "ingredients": [{"name": "vitamin C", "amount": "500", "unit": "mg"}]
    }))
}

fn krw(a: &str) -> Money {
    Money::parse(a, Currency::KRW).unwrap()
}

/// 1 USD = 1,400 KRW.
fn rates() -> ExchangeRates {
    serde_json::from_value(json!({"base": "USD", "rates": {"KRW": "1400"}, "source": "test"}))
        .unwrap()
}

fn codes(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.code.as_str()).collect()
}

/// Cart checks (moment 2) of `items` shipped from `origin` to Korea on `on`.
fn cart(
    origin: &str,
    on: &str,
    items: &[(ProductId, &ProductFacts, i64, Money)],
    ids: &[(&str, &str)],
) -> Vec<Violation> {
    let lines: Vec<LineFacts<'_>> = items
        .iter()
        .map(|(pid, p, q, total)| LineFacts {
            line_id: None,
            product_id: *pid,
            product: p,
            quantity: *q,
            line_total: *total,
        })
        .collect();
    let mut subtotal = Money::zero(Currency::KRW);
    for l in &lines {
        subtotal = subtotal.checked_add(l.line_total).unwrap();
    }
    let identifiers: BTreeMap<String, String> = ids
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let rates = rates();
    let facts = CartFacts {
        country: "KR",
        origin,
        day: day(on),
        lines: &lines,
        subtotal,
        identifiers: &identifiers,
        rates: &rates,
        history: None,
    };
    Korea.check_cart(&Korea.default_rules(), &facts)
}

fn tax(origin: &str, lines: &[Money]) -> jangteo_core::compliance::TaxOutcome {
    let rates = rates();
    Korea
        .tax(
            &Korea.default_rules(),
            &TaxInput {
                country: "KR",
                origin,
                day: day("2026-11-28"),
                currency: Currency::KRW,
                lines,
                rates: &rates,
            },
        )
        .unwrap()
}

#[test]
fn keeps_the_plugin_contract() {
    let samples = ContractSamples::new(day("2026-11-28"), vitamin_c()).identifier(
        "kr_pccc",
        &["P123456789012", "p000000000001", " P987654321098 "],
        &[
            "P12345678901",
            "P1234567890123",
            "123456789012",
            "Q123456789012",
            "P12345678901A",
            "",
            "P 123456789012",
        ],
    );
    assert_plugin(&Korea, &Korea, &samples);
}

#[test]
fn customs_code_is_p_and_twelve_digits_normalized_to_uppercase() {
    let d = day("2026-11-28");
    let table: &[(&str, Result<&str, ()>)] = &[
        ("P123456789012", Ok("P123456789012")),
        ("p123456789012", Ok("P123456789012")),
        ("  P123456789012\n", Ok("P123456789012")),
        ("P12345678901", Err(())),
        ("P1234567890123", Err(())),
        ("123456789012", Err(())),
        ("K123456789012", Err(())),
        ("P12345678901O", Err(())),
        ("P-123456789012", Err(())),
        ("Ｐ123456789012", Err(())),
    ];
    for (input, want) in table {
        let got = Korea.validate_identifier("kr_pccc", input, d);
        match want {
            Ok(n) => assert_eq!(got.as_deref(), Ok(*n), "{input:?}"),
            Err(()) => assert!(got.is_err(), "{input:?} accepted as {got:?}"),
        }
    }
    assert!(Korea
        .validate_identifier("id_nik", "P123456789012", d)
        .is_err());
}

#[test]
fn seven_units_are_fine_at_home_but_over_the_import_limit_from_abroad() {
    let p = vitamin_c();
    let pid = ProductId::new();
    let items = [(pid, &p, 7, krw("273000"))];

    // Domestic: import rules do not apply, even without a customs code.
    assert_eq!(
        codes(&cart("KR", "2026-11-28", &items, &[])),
        Vec::<&str>::new()
    );

    // From the US: the 6-bottle limit and the customs code apply.
    let v = cart("US", "2026-11-28", &items, &[]);
    assert_eq!(codes(&v), ["quantity_limit_exceeded", "buyer_id_required"]);
    assert_eq!(v[0].limit, Some(json!(6)));
    assert_eq!(v[0].actual, Some(json!(7)));
    assert_eq!(v[1].args.get("kinds").map(String::as_str), Some("kr_pccc"));

    // Two lines of different products count together (per order).
    let q = vitamin_c();
    let two = [
        (pid, &p, 4, krw("156000")),
        (ProductId::new(), &q, 3, krw("117000")),
    ];
    let v = cart("US", "2026-11-28", &two, &[("kr_pccc", "P123456789012")]);
    assert_eq!(codes(&v), ["quantity_limit_exceeded"]);
    assert_eq!(
        (v[0].limit.clone(), v[0].actual.clone()),
        (Some(json!(6)), Some(json!(7)))
    );

    // Six units with a customs code: nothing wrong.
    let six = [(pid, &p, 6, krw("234000"))];
    assert!(cart("US", "2026-11-28", &six, &[("kr_pccc", "P123456789012")]).is_empty());

    // Only another country's identifier: invalid rather than missing.
    assert_eq!(
        codes(&cart(
            "US",
            "2026-11-28",
            &six,
            &[("id_nik", "3174015505900001")]
        )),
        ["buyer_id_invalid"]
    );
}

#[test]
fn prohibited_ingredients_block_listing_under_any_name() {
    let d = day("2026-11-28");
    let rules = Korea.default_rules();
    for (name, canonical) in [
        ("Melatonin", "melatonin"),
        ("멜라토닌", "melatonin"),
        ("DHEA", "DHEA"),
        ("dehydroepiandrosterone", "DHEA"),
        ("yohimbe", "yohimbine"),
        ("methylhexanamine", "DMAA"),
        ("Cannabidiol", "CBD"),
    ] {
        let p = product(json!({"ingredients": [{"name": name, "amount": "3", "unit": "mg"}]}));
        let v = Korea.listing(&rules, &p, d);
        assert_eq!(codes(&v), ["ingredient_prohibited"], "{name} ({canonical})");
        assert_eq!(v[0].args.get("ingredient").map(String::as_str), Some(name));
    }
    // Sales rules apply to domestic carts too.
    let p = product(json!({"ingredients": [{"name": "멜라토닌", "amount": "3", "unit": "mg"}]}));
    assert_eq!(
        codes(&cart(
            "KR",
            "2026-11-28",
            &[(ProductId::new(), &p, 1, krw("20000"))],
            &[]
        )),
        ["ingredient_prohibited"]
    );
    // Melatonin is legal elsewhere, but not a reason to block vitamin C here.
    assert!(Korea.listing(&rules, &vitamin_c(), d).is_empty());
}

#[test]
fn served_from_2024() {
    let rules = Korea.default_rules();
    assert_eq!(
        codes(&Korea.listing(&rules, &vitamin_c(), day("2023-12-31"))),
        ["country_not_served"]
    );
    assert!(Korea
        .listing(&rules, &vitamin_c(), day("2024-01-01"))
        .is_empty());
}

#[test]
fn vat_is_ten_percent_included_in_shelf_prices() {
    let out = tax("KR", &[krw("39000"), krw("12900")]);
    assert!(out.inclusive);
    assert_eq!(out.name.as_deref(), Some("VAT"));
    assert_eq!(out.rate.map(|r| r.to_string()), Some("0.10".into()));
    // 39,000 / 11 = 3,545.45 -> 3,545; 12,900 / 11 = 1,172.7 -> 1,173.
    assert_eq!(out.lines, [krw("3545"), krw("1173")]);
    assert_eq!(out.tax, krw("4718"));
    assert_eq!(out.duties, krw("0"));
    assert!(out.landed_cost.is_none());

    // An operator switching the display to tax-exclusive changes the computation.
    let mut rules = Korea.default_rules();
    rules.tax[0].prices_include_tax = false;
    let rates = rates();
    let out = Korea
        .tax(
            &rules,
            &TaxInput {
                country: "KR",
                origin: "KR",
                day: day("2026-11-28"),
                currency: Currency::KRW,
                lines: &[krw("39000")],
                rates: &rates,
            },
        )
        .unwrap();
    assert!(!out.inclusive);
    assert_eq!(out.tax, krw("3900"));
}

#[test]
fn landed_cost_is_duty_free_up_to_usd_150_then_import_vat() {
    // 210,000 KRW = USD 150 exactly: still duty-free (the bound is inclusive).
    let out = tax("US", &[krw("210000")]);
    assert_eq!(out.tax, krw("0"), "exports are zero-rated at origin");
    let lc = out.landed_cost.expect("a band applies");
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (krw("0"), krw("0"), krw("0"))
    );
    assert!(!lc.charged);
    assert_eq!(
        lc.label.0.get("en").map(String::as_str),
        Some("Personal import up to USD 150: no duty and no import VAT")
    );

    // One won more: formal declaration, 10 % import VAT estimated, duty left to customs.
    let out = tax("US", &[krw("210001")]);
    let lc = out.landed_cost.expect("a band applies");
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (krw("0"), krw("21000"), krw("21000"))
    );
    assert!(lc.label.0["en"].contains("formal import declaration"));
    assert!(!lc.charged);
    assert_eq!(out.duties, krw("0"), "the buyer pays on delivery");

    // USD 200 (280,000 KRW): the US list-clearance limit does not help HFFs.
    let lc = tax("US", &[krw("150000"), krw("130000")])
        .landed_cost
        .unwrap();
    assert_eq!(lc.import_tax, krw("28000"));
}

#[test]
fn ad_review_id_is_a_short_non_empty_string() {
    let rules = Korea.default_rules();
    let check = |v: serde_json::Value| {
        let data: CountryData = serde_json::from_value(v).unwrap();
        let mut errors = Vec::new();
        Korea.check_product_data(
            &rules,
            &data,
            "2026-11-28".parse().unwrap(),
            "countries.KR",
            &mut errors,
        );
        errors
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect::<Vec<_>>()
    };
    let bad = |f: &str, c: &str| vec![(f.to_string(), c.to_string())];
    assert!(check(json!({})).is_empty());
    assert!(check(json!({"ad_review_id": "2024-0417-001"})).is_empty());
    assert!(check(json!({"ad_review_id": "가".repeat(64)})).is_empty());
    let f = "countries.KR.ad_review_id";
    assert_eq!(
        check(json!({"ad_review_id": "가".repeat(65)})),
        bad(f, "invalid_format")
    );
    assert_eq!(
        check(json!({"ad_review_id": "   "})),
        bad(f, "invalid_format")
    );
    assert_eq!(
        check(json!({"ad_review_id": 20240417})),
        bad(f, "invalid_format")
    );
    assert_eq!(
        check(json!({"ad_review_id": null})),
        bad(f, "invalid_format")
    );
    assert_eq!(
        check(json!({"ad_reviw_id": "x"})),
        bad("countries.KR.ad_reviw_id", "unknown_field")
    );
}

#[test]
fn hff_mark_is_always_shown_in_korean_and_english() {
    let rules = Korea.default_rules();
    let s: Vec<_> = rules
        .label_statements
        .iter()
        .filter(|s| s.key == "hff_mark")
        .collect();
    assert_eq!(s.len(), 1);
    assert_eq!(serde_json::to_value(s[0].when).unwrap(), json!("always"));
    assert_eq!(s[0].text.0["ko"], "건강기능식품");
    assert_eq!(s[0].text.0["en"], "Health Functional Food (Korea)");
}
