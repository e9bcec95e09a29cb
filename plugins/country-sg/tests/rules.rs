//! Singapore's rules, checked through the plugin's trait methods with hand-built facts.

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CountryCompliance, ExchangeRates, ProductFacts, TaxOutcome, TaxPolicy,
};
use jangteo_core::money::{Currency, Money};
use jangteo_country_sg::Singapore;
use serde_json::json;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn product(ingredient: &str) -> ProductFacts {
    serde_json::from_value(
        json!({"ingredients": [{"name": ingredient, "amount": "3", "unit": "mg"}]}),
    )
    .unwrap()
}

fn sgd(a: &str) -> Money {
    Money::parse(a, Currency::SGD).unwrap()
}

fn tax(origin: &str, on: &str, currency: Currency, lines: &[&str]) -> TaxOutcome {
    let lines: Vec<Money> = lines
        .iter()
        .map(|a| Money::parse(a, currency).unwrap())
        .collect();
    // 1 SGD = 1,050 KRW.
    let rates: ExchangeRates =
        serde_json::from_value(json!({"base": "SGD", "rates": {"KRW": "1050"}})).unwrap();
    Singapore
        .tax(
            &Singapore.default_rules(),
            &TaxInput {
                country: "SG",
                origin,
                day: day(on),
                currency,
                lines: &lines,
                rates: &rates,
            },
        )
        .unwrap()
}

#[test]
fn keeps_the_plugin_contract() {
    assert_plugin(
        &Singapore,
        &Singapore,
        &ContractSamples::new(day("2026-11-28"), product("zinc")),
    );
}

#[test]
fn melatonin_is_prohibited_and_nothing_needs_registration() {
    let rules = Singapore.default_rules();
    let v = Singapore.listing(&rules, &product("Melatonin"), day("2026-11-28"));
    assert_eq!(
        v.iter().map(|v| v.code.as_str()).collect::<Vec<_>>(),
        ["ingredient_prohibited"]
    );
    assert!(Singapore
        .listing(&rules, &ProductFacts::default(), day("2026-11-28"))
        .is_empty());
}

#[test]
fn gst_was_8_percent_in_2023_and_is_9_percent_since_2024_included_in_prices() {
    let table = [
        ("2022-12-31", None, "0.00"),
        ("2023-01-01", Some("0.08"), "8.00"),
        ("2023-12-31", Some("0.08"), "8.00"),
        ("2024-01-01", Some("0.09"), "8.92"),
        ("2026-11-28", Some("0.09"), "8.92"),
    ];
    for (on, rate, tax_amount) in table {
        // 108.00 incl. 8 % = 8.00; incl. 9 % = 8.917 -> 8.92.
        let out = tax("SG", on, Currency::SGD, &["108.00"]);
        assert_eq!(
            out.rate.map(|r| r.to_string()),
            rate.map(String::from),
            "{on}"
        );
        assert_eq!(out.tax, sgd(tax_amount), "{on}");
        assert_eq!(out.inclusive, rate.is_some(), "{on}");
        assert_eq!(out.name.as_deref(), rate.map(|_| "GST"), "{on}");
    }
    assert_eq!(
        tax("SG", "2024-01-01", Currency::SGD, &["109.00"]).tax,
        sgd("9.00")
    );
}

#[test]
fn low_value_goods_gst_is_charged_up_to_sgd_400() {
    let out = tax("KR", "2026-11-28", Currency::SGD, &["150.00", "49.99"]);
    // 9 % of 199.99 = 17.9991 -> 18.00, charged in the total.
    assert_eq!(out.tax, sgd("0.00"));
    assert_eq!(out.duties, sgd("18.00"));
    let lc = out.landed_cost.unwrap();
    assert!(lc.charged);
    assert_eq!((lc.duty, lc.import_tax), (sgd("0.00"), sgd("18.00")));
    assert_eq!(
        tax("KR", "2026-11-28", Currency::SGD, &["400.00"]).duties,
        sgd("36.00")
    );
    let above = tax("KR", "2026-11-28", Currency::SGD, &["400.01"]);
    assert_eq!((above.duties, above.landed_cost), (sgd("0.00"), None));
    // Through the rates: 420,000 KRW = SGD 400 exactly; 420,001 KRW is above.
    let krw = |a: &str| Money::parse(a, Currency::KRW).unwrap();
    assert_eq!(
        tax("KR", "2026-11-28", Currency::KRW, &["420000"]).duties,
        krw("37800")
    );
    assert!(tax("KR", "2026-11-28", Currency::KRW, &["420001"])
        .landed_cost
        .is_none());
}
