//! China's cross-border rules, checked through the plugin's trait methods with
//! hand-built facts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    BuyerHistory, CartFacts, CountryCompliance, ExchangeRates, LineFacts, PastOrder, ProductFacts,
    TaxOutcome, TaxPolicy, Violation,
};
use jangteo_core::ids::ProductId;
use jangteo_core::money::{Currency, Money};
use jangteo_country_cn::China;
use serde_json::json;

const TODAY: &str = "2026-11-28";

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn probiotic() -> ProductFacts {
    serde_json::from_value(json!({
        "countries": {"CN": {"hs_code": "2106.90"}},
        "ingredients": [{"name": "Lactobacillus rhamnosus", "amount": "10", "unit": "mg"}]
    }))
    .unwrap()
}

fn cny(a: &str) -> Money {
    Money::parse(a, Currency::CNY).unwrap()
}

fn krw(a: &str) -> Money {
    Money::parse(a, Currency::KRW).unwrap()
}

/// 1 CNY = 190 KRW.
fn rates() -> ExchangeRates {
    serde_json::from_value(json!({"base": "CNY", "rates": {"KRW": "190"}})).unwrap()
}

fn codes(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.code.as_str()).collect()
}

/// ISO 7064 MOD 11-2, written independently of the plugin: weights 2^(n-1) mod 11 from
/// the right, check value (12 - sum mod 11) mod 11, 10 written X.
fn check_char(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (2u32.pow(17 - i as u32) % 11))
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        r => char::from_digit(r, 10).unwrap(),
    }
}

fn with_check(body: &str) -> String {
    format!("{body}{}", check_char(body))
}

/// Checkout checks (moment 3) of a cart shipped from `origin`.
fn checkout(
    origin: &str,
    lines: &[(i64, Money)],
    ids: &[(&str, &str)],
    history: Option<&BuyerHistory>,
) -> Vec<Violation> {
    let p = probiotic();
    let pid = ProductId::new();
    let lines: Vec<LineFacts<'_>> = lines
        .iter()
        .map(|(q, t)| LineFacts {
            line_id: None,
            product_id: pid,
            product: &p,
            quantity: *q,
            line_total: *t,
        })
        .collect();
    let mut subtotal = Money::zero(lines[0].line_total.currency);
    for l in &lines {
        subtotal = subtotal.checked_add(l.line_total).unwrap();
    }
    let ids: BTreeMap<String, String> = ids
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let rates = rates();
    let cart = CartFacts {
        country: "CN",
        origin,
        day: day(TODAY),
        lines: &lines,
        subtotal,
        identifiers: &ids,
        rates: &rates,
        history,
    };
    China.check_checkout(&China.default_rules(), &cart)
}

/// Earlier orders of the buyer this year (one a month back each), plus one of last
/// year that must not count.
fn history(spent: &[Money]) -> BuyerHistory {
    let today = day(TODAY).and_hms_opt(12, 0, 0).unwrap().and_utc();
    let mut orders: Vec<PastOrder> = spent
        .iter()
        .enumerate()
        .map(|(i, m)| PastOrder {
            created_at: today - chrono::Duration::days(30 * (i as i64 + 1)),
            subtotal: *m,
            units: vec![(ProductId::new(), 1)],
        })
        .collect();
    orders.insert(
        0,
        PastOrder {
            created_at: day("2025-12-31").and_hms_opt(23, 0, 0).unwrap().and_utc(),
            subtotal: cny("20000.00"),
            units: vec![(ProductId::new(), 1)],
        },
    );
    BuyerHistory {
        identifier: "cn_resident_id".into(),
        orders,
    }
}

fn tax(origin: &str, currency: Currency, lines: &[&str]) -> TaxOutcome {
    let lines: Vec<Money> = lines
        .iter()
        .map(|a| Money::parse(a, currency).unwrap())
        .collect();
    let rates = rates();
    China
        .tax(
            &China.default_rules(),
            &TaxInput {
                country: "CN",
                origin,
                day: day(TODAY),
                currency,
                lines: &lines,
                rates: &rates,
            },
        )
        .unwrap()
}

const ID: &str = "11010519491231002X";

#[test]
fn keeps_the_plugin_contract() {
    let valid = with_check("44030419900307123");
    let mut wrong = valid.clone();
    wrong.pop();
    wrong.push(if valid.ends_with('0') { '1' } else { '0' });
    let samples = ContractSamples::new(day(TODAY), probiotic()).identifier(
        "cn_resident_id",
        &[ID, "11010519491231002x", &valid],
        &[&wrong, "11010519491231002", "110105194912310021X"],
    );
    assert_plugin(&China, &China, &samples);
}

#[test]
fn resident_id_has_a_mod_11_2_check_character_and_a_real_birth_date() {
    let d = day(TODAY);
    // The specimen number printed in GB 11643 examples.
    assert_eq!(check_char("11010519491231002"), 'X');
    assert_eq!(
        China
            .validate_identifier("cn_resident_id", " 11010519491231002x ", d)
            .as_deref(),
        Ok(ID)
    );
    for body in [
        "44030419900307123",
        "31011520000229004",
        "51010819851111999",
        "65010220260101000",
    ] {
        let id = with_check(body);
        assert_eq!(
            China
                .validate_identifier("cn_resident_id", &id, d)
                .as_deref(),
            Ok(id.as_str()),
            "{id}"
        );
        // Every other check character is refused.
        for c in "0123456789X".chars().filter(|c| *c != check_char(body)) {
            let bad = format!("{body}{c}");
            assert!(
                China
                    .validate_identifier("cn_resident_id", &bad, d)
                    .is_err(),
                "{bad}"
            );
        }
    }
    // A correct check character does not save an impossible birth date.
    for body in [
        "44030419990230123",
        "44030419991301123",
        "44030418991231123",
        "44030420261129123",
    ] {
        let id = with_check(body);
        let err = China
            .validate_identifier("cn_resident_id", &id, d)
            .unwrap_err();
        assert!(err.contains("date of birth"), "{id}: {err}");
    }
    for bad in [
        "",
        "11010519491231002",
        "11010519491231002XX",
        "1101051949123100XX",
        "1101051949123100é",
        "110105194912310０2X",
    ] {
        assert!(
            China.validate_identifier("cn_resident_id", bad, d).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn resident_id_is_required_from_abroad_only() {
    let v = checkout("KR", &[(1, cny("100.00"))], &[], None);
    assert_eq!(codes(&v), ["buyer_id_required"]);
    assert_eq!(v[0].args["kinds"], "cn_resident_id");
    assert!(checkout("KR", &[(1, cny("100.00"))], &[("cn_resident_id", ID)], None).is_empty());
    assert!(checkout("CN", &[(1, cny("100.00"))], &[], None).is_empty());
}

#[test]
fn orders_above_cny_5000_are_refused_unless_a_single_item() {
    let id = [("cn_resident_id", ID)];
    assert!(checkout("KR", &[(2, cny("5000.00"))], &id, None).is_empty());
    let v = checkout("KR", &[(1, cny("2600.00")), (1, cny("2600.00"))], &id, None);
    assert_eq!(codes(&v), ["value_limit_exceeded"]);
    assert_eq!(
        v[0].limit,
        Some(json!({"amount": "5000", "currency": "CNY"}))
    );
    assert_eq!(
        v[0].actual,
        Some(json!({"amount": "5200", "currency": "CNY"}))
    );
    // One item over the limit is allowed (at full tax).
    assert!(checkout("KR", &[(1, cny("6000.00"))], &id, None).is_empty());
    // A KRW cart through the rates: 950,000 KRW = CNY 5,000; 950,190 KRW = CNY 5,001.
    assert!(checkout("KR", &[(3, krw("950000"))], &id, None).is_empty());
    let v = checkout("KR", &[(3, krw("950190"))], &id, None);
    assert_eq!(codes(&v), ["value_limit_exceeded"]);
    assert_eq!(
        v[0].actual,
        Some(json!({"amount": "5001", "currency": "CNY"}))
    );
}

#[test]
fn yearly_total_per_resident_id_is_at_most_cny_26000() {
    let id = [("cn_resident_id", ID)];
    // 20,000 CNY + 570,000 KRW (= 3,000 CNY) before, 3,000 now: exactly 26,000.
    let h = history(&[cny("20000.00"), krw("570000")]);
    assert!(checkout("KR", &[(1, cny("3000.00"))], &id, Some(&h)).is_empty());
    let v = checkout("KR", &[(1, cny("3000.01"))], &id, Some(&h));
    assert_eq!(codes(&v), ["annual_limit_exceeded"]);
    assert_eq!(
        v[0].limit,
        Some(json!({"amount": "26000", "currency": "CNY"}))
    );
    assert_eq!(
        v[0].actual,
        Some(json!({"amount": "26000.01", "currency": "CNY"}))
    );
    // A single item above 5,000 is allowed per order but counts against the year.
    let v = checkout(
        "KR",
        &[(1, cny("6000.00"))],
        &id,
        Some(&history(&[cny("21000.00")])),
    );
    assert_eq!(codes(&v), ["annual_limit_exceeded"]);
    assert_eq!(
        v[0].actual,
        Some(json!({"amount": "27000", "currency": "CNY"}))
    );
    // Domestic orders are not imports.
    assert!(checkout(
        "CN",
        &[(1, cny("6000.00"))],
        &id,
        Some(&history(&[cny("25000.00")]))
    )
    .is_empty());
}

#[test]
fn domestic_vat_is_13_percent_included() {
    let out = tax("CN", Currency::CNY, &["113.00", "50.00"]);
    assert!(out.inclusive);
    assert_eq!(out.rate.map(|r| r.to_string()), Some("0.13".into()));
    // 113 * 13/113 = 13.00; 50 * 13/113 = 5.752 -> 5.75.
    assert_eq!(out.lines, [cny("13.00"), cny("5.75")]);
    assert_eq!(out.tax, cny("18.75"));
}

#[test]
fn comprehensive_tax_is_9_1_percent_inside_the_limit() {
    let out = tax("KR", Currency::CNY, &["1000.00", "234.56"]);
    assert_eq!(out.tax, cny("0.00"));
    let lc = out.landed_cost.unwrap();
    // 9.1 % of 1,234.56 = 112.34496 -> 112.34.
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (cny("0.00"), cny("112.34"), cny("112.34"))
    );
    assert!(!lc.charged);
    assert!(lc.label.0["en"].starts_with("Cross-border e-commerce comprehensive tax (estimate)"));
    assert_eq!(
        tax("KR", Currency::CNY, &["5000.00"])
            .landed_cost
            .unwrap()
            .import_tax,
        cny("455.00")
    );
    // A single item above CNY 5,000 pays full tax, whose rate the facts do not give.
    assert!(tax("KR", Currency::CNY, &["5000.01"]).landed_cost.is_none());
}
