//! Korea (`KR`, the home market): what it takes to sell supplements there.
//!
//! The rules are data (`rules.json`, every rule dated and sourced from
//! the team's `country-compliance.md` facts); this crate adds only what data cannot
//! say: the format of the personal customs clearance code (`kr_pccc`) and of the
//! advertising pre-review id (`ad_review_id`, 자율심의) a product may carry.
//!
//! **Not legal advice.** These are facts collected from public sources with a
//! confidence letter each (H/M/L); an operator corrects them as data, with dates.
//!
//! # What is covered
//!
//! - Sales (domestic and imported): the "건강기능식품" label statement (`hff_mark`);
//!   melatonin blocked (prescription drug, H); DHEA, yohimbine, DMAA and CBD blocked
//!   because customs commonly refuse them (L).
//! - Import (goods shipped from abroad): at most 6 units per order (the 6-bottle
//!   personal-use limit; one unit is taken as one bottle), the customs clearance code
//!   required, and two duty bands for the landed-cost estimate.
//! - Tax: VAT 10 %, shelf prices tax-inclusive.
//!
//! # Choices and unknowns
//!
//! - **Above USD 150** is not a refusal: the parcel needs a formal import declaration
//!   and loses duty-free treatment. The facts give no duty rate for health functional
//!   foods, so the band above USD 150 estimates 10 % import VAT with duty `0` and says
//!   that customs assess the duty. The estimate is therefore a lower bound there.
//! - No registration rule: products are "reported" to MFDS, but the facts give no
//!   number format to check.
//! - `ad_review_id` is checked for shape when a product is saved (a non-empty string
//!   of at most 64 characters) but not required for listing: the facts (M) give no
//!   format or date from which a missing id must block sales.
//! - Customs codes issued from 2026 are valid for one year and older ones expire on the
//!   holder's 2027 birthday; that needs the customs registry, so only the format is
//!   checked here.
//! - No dose caps are known.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use chrono::NaiveDate;
use jangteo_core::compliance::evaluate;
use jangteo_core::compliance::{CountryCompliance, CountryData, CountryRules, TaxPolicy};
use jangteo_core::FieldError;

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// The personal customs clearance code (개인통관고유부호).
pub const PCCC: &str = "kr_pccc";

/// The product field holding the advertising pre-review (자율심의) id.
pub const AD_REVIEW_ID: &str = "ad_review_id";

/// Korea's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Korea;

/// Checks a personal customs clearance code: `P` + 12 digits (a lowercase `p` is
/// accepted and normalized).
pub fn validate_pccc(value: &str) -> Result<String, String> {
    let v = value.trim();
    let Some(digits) = v.strip_prefix(['P', 'p']) else {
        return Err("a customs clearance code starts with P".into());
    };
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a customs clearance code is P followed by 12 digits".into());
    }
    Ok(format!("P{digits}"))
}

impl CountryCompliance for Korea {
    fn country(&self) -> &'static str {
        "KR"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of KR is valid")
    }

    fn identifier_kinds(&self) -> &'static [&'static str] {
        &[PCCC]
    }

    fn validate_identifier(
        &self,
        kind: &str,
        value: &str,
        _day: NaiveDate,
    ) -> Result<String, String> {
        match kind {
            PCCC => validate_pccc(value),
            _ => Err(format!("{kind} is not an identifier of KR")),
        }
    }

    fn extra_product_fields(&self) -> &'static [&'static str] {
        &[AD_REVIEW_ID]
    }

    fn check_product_data(
        &self,
        rules: &CountryRules,
        data: &CountryData,
        day: NaiveDate,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        evaluate::check_country_data(rules, data, self.extra_product_fields(), day, path, errors);
        if let Some(v) = data.extra.get(AD_REVIEW_ID) {
            let ok = v.as_str().is_some_and(|s| {
                !s.trim().is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control)
            });
            if !ok {
                errors.push(FieldError::new(
                    format!("{path}.{AD_REVIEW_ID}"),
                    "invalid_format",
                    "the advertising pre-review id is a non-empty string of at most 64 characters",
                ));
            }
        }
    }
}

impl TaxPolicy for Korea {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "KR").unwrap();
        assert_eq!(rules, Korea.default_rules());
    }
}
