//! Japan (`JP`): what it takes to sell supplements there.
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
//! - Sales: ordinary supplements need no registration; melatonin and DHEA blocked
//!   (drugs, H).
//! - Import: duty and consumption tax waived at a taxable value up to JPY 10,000
//!   (landed cost zero, M).
//! - Tax: consumption tax 8 % (reduced rate for food), prices tax-inclusive.
//!
//! # Unknowns and limits
//!
//! - Above JPY 10,000 the facts give no duty rate: no band, no estimate.
//! - Foods with Function Claims (CAA notification, GMP mandatory for supplement forms
//!   from 2026-09-01) and FOSHU (approval) are product classifications the product
//!   data does not carry: not checked.
//! - The 2-month supply limit applies to drugs, which this store does not sell.
//! - No mandatory label statement text is known (Japanese): none. No dose caps, no
//!   buyer identifier.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// Japan's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Japan;

impl CountryCompliance for Japan {
    fn country(&self) -> &'static str {
        "JP"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of JP is valid")
    }
}

impl TaxPolicy for Japan {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "JP").unwrap();
        assert_eq!(rules, Japan.default_rules());
    }
}
