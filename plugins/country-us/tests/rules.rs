//! The United States' rules, checked through the plugin's trait methods with
//! hand-built facts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::rules::StatementWhen;
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CartFacts, CountryCompliance, ExchangeRates, LineFacts, ProductFacts, TaxPolicy, Violation,
};
use jangteo_core::ids::ProductId;
use jangteo_core::money::{Currency, Money};
use jangteo_country_us::UnitedStates;
use serde_json::json;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn product(ingredient: &str) -> ProductFacts {
    serde_json::from_value(json!({
        "ingredients": [{"name": ingredient, "amount": "3", "unit": "mg"}],
        "claims": {"en": ["Supports restful sleep"]}
    }))
    .unwrap()
}

fn codes(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.code.as_str()).collect()
}

fn usd(a: &str) -> Money {
    Money::parse(a, Currency::USD).unwrap()
}

#[test]
fn keeps_the_plugin_contract() {
    assert_plugin(
        &UnitedStates,
        &UnitedStates,
        &ContractSamples::new(day("2026-11-28"), product("melatonin")),
    );
}

#[test]
fn ephedra_dmaa_and_cbd_are_prohibited_melatonin_is_not() {
    let rules = UnitedStates.default_rules();
    for name in [
        "ephedrine alkaloids",
        "Ephedra",
        "ma huang",
        "DMAA",
        "1,3-Dimethylamylamine",
        "CBD",
        "cannabidiol",
    ] {
        let v = UnitedStates.listing(&rules, &product(name), day("2026-11-28"));
        assert_eq!(codes(&v), ["ingredient_prohibited"], "{name}");
    }
    for name in ["melatonin", "DHEA", "yohimbine"] {
        assert!(
            UnitedStates
                .listing(&rules, &product(name), day("2026-11-28"))
                .is_empty(),
            "{name}"
        );
    }
}

#[test]
fn dshea_disclaimer_is_verbatim_and_bold_for_one_or_several_claims() {
    let rules = UnitedStates.default_rules();
    let find = |when: StatementWhen| {
        let v: Vec<_> = rules
            .label_statements
            .iter()
            .filter(|s| s.when == when)
            .collect();
        assert_eq!(v.len(), 1, "{when:?}");
        assert_eq!(v[0].key, "dshea_disclaimer");
        assert!(v[0].emphasis, "{when:?}");
        v[0].text.0["en"].clone()
    };
    assert_eq!(
        find(StatementWhen::OneClaim),
        "This statement has not been evaluated by the Food and Drug Administration. This product is not intended to diagnose, treat, cure, or prevent any disease."
    );
    assert_eq!(
        find(StatementWhen::SeveralClaims),
        "These statements have not been evaluated by the Food and Drug Administration. This product is not intended to diagnose, treat, cure, or prevent any disease."
    );
    assert_eq!(rules.label_statements.len(), 2);
}

#[test]
fn no_tax_and_no_landed_cost_estimate() {
    let rates = ExchangeRates::default();
    for (origin, on) in [
        ("US", "2026-11-28"),
        ("KR", "2025-08-28"),
        ("KR", "2025-08-29"),
        ("KR", "2026-11-28"),
    ] {
        let out = UnitedStates
            .tax(
                &UnitedStates.default_rules(),
                &TaxInput {
                    country: "US",
                    origin,
                    day: day(on),
                    currency: Currency::USD,
                    lines: &[usd("29.90"), usd("900.00")],
                    rates: &rates,
                },
            )
            .unwrap();
        assert_eq!(out.lines, [usd("0"), usd("0")], "{origin} {on}");
        assert_eq!(
            (out.tax, out.duties, out.inclusive),
            (usd("0"), usd("0"), false)
        );
        assert!(
            out.name.is_none() && out.landed_cost.is_none(),
            "{origin} {on}"
        );
    }
}

#[test]
fn no_import_limits_or_identifiers_for_consumers() {
    let p = product("vitamin C");
    let lines = [LineFacts {
        line_id: None,
        product_id: ProductId::new(),
        product: &p,
        quantity: 40,
        line_total: usd("2000.00"),
    }];
    let ids = BTreeMap::new();
    let rates = ExchangeRates::default();
    let cart = CartFacts {
        country: "US",
        origin: "KR",
        day: day("2026-11-28"),
        lines: &lines,
        subtotal: usd("2000.00"),
        identifiers: &ids,
        rates: &rates,
        history: None,
    };
    assert!(UnitedStates
        .check_checkout(&UnitedStates.default_rules(), &cart)
        .is_empty());
}
