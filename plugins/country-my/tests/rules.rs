//! Malaysia's rules, checked through the plugin's trait methods with hand-built facts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CartFacts, CountryCompliance, ExchangeRates, LineFacts, ProductFacts, TaxOutcome, TaxPolicy,
    Violation,
};
use jangteo_core::ids::ProductId;
use jangteo_core::money::{Currency, Money};
use jangteo_country_my::Malaysia;
use serde_json::{json, Value};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn registered(number: &str, expires_on: &str, ingredients: Value) -> ProductFacts {
    serde_json::from_value(json!({
        "countries": {"MY": {"registration": {"number": number, "holder": "Contoh Sdn Bhd", "expires_on": expires_on}}},
        "ingredients": ingredients
    }))
    .unwrap()
}

fn fish_oil() -> ProductFacts {
    registered(
        "MAL20012345N",
        "2029-12-31",
        json!([{"name": "EPA", "amount": "360", "unit": "mg"}]),
    )
}

fn codes(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.code.as_str()).collect()
}

fn listing(p: &ProductFacts, on: &str) -> Vec<Violation> {
    Malaysia.listing(&Malaysia.default_rules(), p, day(on))
}

/// 1 USD = 1,400 KRW = 4.20 MYR.
fn rates() -> ExchangeRates {
    serde_json::from_value(json!({"base": "USD", "rates": {"KRW": "1400", "MYR": "4.20"}})).unwrap()
}

fn tax(origin: &str, on: &str, currency: Currency, lines: &[&str]) -> TaxOutcome {
    let lines: Vec<Money> = lines
        .iter()
        .map(|a| Money::parse(a, currency).unwrap())
        .collect();
    let rates = rates();
    Malaysia
        .tax(
            &Malaysia.default_rules(),
            &TaxInput {
                country: "MY",
                origin,
                day: day(on),
                currency,
                lines: &lines,
                rates: &rates,
            },
        )
        .unwrap()
}

fn myr(a: &str) -> Money {
    Money::parse(a, Currency::MYR).unwrap()
}

#[test]
fn keeps_the_plugin_contract() {
    assert_plugin(
        &Malaysia,
        &Malaysia,
        &ContractSamples::new(day("2026-11-28"), fish_oil()),
    );
}

#[test]
fn registration_is_an_npra_supplement_number_in_force() {
    let ok = json!([]);
    for number in ["MAL20012345N", "MAL19876543NC", "MAL19876543NCR"] {
        assert!(
            listing(&registered(number, "2029-12-31", ok.clone()), "2026-11-28").is_empty(),
            "{number}"
        );
    }
    // Other category letters, wrong digit counts, and spacing are not supplement numbers.
    for number in [
        "MAL12345678X",
        "MAL12345678A",
        "MAL1234567N",
        "MAL123456789N",
        "MAL 20012345N",
        "MAL20012345NCRX",
        "mal20012345n",
    ] {
        let v = listing(&registered(number, "2029-12-31", ok.clone()), "2026-11-28");
        assert_eq!(codes(&v), ["not_registered"], "{number}");
        assert_eq!(v[0].args["authority"], "NPRA");
    }
    let p = registered("MAL20012345N", "2026-03-31", ok);
    assert!(listing(&p, "2026-03-31").is_empty());
    let v = listing(&p, "2026-04-01");
    assert_eq!(codes(&v), ["not_registered"]);
    assert_eq!(v[0].args["expired"], "2026-03-31");
    assert_eq!(
        codes(&listing(&ProductFacts::default(), "2026-11-28")),
        ["not_registered"]
    );
}

#[test]
fn melatonin_is_prohibited() {
    let p = registered(
        "MAL20012345N",
        "2029-12-31",
        json!([{"name": "melatonin", "amount": "3", "unit": "mg"}]),
    );
    assert_eq!(codes(&listing(&p, "2026-11-28")), ["ingredient_prohibited"]);
}

#[test]
fn keep_out_of_reach_of_children_in_malay_and_english() {
    let rules = Malaysia.default_rules();
    assert_eq!(rules.label_statements.len(), 1);
    let s = &rules.label_statements[0];
    assert_eq!(
        (s.key.as_str(), serde_json::to_value(s.when).unwrap()),
        ("keep_out_of_reach", json!("always"))
    );
    // Required in both Malay and English, so every locale shows both.
    for locale in ["ms", "en", "ko"] {
        let t = &s.text.0[locale];
        assert!(
            t.contains("Jauhkan daripada kanak-kanak")
                && t.contains("Keep out of reach of children"),
            "{locale}: {t}"
        );
    }
}

#[test]
fn no_import_limits_or_identifiers_are_known() {
    let p = fish_oil();
    let lines = [LineFacts {
        line_id: None,
        product_id: ProductId::new(),
        product: &p,
        quantity: 30,
        line_total: myr("3000.00"),
    }];
    let ids = BTreeMap::new();
    let rates = rates();
    let cart = CartFacts {
        country: "MY",
        origin: "KR",
        day: day("2026-11-28"),
        lines: &lines,
        subtotal: myr("3000.00"),
        identifiers: &ids,
        rates: &rates,
        history: None,
    };
    assert!(Malaysia
        .check_checkout(&Malaysia.default_rules(), &cart)
        .is_empty());
}

#[test]
fn domestic_sales_carry_no_tax() {
    let out = tax("MY", "2026-11-28", Currency::MYR, &["120.00"]);
    assert_eq!((out.tax, out.name, out.landed_cost), (myr("0"), None, None));
}

#[test]
fn low_value_goods_sales_tax_is_charged_at_checkout() {
    let out = tax("KR", "2026-11-28", Currency::MYR, &["100.00", "23.45"]);
    assert_eq!(out.tax, myr("0"), "exports are zero-rated at origin");
    // 10 % of 123.45 = 12.345 -> 12.35.
    assert_eq!(out.duties, myr("12.35"));
    let lc = out.landed_cost.unwrap();
    assert!(lc.charged);
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (myr("0"), myr("12.35"), myr("12.35"))
    );
    assert_eq!(
        lc.label.0["ms"],
        "Barangan bernilai rendah sehingga RM 500: cukai jualan 10 %, dikenakan semasa pembayaran"
    );

    // RM 500 exactly is low-value; one sen more is not, and no band is known above it.
    assert_eq!(
        tax("KR", "2026-11-28", Currency::MYR, &["500.00"]).duties,
        myr("50.00")
    );
    let above = tax("KR", "2026-11-28", Currency::MYR, &["500.01"]);
    assert_eq!((above.duties, above.landed_cost), (myr("0"), None));

    // A KRW cart is compared with RM 500 through the rates (1,400 KRW = RM 4.20):
    // 166,600 KRW = RM 499.80 is inside the band, 499,800 KRW = RM 1,499.40 is not.
    let krw = |a: &str| Money::parse(a, Currency::KRW).unwrap();
    let out = tax("KR", "2026-11-28", Currency::KRW, &["166600"]);
    assert_eq!(out.duties, krw("16660"));
    assert!(tax("KR", "2026-11-28", Currency::KRW, &["499800"])
        .landed_cost
        .is_none());

    // Before the low-value goods tax (and before service) there is no band.
    assert!(tax("KR", "2023-12-31", Currency::MYR, &["100.00"])
        .landed_cost
        .is_none());
}
