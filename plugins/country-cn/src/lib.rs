//! China (`CN`, cross-border e-commerce): what it takes to sell supplements there
//! through the cross-border retail import modes (customs 9610/1210).
//!
//! The rules are data (`rules.json`, every rule dated and sourced from the team's
//! `country-compliance.md` facts); this crate adds only the PRC resident identity
//! number check (`cn_resident_id`: 18 characters, valid date of birth, ISO 7064
//! MOD 11-2 check character).
//!
//! **Not legal advice.** These are facts collected from public sources with a
//! confidence letter each (H/M/L); an operator corrects them as data, with dates.
//!
//! # What is covered
//!
//! - Sales: no first-import registration; a risk notice on the product page
//!   (`cbec_risk_notice`, the store's own summary wording in zh/en/ko).
//! - Import: at most CNY 5,000 per order, except an order of a single item, which is
//!   allowed; at most CNY 26,000 per buyer per calendar year, counted by resident id
//!   (checked at checkout, from the buyer's history); the resident id is required;
//!   inside the limits the comprehensive tax estimate is 0 % duty and VAT at 70 % of
//!   13 % = 9.1 %.
//! - Tax (domestic sales): VAT 13 %. The facts do not say how prices are displayed;
//!   tax-inclusive display is chosen.
//!
//! # Unknowns and limits
//!
//! - A single item above CNY 5,000 is taxed in full, but the facts give no duty rate
//!   for it: there is no band above CNY 5,000, so no estimate.
//! - Whether the platform withholds the comprehensive tax at checkout is not in the
//!   facts: the band is an estimate, not charged (`collected_by_seller: false`).
//! - The HS-code positive list, the real-name match of orderer and payer, and the
//!   matching of order, payment and logistics records need data outside the rules
//!   (a positive list, payment details): not checked here.
//! - Prohibited ingredients and dose caps are not in the facts: none.
//! - Only the 18-character (second-generation) id is accepted; the old 15-digit form
//!   has no check character.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use chrono::{Datelike, NaiveDate};
use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// PRC resident identity card number.
pub const RESIDENT_ID: &str = "cn_resident_id";

/// China's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct China;

/// The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident id
/// (`None` unless given exactly 17 ASCII digits).
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(CHECK[(sum % 11) as usize])
}

/// Checks a resident id on `day`: 17 digits and a check character (a digit or `X`,
/// lowercase accepted), whose digits 7-14 are a real date of birth from 1900 up to
/// `day`.
pub fn validate_resident_id(value: &str, day: NaiveDate) -> Result<String, String> {
    let v = value.trim().to_ascii_uppercase();
    if v.len() != 18 || !v.is_ascii() {
        return Err("a resident id has 18 characters".into());
    }
    let (body, check) = v.split_at(17);
    let Some(expected) = resident_id_check_char(body) else {
        return Err("a resident id is 17 digits and a check character".into());
    };
    let num = |r: std::ops::Range<usize>| body[r].parse::<u32>().unwrap_or(0);
    let born = i32::try_from(num(6..10))
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, num(10..12), num(12..14)));
    if !born.is_some_and(|b| b.year() >= 1900 && b <= day) {
        return Err("the date of birth in the resident id is not valid".into());
    }
    if !check.starts_with(expected) {
        return Err("the check character of the resident id is wrong".into());
    }
    Ok(v)
}

impl CountryCompliance for China {
    fn country(&self) -> &'static str {
        "CN"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of CN is valid")
    }

    fn identifier_kinds(&self) -> &'static [&'static str] {
        &[RESIDENT_ID]
    }

    fn validate_identifier(
        &self,
        kind: &str,
        value: &str,
        day: NaiveDate,
    ) -> Result<String, String> {
        match kind {
            RESIDENT_ID => validate_resident_id(value, day),
            _ => Err(format!("{kind} is not an identifier of CN")),
        }
    }
}

impl TaxPolicy for China {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "CN").unwrap();
        assert_eq!(rules, China.default_rules());
    }
}
