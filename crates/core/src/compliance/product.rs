//! What a product says about itself for compliance: ingredients per daily dose and
//! claims at product level, and per destination country a registration, halal status,
//! HS code and label statements.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::FieldError;
use crate::locale::is_valid_tag;

/// A product registration with a destination's regulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Registration number as issued (`POM SI123456789`).
    pub number: String,
    /// The local company holding it.
    pub holder: String,
    /// Last day it is valid.
    pub expires_on: NaiveDate,
}

/// A halal certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HalalCertificate {
    /// Certificate number.
    pub certificate_number: String,
    /// Issuing body (`KMF`, `BPJPH`, `JAKIM`).
    pub issuer: String,
    /// Last day it is valid.
    pub expires_on: NaiveDate,
}

/// One active ingredient, per daily dose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingredient {
    /// Name, matched case-insensitively against rule names and aliases.
    pub name: String,
    /// Amount per daily dose.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Unit (`mg`, `mcg`, `IU`, `g`).
    pub unit: String,
}

/// Distinguishes an absent `halal` (unknown) from `halal: null` (declared not halal).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A product's data for one destination country (`countries.ID`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryData {
    /// Registration with the destination's regulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
    /// Absent: unknown. `null`: declared not halal. An object: the certificate.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub halal: Option<Option<HalalCertificate>>,
    /// Customs tariff code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_code: Option<String>,
    /// Statements the product itself must show there, per locale (warnings, importer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_statements: BTreeMap<String, Vec<String>>,
    /// Fields a country plugin defines (Korea's `ad_review_id`); checked by the plugin.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Everything compliance decisions read from a product.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductFacts {
    /// Per destination country.
    #[serde(default)]
    pub countries: BTreeMap<String, CountryData>,
    /// Active ingredients per daily dose.
    #[serde(default)]
    pub ingredients: Vec<Ingredient>,
    /// Structure/function claims per locale (`"supports immune function"`).
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
}

impl ProductFacts {
    /// A country's data.
    pub fn country(&self, code: &str) -> Option<&CountryData> {
        self.countries.get(code)
    }
}

fn text_ok(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Checks the shape every country shares; plugins add formats (see
/// [`super::CountryCompliance::check_product_data`]).
pub fn check_common(data: &CountryData, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(r) = &data.registration {
        if !text_ok(&r.number, 64) {
            errors.push(FieldError::new(
                format!("{path}.registration.number"),
                "required",
                "1-64 characters",
            ));
        }
        if !text_ok(&r.holder, 200) {
            errors.push(FieldError::new(
                format!("{path}.registration.holder"),
                "required",
                "1-200 characters",
            ));
        }
    }
    if let Some(Some(h)) = &data.halal {
        for (f, v) in [
            ("certificate_number", &h.certificate_number),
            ("issuer", &h.issuer),
        ] {
            if !text_ok(v, 100) {
                errors.push(FieldError::new(
                    format!("{path}.halal.{f}"),
                    "required",
                    "1-100 characters",
                ));
            }
        }
    }
    if let Some(hs) = &data.hs_code {
        let digits: String = hs.chars().filter(|c| *c != '.').collect();
        if !(6..=12).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new(
                format!("{path}.hs_code"),
                "invalid_format",
                "6 to 12 digits, dots allowed",
            ));
        }
    }
    for (tag, list) in &data.label_statements {
        if !is_valid_tag(tag) {
            errors.push(FieldError::new(
                format!("{path}.label_statements.{tag}"),
                "invalid_locale",
                "not a BCP 47 locale tag",
            ));
        }
        if list.len() > 20 || list.iter().any(|s| !text_ok(s, 1_000)) {
            errors.push(FieldError::new(
                format!("{path}.label_statements.{tag}"),
                "invalid_value",
                "at most 20 statements of 1-1000 characters",
            ));
        }
    }
}

/// Checks product-level ingredients and claims.
pub fn check_product_level(
    ingredients: &[Ingredient],
    claims: &BTreeMap<String, Vec<String>>,
    errors: &mut Vec<FieldError>,
) {
    if ingredients.len() > 100 {
        errors.push(FieldError::new("ingredients", "too_many", "at most 100"));
    }
    for (i, ing) in ingredients.iter().enumerate() {
        if !text_ok(&ing.name, 200) {
            errors.push(FieldError::new(
                format!("ingredients[{i}].name"),
                "required",
                "1-200 characters",
            ));
        }
        if ing.amount.is_sign_negative() {
            errors.push(FieldError::new(
                format!("ingredients[{i}].amount"),
                "out_of_range",
                "not negative",
            ));
        }
        if !text_ok(&ing.unit, 16) {
            errors.push(FieldError::new(
                format!("ingredients[{i}].unit"),
                "required",
                "1-16 characters",
            ));
        }
    }
    for (tag, list) in claims {
        if !is_valid_tag(tag) {
            errors.push(FieldError::new(
                format!("claims.{tag}"),
                "invalid_locale",
                "not a BCP 47 locale tag",
            ));
        }
        if list.len() > 20 || list.iter().any(|s| !text_ok(s, 500)) {
            errors.push(FieldError::new(
                format!("claims.{tag}"),
                "invalid_value",
                "at most 20 claims of 1-500 characters",
            ));
        }
    }
}

/// Parses one `countries.CC` object, with field errors for what does not fit.
pub fn parse_country_data(
    value: &serde_json::Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<CountryData> {
    match serde_json::from_value::<CountryData>(value.clone()) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(FieldError::new(path, "invalid_document", e.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_halal_differ() {
        let absent: CountryData = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.halal, None);
        let null: CountryData = serde_json::from_str(r#"{"halal": null}"#).unwrap();
        assert_eq!(null.halal, Some(None));
        assert_eq!(serde_json::to_string(&null).unwrap(), r#"{"halal":null}"#);
        assert_eq!(serde_json::to_string(&absent).unwrap(), "{}");
    }
}
