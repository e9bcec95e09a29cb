//! Evaluating a 10-line cart against a country's rules (budget: < 50 µs median).
//!
//! `cargo bench -p jangteo-compliance-bench`. Each case is one cart view's work: the
//! cart checks, tax and landed cost, and the localized messages of any violations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use divan::{black_box, Bencher};
use jangteo_compliance_bench::{day, lines, product, rates};
use jangteo_core::compliance::registry::{ComplianceRegistry, Plugin};
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{BuyerHistory, CartFacts, CountryCompliance};
use jangteo_core::money::{Currency, Money};

fn main() {
    divan::main();
}

fn registry() -> ComplianceRegistry {
    let id = Arc::new(jangteo_country_id::Indonesia);
    let kr = Arc::new(jangteo_country_kr::Korea);
    ComplianceRegistry::new(
        vec![
            Plugin {
                compliance: id.clone(),
                tax: id,
            },
            Plugin {
                compliance: kr.clone(),
                tax: kr,
            },
        ],
        "KR",
        &[7u8; 32],
        Duration::from_secs(5),
    )
    .expect("registry")
}

#[divan::bench(args = ["ID export (IDR)", "KR domestic (KRW)"], min_time = Duration::from_secs(2))]
fn ten_line_cart(bencher: Bencher, case: &str) {
    let reg = registry();
    let (country, currency, unit) = match case {
        "ID export (IDR)" => ("ID", Currency::IDR, 448_500),
        _ => ("KR", Currency::KRW, 39_000),
    };
    let plugin = reg.plugin(country).expect("plugin").clone();
    let rules = plugin.compliance.default_rules();
    let products: Vec<_> = (0..10).map(product).collect();
    let lines = lines(&products, currency, unit);
    let totals: Vec<Money> = lines.iter().map(|l| l.line_total).collect();
    let subtotal = totals
        .iter()
        .try_fold(Money::zero(currency), |a, b| a.checked_add(*b))
        .expect("sum");
    let rates = rates();
    let mut ids = BTreeMap::new();
    ids.insert("id_nik".to_string(), "3171014101900001".to_string());
    bencher.bench_local(|| {
        let cart = CartFacts {
            country,
            origin: "KR",
            day: day(),
            lines: &lines,
            subtotal,
            identifiers: &ids,
            rates: &rates,
            history: Some(&BuyerHistory::default()),
        };
        let mut v = plugin.compliance.check_checkout(&rules, black_box(&cart));
        let tax = plugin
            .tax
            .tax(
                &rules,
                &TaxInput {
                    country,
                    origin: "KR",
                    day: day(),
                    currency,
                    lines: &totals,
                    rates: &rates,
                },
            )
            .expect("tax");
        reg.localize(&mut v, &["ko", "en"], country);
        black_box((v, tax))
    });
}

/// The same cart with every line breaking a rule, so ten messages are rendered.
#[divan::bench(min_time = Duration::from_secs(2))]
fn ten_line_cart_all_violating(bencher: Bencher) {
    let reg = registry();
    let plugin = reg.plugin("ID").expect("plugin").clone();
    let rules = plugin.compliance.default_rules();
    let products: Vec<_> = (0..10)
        .map(|i| {
            let mut p = product(i);
            p.ingredients[2].amount = "4000".parse().expect("decimal");
            p
        })
        .collect();
    let lines = lines(&products, Currency::IDR, 448_500);
    let subtotal = Money::from_minor(4_485_000, Currency::IDR).expect("money");
    let rates = rates();
    let ids = BTreeMap::new();
    bencher.bench_local(|| {
        let cart = CartFacts {
            country: "ID",
            origin: "KR",
            day: day(),
            lines: &lines,
            subtotal,
            identifiers: &ids,
            rates: &rates,
            history: None,
        };
        let mut v = plugin.compliance.check_cart(&rules, black_box(&cart));
        reg.localize(&mut v, &["id", "en"], "ID");
        assert_eq!(v.len(), 11);
        black_box(v)
    });
}

/// Moment 1 for a page of 20 products (what a `?country=ID` listing adds per page).
#[divan::bench(min_time = Duration::from_secs(2))]
fn listing_page_of_20(bencher: Bencher) {
    let plugin = jangteo_country_id::Indonesia;
    let rules = plugin.default_rules();
    let products: Vec<_> = (0..20).map(product).collect();
    bencher.bench_local(|| {
        products
            .iter()
            .filter(|p| plugin.listing(&rules, black_box(p), day()).is_empty())
            .count()
    });
}
