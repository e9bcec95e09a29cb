//! Singapore (`SG`): what it takes to sell supplements there.
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
//! - Sales: no pre-market registration (HSA); melatonin blocked (prescription-only,
//!   L).
//! - Import: GST on low-value goods up to SGD 400, charged by the (GST-registered)
//!   seller at 9 %: charged in the order total, not only estimated.
//! - Tax: GST 9 % since 2024-01-01 (8 % in 2023), prices GST-inclusive.
//!
//! # Unknowns and limits
//!
//! - The Health Supplements Guidelines' heavy-metal and vitamin/mineral limits are
//!   not in the facts: no dose caps.
//! - No mandatory label statement text is known (English, no disease claims): none.
//! - Above SGD 400 the facts give no duty or GST treatment: no band, no estimate.
//! - The 2023 GST rate comes from the plugin brief, not the facts file; its source
//!   note says so. The low-value-goods band is dated from 2024-01-01 (the 9 % rate).
//! - No buyer identifier is known.
//! - Rules whose start the facts do not date are dated from 2024-01-01, the start of
//!   service, and say so in their source.

#![warn(missing_docs)]

use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// The rule data shipped with the plugin.
pub const RULES_JSON: &str = include_str!("../rules.json");

/// Singapore's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Singapore;

impl CountryCompliance for Singapore {
    fn country(&self) -> &'static str {
        "SG"
    }

    fn default_rules(&self) -> CountryRules {
        // Proven to parse and validate by the unit test below.
        serde_json::from_str(RULES_JSON).expect("embedded rules.json of SG is valid")
    }
}

impl TaxPolicy for Singapore {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_parse_and_validate() {
        let doc: serde_json::Value = serde_json::from_str(RULES_JSON).unwrap();
        let rules = CountryRules::from_json(&doc, "SG").unwrap();
        assert_eq!(rules, Singapore.default_rules());
    }
}
