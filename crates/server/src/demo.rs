//! Demo data: about 50 Korean supplements with ko / en / id texts and KRW / USD / IDR
//! prices, loaded through the same use cases an operator would call.

use jangteo_core::auth::Principal;
use jangteo_core::catalog::{Category, ProductInput};
use jangteo_core::compliance::ExchangeRates;
use jangteo_core::customer::Role;
use jangteo_core::ids::CustomerId;
use jangteo_core::locale::LocalizedText;
use jangteo_core::{CoreError, Engine};
use serde::Deserialize;

const CATALOG: &str = include_str!("demo/catalog.json");

/// Demo exchange rates (won per unit is the base): illustrative, not market data.
const RATES: &str = r#"{
    "base": "KRW",
    "rates": {"USD": "0.00072", "IDR": "11.5", "JPY": "0.108", "SGD": "0.00094",
              "MYR": "0.0032", "CNY": "0.0052", "VND": "18.2", "THB": "0.025", "EUR": "0.00066"},
    "source": "Jangteo demo data, November 2026 (illustrative; replace with your bank's rates)"
}"#;

#[derive(Deserialize)]
struct DemoCategory {
    handle: String,
    name: LocalizedText,
}

#[derive(Deserialize)]
struct DemoCatalog {
    categories: Vec<DemoCategory>,
    products: Vec<ProductInput>,
}

/// The principal demo data is written as (shows up in the audit log).
pub(crate) fn system_principal() -> Principal {
    // The nil id: a fixed id for the system actor that is never a real account.
    Principal {
        id: CustomerId(Default::default()),
        email: "system@jangteo.local".into(),
        role: Role::Admin,
    }
}

/// Loads the demo catalog unless the store already has products. Returns how many
/// products were created.
pub(crate) async fn seed(engine: &Engine) -> Result<usize, CoreError> {
    if engine.exchange_rates().await?.version == 0 {
        let rates: ExchangeRates = serde_json::from_str(RATES)
            .map_err(|e| CoreError::Internal(format!("demo rates are malformed: {e}")))?;
        engine
            .put_exchange_rates(&system_principal(), rates, Some(0))
            .await?;
    }
    let existing = engine
        .search_products(&jangteo_core::service::catalog::ProductSearch {
            include_drafts: true,
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    if !existing.products.is_empty() {
        return Ok(0);
    }
    let catalog: DemoCatalog = serde_json::from_str(CATALOG)
        .map_err(|e| CoreError::Internal(format!("demo catalog is malformed: {e}")))?;
    let who = system_principal();
    for c in catalog.categories {
        engine
            .upsert_category(
                &who,
                Category {
                    handle: c.handle,
                    name: c.name,
                },
            )
            .await?;
    }
    let n = catalog.products.len();
    for p in catalog.products {
        engine.create_product(&who, p).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use jangteo_core::clock::{Clock, SystemClock};

    #[test]
    fn the_demo_catalog_parses_and_validates() {
        let c: super::DemoCatalog = serde_json::from_str(super::CATALOG).unwrap();
        assert!(c.products.len() >= 50);
        let mut handles = std::collections::BTreeSet::new();
        for p in c.products {
            let p = p.into_new_product(SystemClock.now()).unwrap();
            assert!(handles.insert(p.handle.clone()));
            for l in ["ko", "en", "id"] {
                assert!(p.title.0.contains_key(l), "{} lacks a {l} title", p.handle);
            }
        }
    }
}
