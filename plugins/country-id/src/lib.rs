//! Indonesia (`ID`, the first export market): what it takes to sell supplements there.
//!
//! The rules are data (`rules.json`, every rule dated and sourced from the team's
//! `country-compliance.md` facts); this crate adds only the consignee identifier
//! formats (`id_nik`, `id_npwp`, `id_passport`).
//!
//! **Not legal advice.** These are facts collected from public sources with a
//! confidence letter each (H/M/L); an operator corrects them as data, with dates.
//!
//! # What is covered
//!
//! - Sales: BPOM registration `POM SI` + 9 digits (expired or missing: not listed);
//!   halal certification from 2026-10-17, where a product declared not halal may still
//!   be sold with the "tidak halal" statement; label statements `halal_status` and
//!   `bpom_registration`; melatonin blocked (allowed only as a special-purpose
//!   supplement, which this store does not register); daily caps of vitamin D
//!   (1,000 IU = 25 mcg, the 2020 decree's allowance) and vitamin A (5,000 IU).
//! - Import: at most 5 units per product, at most USD 1,500 per parcel (above it a full
//!   declaration is needed, so the order is refused), one of NIK / NPWP / passport
//!   number, and the PMK 96/2023 duty bands (up to USD 3: VAT only; USD 3 - 1,500:
//!   7.5 % duty plus VAT on value and duty).
//! - Tax: PPN at an effective 11 % (12 % on an 11/12 base since 2025-01-01; 11 % from
//!   2022-04-01), prices tax-inclusive.
//!
//! # Unknowns and limits
//!
//! - The USD 100 FOB minimum per unit for marketplaces selling from abroad is not
//!   encoded: the rule data has no minimum-price rule, and it targets marketplaces.
//! - Halal certificate details beyond number, issuer and expiry (mutual recognition,
//!   SIHALAL number) are not modelled by the product data, so are not checked.
//! - Vitamin A is capped in IU only: a dose stated in mcg RAE is refused rather than
//!   converted (the conversion depends on the form).
//! - Batch and expiry on the label are product data, not statements.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use chrono::NaiveDate;
use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// National identity number (Nomor Induk Kependudukan), citizens.
pub const NIK: &str = "id_nik";
/// Tax number (Nomor Pokok Wajib Pajak).
pub const NPWP: &str = "id_npwp";
/// Passport number.
pub const PASSPORT: &str = "id_passport";

/// Indonesia's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Indonesia;

fn two(d: &[u8]) -> u32 {
    u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0')
}

/// Checks a NIK: 16 digits laid out as province (11-94), regency, district, date of
/// birth `DDMMYY` (women add 40 to the day) and a serial. Spaces are removed.
pub fn validate_nik(value: &str) -> Result<String, String> {
    let v: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if v.len() != 16 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a NIK is 16 digits".into());
    }
    let d = v.as_bytes();
    if !(11..=94).contains(&two(&d[0..2])) {
        return Err("a NIK starts with a province code from 11 to 94".into());
    }
    if two(&d[2..4]) == 0 || two(&d[4..6]) == 0 {
        return Err("a NIK has a regency and district code".into());
    }
    let day = two(&d[6..8]);
    if !((1..=31).contains(&day) || (41..=71).contains(&day)) {
        return Err("the date of birth in the NIK has an impossible day".into());
    }
    if !(1..=12).contains(&two(&d[8..10])) {
        return Err("the date of birth in the NIK has an impossible month".into());
    }
    if &v[12..] == "0000" {
        return Err("a NIK serial is not 0000".into());
    }
    Ok(v)
}

/// Checks an NPWP: 15 digits (`01.234.567.8-901.000`) or the 16-digit form; dots,
/// dashes and spaces are dropped.
pub fn validate_npwp(value: &str) -> Result<String, String> {
    let mut digits = String::new();
    for c in value.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '.' | '-' | ' ' => {}
            _ => return Err("an NPWP has only digits, dots and dashes".into()),
        }
    }
    if digits.len() != 15 && digits.len() != 16 {
        return Err("an NPWP is 15 or 16 digits".into());
    }
    Ok(digits)
}

/// Checks a passport number: 1-2 letters and 6-8 digits, uppercased.
pub fn validate_passport(value: &str) -> Result<String, String> {
    let v: String = value
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let letters = v.bytes().take_while(u8::is_ascii_uppercase).count();
    let rest = &v[letters..];
    if !(1..=2).contains(&letters)
        || !(6..=8).contains(&rest.len())
        || !rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("a passport number is 1-2 letters followed by 6-8 digits".into());
    }
    Ok(v)
}

impl CountryCompliance for Indonesia {
    fn country(&self) -> &'static str {
        "ID"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of ID is valid")
    }

    fn identifier_kinds(&self) -> &'static [&'static str] {
        &[NIK, NPWP, PASSPORT]
    }

    fn validate_identifier(
        &self,
        kind: &str,
        value: &str,
        _day: NaiveDate,
    ) -> Result<String, String> {
        match kind {
            NIK => validate_nik(value),
            NPWP => validate_npwp(value),
            PASSPORT => validate_passport(value),
            _ => Err(format!("{kind} is not an identifier of ID")),
        }
    }
}

impl TaxPolicy for Indonesia {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "ID").unwrap();
        assert_eq!(rules, Indonesia.default_rules());
    }
}
