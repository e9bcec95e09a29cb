//! United States (`US`): what it takes to sell dietary supplements there.
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
//! - Sales: no pre-market approval; the DSHEA disclaimer, verbatim and emphasised
//!   (bold), when the product makes one claim ("This statement has not been
//!   evaluated...") or several ("These statements have not been evaluated...");
//!   ephedrine alkaloids (ephedra, ma huang), DMAA and CBD blocked. Melatonin is
//!   legal.
//!
//! # Unknowns and limits
//!
//! - **No tax**: sales tax is set by the states and prices are shown before tax, so
//!   `tax` is empty and a domestic order carries no tax line; state sales tax needs a
//!   tax hook of its own.
//! - **No landed cost**: the duty-free de minimis is suspended for all origins since
//!   2025-08-29 and the facts give no duty rate for supplements, so there is no duty
//!   band and cross-border carts get no estimate.
//! - FDA Prior Notice, facility registration, the US agent, new-dietary-ingredient
//!   and claim notifications, and the Supplement Facts panel are documents and label
//!   content outside the rule data.
//! - No buyer identifier is needed (consumers). No dose caps are known.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// United States's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitedStates;

impl CountryCompliance for UnitedStates {
    fn country(&self) -> &'static str {
        "US"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of US is valid")
    }
}

impl TaxPolicy for UnitedStates {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "US").unwrap();
        assert_eq!(rules, UnitedStates.default_rules());
    }
}
