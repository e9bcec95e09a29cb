//! Japan's rules, checked through the plugin's trait methods with hand-built facts.

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CountryCompliance, ExchangeRates, ProductFacts, TaxOutcome, TaxPolicy,
};
use jangteo_core::money::{Currency, Money};
use jangteo_country_jp::Japan;
use serde_json::json;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn product(ingredient: &str) -> ProductFacts {
    serde_json::from_value(
        json!({"ingredients": [{"name": ingredient, "amount": "25", "unit": "mg"}]}),
    )
    .unwrap()
}

fn jpy(a: &str) -> Money {
    Money::parse(a, Currency::JPY).unwrap()
}

fn tax(origin: &str, currency: Currency, lines: &[&str]) -> TaxOutcome {
    let lines: Vec<Money> = lines
        .iter()
        .map(|a| Money::parse(a, currency).unwrap())
        .collect();
    // 1 USD = 1,400 KRW = 150 JPY.
    let rates: ExchangeRates =
        serde_json::from_value(json!({"base": "USD", "rates": {"KRW": "1400", "JPY": "150"}}))
            .unwrap();
    Japan
        .tax(
            &Japan.default_rules(),
            &TaxInput {
                country: "JP",
                origin,
                day: day("2026-11-28"),
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
        &Japan,
        &Japan,
        &ContractSamples::new(day("2026-11-28"), product("lutein")),
    );
}

#[test]
fn melatonin_and_dhea_are_drugs() {
    let rules = Japan.default_rules();
    for name in ["melatonin", "メラトニン", "DHEA", "dehydroepiandrosterone"] {
        let v = Japan.listing(&rules, &product(name), day("2026-11-28"));
        assert_eq!(
            v.iter().map(|v| v.code.as_str()).collect::<Vec<_>>(),
            ["ingredient_prohibited"],
            "{name}"
        );
    }
    assert!(Japan
        .listing(&rules, &product("yohimbine"), day("2026-11-28"))
        .is_empty());
    assert_eq!(
        Japan
            .listing(&rules, &product("lutein"), day("2023-12-31"))
            .iter()
            .map(|v| v.code.as_str())
            .collect::<Vec<_>>(),
        ["country_not_served"]
    );
}

#[test]
fn consumption_tax_is_8_percent_included() {
    let out = tax("JP", Currency::JPY, &["1080", "3000"]);
    assert!(out.inclusive);
    assert_eq!(out.name.as_deref(), Some("消費税"));
    assert_eq!(out.rate.map(|r| r.to_string()), Some("0.08".into()));
    // 1,080 * 8/108 = 80; 3,000 * 8/108 = 222.2 -> 222.
    assert_eq!(out.lines, [jpy("80"), jpy("222")]);
    assert_eq!(out.tax, jpy("302"));
}

#[test]
fn small_parcels_up_to_jpy_10000_are_waived() {
    let out = tax("KR", Currency::JPY, &["6000", "4000"]);
    assert_eq!(out.tax, jpy("0"));
    let lc = out.landed_cost.unwrap();
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total, lc.charged),
        (jpy("0"), jpy("0"), jpy("0"), false)
    );
    assert_eq!(
        lc.label.0["ja"],
        "課税価格1万円以下の小口輸入：関税・消費税は免除"
    );
    // Above JPY 10,000 nothing is known: no estimate.
    assert!(tax("KR", Currency::JPY, &["10001"]).landed_cost.is_none());
    // Through the rates: 93,333 KRW = JPY 9,999.96; 93,334 KRW = JPY 10,000.07.
    assert!(tax("KR", Currency::KRW, &["93333"]).landed_cost.is_some());
    assert!(tax("KR", Currency::KRW, &["93334"]).landed_cost.is_none());
}
