//! How a product's compliance facts are split over its columns, the same on every
//! backend: `countries` holds `facts.countries`, `compliance` holds
//! `{"ingredients": [...], "claims": {...}}`.

use std::collections::BTreeMap;

use jangteo_core::compliance::product::Ingredient;
use jangteo_core::compliance::{CountryData, ProductFacts};
use jangteo_core::CoreResult;
use serde::{Deserialize, Serialize};

use crate::error::json;

/// The `compliance` column, as written.
#[derive(Serialize)]
pub(crate) struct ComplianceColumn<'a> {
    ingredients: &'a [Ingredient],
    claims: &'a BTreeMap<String, Vec<String>>,
}

impl<'a> ComplianceColumn<'a> {
    pub(crate) fn of(facts: &'a ProductFacts) -> Self {
        ComplianceColumn {
            ingredients: &facts.ingredients,
            claims: &facts.claims,
        }
    }
}

/// The `compliance` column, as read: rows written before the column existed hold `{}`.
#[derive(Deserialize)]
struct StoredCompliance {
    #[serde(default)]
    ingredients: Vec<Ingredient>,
    #[serde(default)]
    claims: BTreeMap<String, Vec<String>>,
}

/// The `countries` and `compliance` columns of a product, as JSON text.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn to_columns(facts: &ProductFacts) -> CoreResult<(String, String)> {
    Ok((
        serde_json::to_string(&facts.countries).map_err(json)?,
        serde_json::to_string(&ComplianceColumn::of(facts)).map_err(json)?,
    ))
}

/// Facts from the `countries` and `compliance` columns' JSON text.
///
/// A country object that does not fit the schema (written as free-form JSON before
/// the compliance schema existed) is left out with a warning instead of making the
/// whole product unreadable: without its data the product is simply not sellable
/// where that country requires a registration, which fails closed. Re-saving the
/// product through the admin API validates and rewrites it.
pub(crate) fn from_columns(countries: &str, compliance: &str) -> CoreResult<ProductFacts> {
    let c: StoredCompliance = serde_json::from_str(compliance).map_err(json)?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(countries).map_err(json)?;
    let countries = raw
        .into_iter()
        .filter_map(|(code, v)| match serde_json::from_value::<CountryData>(v) {
            Ok(d) => Some((code, d)),
            Err(e) => {
                tracing::warn!(country = %code, error = %e, "stored country data does not fit the schema; ignored");
                None
            }
        })
        .collect();
    Ok(ProductFacts {
        countries,
        ingredients: c.ingredients,
        claims: c.claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_country_objects_do_not_make_a_product_unreadable() {
        let facts = from_columns(
            r#"{"ID": {"registration": {"number": "POM SI 123456789"}}, "KR": null, "MY": {"hs_code": "2106.90"}}"#,
            "{}",
        )
        .unwrap();
        assert_eq!(facts.countries.keys().collect::<Vec<_>>(), ["MY"]);
        assert_eq!(facts.countries["MY"].hs_code.as_deref(), Some("2106.90"));
    }
}
