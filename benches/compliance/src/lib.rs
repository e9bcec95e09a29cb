//! Fixtures for the compliance benchmarks: realistic products and carts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::product::{CountryData, HalalCertificate, Ingredient, Registration};
use jangteo_core::compliance::{ExchangeRates, LineFacts, ProductFacts};
use jangteo_core::ids::{LineId, ProductId};
use jangteo_core::money::{Currency, Money};

/// The day decisions are made for.
pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).expect("a valid date")
}

/// A product as the demo catalog has them: registered in Indonesia, halal, four
/// ingredients, claims in three locales.
pub fn product(i: usize) -> ProductFacts {
    let mut countries = BTreeMap::new();
    countries.insert(
        "ID".to_string(),
        CountryData {
            registration: Some(Registration {
                number: format!("POM SI{:09}", 224_000_100 + i),
                holder: "PT Hanbit Sehat Indonesia".into(),
                expires_on: NaiveDate::from_ymd_opt(2029, 12, 31).expect("date"),
            }),
            halal: Some(Some(HalalCertificate {
                certificate_number: format!("KMF-H-{:05}", 1200 + i),
                issuer: "KMF".into(),
                expires_on: NaiveDate::from_ymd_opt(2028, 6, 30).expect("date"),
            })),
            hs_code: Some("2106.90".into()),
            ..Default::default()
        },
    );
    let ing = |n: &str, a: &str, u: &str| Ingredient {
        name: n.into(),
        amount: a.parse().expect("decimal"),
        unit: u.into(),
    };
    let mut claims = BTreeMap::new();
    for l in ["en", "ko", "id"] {
        claims.insert(
            l.to_string(),
            vec!["Helps support immune function".to_string()],
        );
    }
    ProductFacts {
        countries,
        ingredients: vec![
            ing("Vitamin A", "2000", "IU"),
            ing("Vitamin C", "100", "mg"),
            ing("Vitamin D", "400", "IU"),
            ing("Zinc", "8.5", "mg"),
        ],
        claims,
    }
}

/// Ten products and ten cart lines of one unit each, priced in `currency`.
pub fn lines(products: &[ProductFacts], currency: Currency, unit_minor: i64) -> Vec<LineFacts<'_>> {
    products
        .iter()
        .map(|p| LineFacts {
            line_id: Some(LineId::new()),
            product_id: ProductId::new(),
            product: p,
            quantity: 1,
            line_total: Money::from_minor(unit_minor, currency).expect("money"),
        })
        .collect()
}

/// The demo exchange rates (KRW base).
pub fn rates() -> ExchangeRates {
    serde_json::from_value(serde_json::json!({
        "base": "KRW",
        "rates": {"USD": "0.00072", "IDR": "11.5", "CNY": "0.0052"},
        "source": "bench"
    }))
    .expect("rates")
}
