//! How a product's compliance facts are split over its columns, the same on every
//! backend: `countries` holds `facts.countries`, `compliance` holds
//! `{"ingredients": [...], "claims": {...}}`.

use std::collections::BTreeMap;

use jangteo_core::compliance::product::Ingredient;
use jangteo_core::compliance::ProductFacts;
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
pub(crate) fn from_columns(countries: &str, compliance: &str) -> CoreResult<ProductFacts> {
    let c: StoredCompliance = serde_json::from_str(compliance).map_err(json)?;
    Ok(ProductFacts {
        countries: serde_json::from_str(countries).map_err(json)?,
        ingredients: c.ingredients,
        claims: c.claims,
    })
}
