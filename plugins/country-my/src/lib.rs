//! Malaysia (`MY`): what it takes to sell supplements there.
//!
//! The rules are data (`rules.json`, every rule dated and sourced from the team's
//! `country-compliance.md` facts); the country needs no code of its own (no
//! identifier formats are known), so the default trait methods apply them.
//!
//! **Not legal advice.** These are facts collected from public sources with a
//! confidence letter each (H/M/L); an operator corrects them as data, with dates.
//!
//! # What is covered
//!
//! - Sales: NPRA registration `MAL` + 8 digits + `N` with an optional code of up to
//!   two letters (`MAL20012345N`, `MAL19876543NC`); other category letters (drugs,
//!   traditional products) are not supplement registrations. Expired or missing: not
//!   listed. The label statement "Jauhkan daripada kanak-kanak / Keep out of reach of
//!   children" on every product, both languages in every locale (the facts require
//!   both). Melatonin blocked (prescription, Poisons Act
//!   Group C).
//! - Import: the 10 % sales tax on low-value goods (up to RM 500) sold online from
//!   abroad since 2024-01-01, which the seller collects: it is charged in the order
//!   total, not only estimated.
//!
//! # Unknowns and limits
//!
//! - **No domestic tax**: the facts name no sales tax for supplements sold inside
//!   Malaysia, so `tax` is empty and a domestic order carries no tax line.
//! - Above RM 500 the facts give no duty or tax: no band, so no landed-cost estimate.
//! - The personal-import limit ("about 1 month's supply", L) needs the daily dose and
//!   pack size, which the rule data cannot express: not enforced.
//! - No buyer identifier is known. Halal (JAKIM) is voluntary, so not required.
//!   The declaration of animal sources (gelatine capsules) is product label content,
//!   not a fixed statement, and the MOH security hologram is physical.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// Malaysia's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Malaysia;

impl CountryCompliance for Malaysia {
    fn country(&self) -> &'static str {
        "MY"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of MY is valid")
    }
}

impl TaxPolicy for Malaysia {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "MY").unwrap();
        assert_eq!(rules, Malaysia.default_rules());
    }
}
