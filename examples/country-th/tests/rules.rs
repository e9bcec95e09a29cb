//! The contract every plugin keeps, then Thailand's rules on the days they change.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{check_plugin, ContractSamples};
use jangteo_core::compliance::product::{CountryData, Ingredient, Registration};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CartFacts, CountryCompliance, ExchangeRates, LineFacts, ProductFacts, TaxPolicy, ViolationCode,
};
use jangteo_core::ids::{LineId, ProductId};
use jangteo_core::money::{Currency, Money};
use jangteo_country_th_example::Thailand;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn registered(number: &str, expires: &str) -> ProductFacts {
    let mut countries = BTreeMap::new();
    countries.insert(
        "TH".to_string(),
        CountryData {
            registration: Some(Registration {
                number: number.into(),
                holder: "Siam Health Import Co., Ltd.".into(),
                expires_on: day(expires),
            }),
            ..Default::default()
        },
    );
    ProductFacts {
        countries,
        ingredients: vec![Ingredient {
            name: "Red ginseng extract".into(),
            amount: "3000".parse().unwrap(),
            unit: "mg".into(),
        }],
        claims: BTreeMap::new(),
    }
}

#[test]
fn keeps_the_plugin_contract() {
    let samples = ContractSamples::new(
        day("2026-12-15"),
        registered("10-1-12345-5-0001", "2030-01-01"),
    );
    assert_eq!(check_plugin(&Thailand, &Thailand, &samples), Ok(()));
}

#[test]
fn listing_needs_a_valid_fda_serial_and_service_from_december() {
    let rules = Thailand.default_rules();
    let ok = registered("1011234550001", "2030-01-01");
    assert!(Thailand.listing(&rules, &ok, day("2026-12-01")).is_empty());
    // Before the store serves Thailand nothing is listed.
    let before = Thailand.listing(&rules, &ok, day("2026-11-30"));
    assert_eq!(before[0].code, ViolationCode::CountryNotServed);
    // A malformed or expired serial, or none, is not registered.
    for p in [
        registered("10-1-1234", "2030-01-01"),
        registered("10-1-12345-5-0001", "2026-12-31"),
        ProductFacts::default(),
    ] {
        let v = Thailand.listing(&rules, &p, day("2027-01-01"));
        assert_eq!(
            v.iter().map(|v| v.code).collect::<Vec<_>>(),
            [ViolationCode::NotRegistered],
            "{p:?}"
        );
    }
    // Hemp under any of its names is barred.
    let mut hemp = ok.clone();
    hemp.ingredients.push(Ingredient {
        name: "กัญชง".into(),
        amount: "10".parse().unwrap(),
        unit: "mg".into(),
    });
    let v = Thailand.listing(&rules, &hemp, day("2026-12-01"));
    assert_eq!(
        v.iter().map(|v| v.code).collect::<Vec<_>>(),
        [ViolationCode::IngredientProhibited]
    );
}

#[test]
fn vat_ends_where_the_facts_end() {
    let rules = Thailand.default_rules();
    let rates = ExchangeRates::default();
    let line = [Money::parse("107.00", Currency::THB).unwrap()];
    let tax_on = |d: &str| {
        Thailand
            .tax(
                &rules,
                &TaxInput {
                    country: "TH",
                    origin: "TH",
                    day: day(d),
                    currency: Currency::THB,
                    lines: &line,
                    rates: &rates,
                },
            )
            .unwrap()
    };
    let sept = tax_on("2026-09-30");
    assert_eq!(sept.tax, Money::parse("7.00", Currency::THB).unwrap());
    assert!(sept.inclusive);
    // From October the rate is unknown: no tax is invented.
    assert_eq!(tax_on("2026-10-01").tax, Money::zero(Currency::THB));
}

#[test]
fn a_korean_parcel_of_1000_baht_in_2025_owes_vat_only() {
    let rules = Thailand.default_rules();
    let rates = ExchangeRates::default();
    let line = [Money::parse("1000.00", Currency::THB).unwrap()];
    let input = |d: &str| TaxInput {
        country: "TH",
        origin: "KR",
        day: day(d),
        currency: Currency::THB,
        lines: &line,
        rates: &rates,
    };
    let out = Thailand.tax(&rules, &input("2025-06-01")).unwrap();
    let lc = out.landed_cost.expect("estimate");
    assert_eq!(
        (lc.duty.amount.to_string(), lc.import_tax.amount.to_string()),
        ("0.00".into(), "70.00".into())
    );
    assert!(!lc.charged);
    // Exported goods carry no Thai VAT in the price.
    assert_eq!(out.tax, Money::zero(Currency::THB));
    // 2026: the exemption ended and the duty is unknown, so no estimate is shown.
    assert!(Thailand
        .tax(&rules, &input("2026-12-01"))
        .unwrap()
        .landed_cost
        .is_none());

    // Cart check: a cross-border cart has no import quantity rule to break.
    let facts = registered("10-1-12345-5-0001", "2030-01-01");
    let lines = [LineFacts {
        line_id: Some(LineId::new()),
        product_id: ProductId::new(),
        product: &facts,
        quantity: 12,
        line_total: line[0],
    }];
    let ids = BTreeMap::new();
    let cart = CartFacts {
        country: "TH",
        origin: "KR",
        day: day("2026-12-02"),
        lines: &lines,
        subtotal: line[0],
        identifiers: &ids,
        rates: &rates,
        history: None,
    };
    assert!(Thailand.check_cart(&rules, &cart).is_empty());
}
