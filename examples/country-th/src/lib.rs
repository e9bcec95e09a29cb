//! Thailand (`TH`): the worked example of `docs/plugins.md`, written from the facts
//! file the way an integrator would. Not shipped in the server build.
//!
//! What the facts leave open is left open in the data, on purpose, so that the engine
//! shows the gap instead of guessing:
//!
//! - VAT is 7 % until 2026-09-30; after that the rate is unknown, so no rate is in force
//!   (an operator adds one with `PUT /admin/countries/TH/rules` once it is known);
//! - low-value imports lost their duty exemption on 2026-01-01 and the new duty is not
//!   known: no duty band applies from then, so carts show no landed-cost estimate;
//! - no consignee identifier is known, so none is required.
//!
//! **Not legal advice.**

#![warn(missing_docs)]

use jangteo_core::compliance::{CountryCompliance, CountryRules, TaxPolicy};

/// Thailand's compliance and tax plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Thailand;

impl CountryCompliance for Thailand {
    fn country(&self) -> &'static str {
        "TH"
    }

    fn default_rules(&self) -> CountryRules {
        // The embedded file is checked by this crate's tests (it parses and validates).
        serde_json::from_str(include_str!("../rules.json")).expect("rules.json is valid")
    }
}

// Tax and landed cost come from the rule data.
impl TaxPolicy for Thailand {}
