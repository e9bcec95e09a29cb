//! Indonesia's rules, checked through the plugin's trait methods with hand-built facts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use jangteo_core::compliance::contract::{assert_plugin, ContractSamples};
use jangteo_core::compliance::rules::in_force;
use jangteo_core::compliance::tax::TaxInput;
use jangteo_core::compliance::{
    CartFacts, CountryCompliance, ExchangeRates, LineFacts, ProductFacts, TaxOutcome, TaxPolicy,
    Violation,
};
use jangteo_core::ids::ProductId;
use jangteo_core::money::{Currency, Money};
use jangteo_country_id::Indonesia;
use serde_json::{json, Value};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn product(v: Value) -> ProductFacts {
    serde_json::from_value(v).unwrap()
}

/// A registered, halal-certified vitamin D product, plus `countries.ID` overrides.
fn vitamin_d(id_overrides: Value) -> ProductFacts {
    let mut id = json!({
        "registration": {"number": "POM SI123456789", "holder": "PT Contoh Sehat", "expires_on": "2029-12-31"},
        "halal": {"certificate_number": "KMF-2025-0042", "issuer": "KMF", "expires_on": "2028-06-30"}
    });
    for (k, v) in id_overrides.as_object().unwrap() {
        if v == "absent" {
            id.as_object_mut().unwrap().remove(k);
        } else {
            id[k] = v.clone();
        }
    }
    product(json!({
        "countries": {"ID": id},
        "ingredients": [{"name": "vitamin D3", "amount": "1000", "unit": "IU"}]
    }))
}

fn idr(a: &str) -> Money {
    Money::parse(a, Currency::IDR).unwrap()
}

fn usd_rates(idr_per_usd: &str) -> ExchangeRates {
    serde_json::from_value(json!({"base": "USD", "rates": {"IDR": idr_per_usd}})).unwrap()
}

fn codes(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.code.as_str()).collect()
}

fn listing(p: &ProductFacts, on: &str) -> Vec<Violation> {
    Indonesia.listing(&Indonesia.default_rules(), p, day(on))
}

/// Cart checks of `items` (product id, product, units, line total in IDR).
fn cart(
    origin: &str,
    items: &[(ProductId, &ProductFacts, i64, Money)],
    ids: &[(&str, &str)],
    rates: &ExchangeRates,
) -> Vec<Violation> {
    let lines: Vec<LineFacts<'_>> = items
        .iter()
        .map(|(pid, p, q, total)| LineFacts {
            line_id: None,
            product_id: *pid,
            product: p,
            quantity: *q,
            line_total: *total,
        })
        .collect();
    let mut subtotal = Money::zero(Currency::IDR);
    for l in &lines {
        subtotal = subtotal.checked_add(l.line_total).unwrap();
    }
    let identifiers: BTreeMap<String, String> = ids
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let facts = CartFacts {
        country: "ID",
        origin,
        day: day("2026-11-28"),
        lines: &lines,
        subtotal,
        identifiers: &identifiers,
        rates,
        history: None,
    };
    Indonesia.check_checkout(&Indonesia.default_rules(), &facts)
}

fn tax(origin: &str, on: &str, lines: &[Money], rates: &ExchangeRates) -> TaxOutcome {
    Indonesia
        .tax(
            &Indonesia.default_rules(),
            &TaxInput {
                country: "ID",
                origin,
                day: day(on),
                currency: Currency::IDR,
                lines,
                rates,
            },
        )
        .unwrap()
}

#[test]
fn keeps_the_plugin_contract() {
    let samples = ContractSamples::new(day("2026-11-28"), vitamin_d(json!({})))
        .identifier(
            "id_nik",
            &["3174015505900001", "3273 0112 0885 0002"],
            &["1074015505900001", "3174013205900001", "317401550590001"],
        )
        .identifier(
            "id_npwp",
            &["01.234.567.8-901.000", "0123456789012345"],
            &["01.234.567.8-901.00", "01/234/567/8-901/000"],
        )
        .identifier(
            "id_passport",
            &["a1234567", "AB123456"],
            &["1234567", "ABC123456"],
        );
    assert_plugin(&Indonesia, &Indonesia, &samples);
}

#[test]
fn nik_has_province_birth_date_and_serial() {
    let table: &[(&str, Result<&str, ()>)] = &[
        // Jakarta Selatan, woman born 15-05-90 (15 + 40 = 55).
        ("3174015505900001", Ok("3174015505900001")),
        // Bandung, man born 12-08-85; spaces dropped.
        ("3273 0112 0885 0002", Ok("3273011208850002")),
        // Papua (94), day 71 (31 + 40), month 12.
        ("9471017112990003", Ok("9471017112990003")),
        ("1101010101000001", Ok("1101010101000001")),
        ("1074015505900001", Err(())),  // province 10
        ("9574015505900001", Err(())),  // province 95
        ("3100015505900001", Err(())),  // regency 00
        ("3174005505900001", Err(())),  // district 00
        ("3174010005900001", Err(())),  // day 00
        ("3174013205900001", Err(())),  // day 32
        ("3174014005900001", Err(())),  // day 40
        ("3174017205900001", Err(())),  // day 72
        ("3174011500900001", Err(())),  // month 00
        ("3174011513900001", Err(())),  // month 13
        ("3174015505900000", Err(())),  // serial 0000
        ("317401550590001", Err(())),   // 15 digits
        ("31740155059000012", Err(())), // 17 digits
        ("31740155059OOOO1", Err(())),
    ];
    check_table("id_nik", table);
}

#[test]
fn npwp_is_15_or_16_digits_with_optional_punctuation() {
    let table: &[(&str, Result<&str, ()>)] = &[
        ("01.234.567.8-901.000", Ok("012345678901000")),
        ("012345678901000", Ok("012345678901000")),
        ("0123456789012345", Ok("0123456789012345")),
        ("0123 4567 8901 2345", Ok("0123456789012345")),
        ("01.234.567.8-901.00", Err(())),
        ("01234567890123456", Err(())),
        ("01.234.567.8-901.00A", Err(())),
        ("01/234/567/8-901/000", Err(())),
        ("", Err(())),
    ];
    check_table("id_npwp", table);
}

#[test]
fn passport_is_letters_then_digits() {
    let table: &[(&str, Result<&str, ()>)] = &[
        ("A1234567", Ok("A1234567")),
        ("x123456", Ok("X123456")),
        ("AB12345678", Ok("AB12345678")),
        (" c 9876543 ", Ok("C9876543")),
        ("1234567", Err(())),
        ("ABC123456", Err(())),
        ("A12345", Err(())),
        ("A123456789", Err(())),
        ("A12-34567", Err(())),
        ("A1234567B", Err(())),
    ];
    check_table("id_passport", table);
}

fn check_table(kind: &str, table: &[(&str, Result<&str, ()>)]) {
    for (input, want) in table {
        let got = Indonesia.validate_identifier(kind, input, day("2026-11-28"));
        match want {
            Ok(n) => assert_eq!(got.as_deref(), Ok(*n), "{kind} {input:?}"),
            Err(()) => assert!(got.is_err(), "{kind} {input:?} accepted as {got:?}"),
        }
    }
}

#[test]
fn halal_is_required_from_17_october_2026() {
    let unknown = vitamin_d(json!({"halal": "absent"}));
    assert!(listing(&unknown, "2026-10-16").is_empty());
    assert_eq!(codes(&listing(&unknown, "2026-10-17")), ["halal_required"]);

    // Declared not halal: may be sold (with the "tidak halal" statement).
    let non_halal = vitamin_d(json!({"halal": null}));
    assert!(listing(&non_halal, "2026-10-17").is_empty());

    // A certificate counts until its last day.
    let cert =
        json!({"certificate_number": "ID-123", "issuer": "BPJPH", "expires_on": "2026-12-01"});
    let p = vitamin_d(json!({"halal": cert}));
    assert!(listing(&p, "2026-12-01").is_empty());
    assert_eq!(codes(&listing(&p, "2026-12-02")), ["halal_required"]);
}

#[test]
fn halal_statements_name_the_certificate_or_say_tidak_halal() {
    let rules = Indonesia.default_rules();
    let text = |when: &str, locale: &str| -> Vec<String> {
        rules
            .label_statements
            .iter()
            .filter(|s| s.key == "halal_status" && serde_json::to_value(s.when).unwrap() == when)
            .map(|s| s.text.0[locale].clone())
            .collect()
    };
    assert_eq!(text("halal", "id"), ["Halal"]);
    assert_eq!(text("halal", "en"), ["Halal certified ({certificate})"]);
    assert_eq!(text("non_halal", "id"), ["tidak halal"]);
    assert_eq!(text("non_halal", "en"), ["Not halal"]);
    let reg: Vec<_> = rules
        .label_statements
        .iter()
        .filter(|s| s.key == "bpom_registration")
        .collect();
    assert_eq!(reg.len(), 1);
    assert!(reg[0].text.0.values().all(|t| t.contains("{registration}")));
}

#[test]
fn registration_must_be_a_valid_unexpired_pom_si_number() {
    let none = listing(&vitamin_d(json!({"registration": "absent"})), "2026-11-28");
    assert_eq!(codes(&none), ["not_registered"]);
    assert_eq!(none[0].args["authority"], "BPOM");
    assert_eq!(none[0].args["expired"], "none");

    let reg = json!({"number": "POM SI123456789", "holder": "PT Contoh Sehat", "expires_on": "2026-06-30"});
    let p = vitamin_d(json!({"registration": reg}));
    assert!(listing(&p, "2026-06-30").is_empty());
    let expired = listing(&p, "2026-07-01");
    assert_eq!(codes(&expired), ["not_registered"]);
    assert_eq!(expired[0].args["expired"], "2026-06-30");

    // "ML" is the code of imported processed food, not of supplements.
    for number in [
        "ML 123456789012",
        "POM SI12345678",
        "POM SL123456789",
        "pom si123456789",
    ] {
        let reg =
            json!({"number": number, "holder": "PT Contoh Sehat", "expires_on": "2029-12-31"});
        assert_eq!(
            codes(&listing(
                &vitamin_d(json!({"registration": reg})),
                "2026-11-28"
            )),
            ["not_registered"],
            "{number}"
        );
    }
}

#[test]
fn doses_above_the_caps_are_refused_in_any_listed_unit() {
    type Row<'a> = (&'a str, &'a str, &'a str, Option<(&'a str, &'a str)>);
    let table: &[Row<'_>] = &[
        ("vitamin D3", "1000", "IU", None),
        ("vitamin D3", "1001", "IU", Some(("1000 IU", "1001 IU"))),
        (
            "Cholecalciferol",
            "2000",
            "IU",
            Some(("1000 IU", "2000 IU")),
        ),
        ("vitamin D", "25", "mcg", None),
        ("vitamin D", "25", "µg", None),
        ("vitamin D", "30", "mcg", Some(("25 mcg", "30 mcg"))),
        // A unit the rule does not list cannot be shown within the cap.
        ("vitamin D", "0.01", "mg", Some(("1000 IU", "0.01 mg"))),
        ("vitamin A", "5000", "IU", None),
        ("retinol", "5001", "IU", Some(("5000 IU", "5001 IU"))),
        ("vitamin C", "2000", "mg", None),
    ];
    for (name, amount, unit, want) in table {
        let mut p = vitamin_d(json!({}));
        p.ingredients =
            product(json!({"ingredients": [{"name": name, "amount": amount, "unit": unit}]}))
                .ingredients;
        let v = listing(&p, "2026-11-28");
        match want {
            None => assert!(v.is_empty(), "{name} {amount} {unit}: {v:?}"),
            Some((limit, actual)) => {
                assert_eq!(codes(&v), ["dose_limit_exceeded"], "{name} {amount} {unit}");
                assert_eq!(v[0].limit, Some(json!(limit)));
                assert_eq!(v[0].actual, Some(json!(actual)));
            }
        }
    }
}

/// The cap holds for the daily dose, whatever the label splits it into: the same
/// ingredient twice, an alias beside the name, or two units (shares of the cap in each).
#[test]
fn doses_add_up_across_entries_aliases_and_units() {
    type Row<'a> = (
        &'a [(&'a str, &'a str, &'a str)],
        Option<(&'a str, &'a str)>,
    );
    let table: &[Row<'_>] = &[
        (
            &[("Vitamin D", "600", "IU"), ("Vitamin D", "600", "IU")],
            Some(("1000 IU", "600 IU + 600 IU")),
        ),
        (
            &[("Vitamin D", "500", "IU"), ("vitamin d", "500", "IU")],
            None,
        ),
        (
            &[("Vitamin D", "800", "IU"), ("cholecalciferol", "20", "mcg")],
            Some(("1000 IU", "800 IU + 20 mcg")),
        ),
        (
            &[("Vitamin D", "400", "IU"), ("vitamin D3", "15", "mcg")],
            None,
        ),
        (
            &[("vitamin D", "10", "mcg"), ("vitamin D", "1", "mg")],
            Some(("25 mcg", "10 mcg + 1 mg")),
        ),
        (
            &[("Vitamin D", "600", "IU"), ("vitamin C", "600", "mg")],
            None,
        ),
        // Names as labels write them: the rule's words inside a longer name.
        (
            &[("Vitamin D (as cholecalciferol)", "1200", "IU")],
            Some(("1000 IU", "1200 IU")),
        ),
        (&[("Vitamin D3 (cholecalciferol)", "800", "IU")], None),
    ];
    for (entries, want) in table {
        let mut p = vitamin_d(json!({}));
        let list: Vec<_> = entries
            .iter()
            .map(|(name, amount, unit)| json!({"name": name, "amount": amount, "unit": unit}))
            .collect();
        p.ingredients = product(json!({ "ingredients": list })).ingredients;
        let v = listing(&p, "2026-11-28");
        match want {
            None => assert!(v.is_empty(), "{entries:?}: {v:?}"),
            Some((limit, actual)) => {
                assert_eq!(codes(&v), ["dose_limit_exceeded"], "{entries:?}");
                assert_eq!(v[0].limit, Some(json!(limit)));
                assert_eq!(v[0].actual, Some(json!(actual)));
            }
        }
    }
}

#[test]
fn melatonin_is_prohibited() {
    // As labels write it too: with a dose or a form in the name.
    for name in ["Melatonin", "Melatonin (3 mg)", "melatonin, micronized"] {
        let mut p = vitamin_d(json!({}));
        p.ingredients =
            product(json!({"ingredients": [{"name": name, "amount": "1", "unit": "mg"}]}))
                .ingredients;
        assert_eq!(
            codes(&listing(&p, "2026-11-28")),
            ["ingredient_prohibited"],
            "{name}"
        );
    }
}

#[test]
fn five_units_per_product_from_abroad() {
    let rates = usd_rates("16000");
    let (a, b) = (vitamin_d(json!({})), vitamin_d(json!({})));
    let (pa, pb) = (ProductId::new(), ProductId::new());
    let nik = [("id_nik", "3174015505900001")];
    // 5 of each of two products: fine.
    let ok = [(pa, &a, 5, idr("500000")), (pb, &b, 5, idr("500000"))];
    assert!(cart("KR", &ok, &nik, &rates).is_empty());
    // 3 + 3 of one product on two lines: 6 > 5.
    let over = [
        (pa, &a, 3, idr("300000")),
        (pa, &a, 3, idr("300000")),
        (pb, &b, 1, idr("100000")),
    ];
    let v = cart("KR", &over, &nik, &rates);
    assert_eq!(codes(&v), ["quantity_limit_exceeded"]);
    assert_eq!(v[0].product_id, Some(pa));
    assert_eq!(
        (v[0].limit.clone(), v[0].actual.clone()),
        (Some(json!(5)), Some(json!(6)))
    );
    // Sold inside Indonesia: no import limits, no identifier needed.
    assert!(cart("ID", &over, &[], &rates).is_empty());
}

#[test]
fn parcels_above_usd_1500_are_refused_after_conversion() {
    let rates = usd_rates("16000");
    let p = vitamin_d(json!({}));
    let pid = ProductId::new();
    let npwp = [("id_npwp", "012345678901000")];
    // 24,000,000 IDR = USD 1,500: allowed.
    assert!(cart("KR", &[(pid, &p, 2, idr("24000000"))], &npwp, &rates).is_empty());
    // 25,000,000 IDR = USD 1,562.50.
    let v = cart("KR", &[(pid, &p, 2, idr("25000000"))], &npwp, &rates);
    assert_eq!(codes(&v), ["value_limit_exceeded"]);
    assert_eq!(
        v[0].limit,
        Some(json!({"amount": "1500", "currency": "USD"}))
    );
    assert_eq!(
        v[0].actual,
        Some(json!({"amount": "1562.5", "currency": "USD"}))
    );
    // No rate for IDR: refused rather than waved through.
    let none: ExchangeRates = serde_json::from_value(json!({"base": "USD", "rates": {}})).unwrap();
    let v = cart("KR", &[(pid, &p, 1, idr("10000"))], &npwp, &none);
    assert_eq!(codes(&v), ["value_limit_exceeded"]);
    assert_eq!(v[0].actual, None);
}

#[test]
fn consignee_gives_nik_npwp_or_passport() {
    let rates = usd_rates("16000");
    let p = vitamin_d(json!({}));
    let items = [(ProductId::new(), &p, 1, idr("100000"))];
    let v = cart("KR", &items, &[], &rates);
    assert_eq!(codes(&v), ["buyer_id_required"]);
    assert_eq!(v[0].args["kinds"], "id_nik, id_npwp, id_passport");
    for kind in ["id_nik", "id_npwp", "id_passport"] {
        assert!(
            cart("KR", &items, &[(kind, "x")], &rates).is_empty(),
            "{kind}"
        );
    }
    assert_eq!(
        codes(&cart("KR", &items, &[("kr_pccc", "P123456789012")], &rates)),
        ["buyer_id_invalid"]
    );
}

#[test]
fn ppn_is_an_effective_11_percent_included_before_and_after_2025() {
    let rates = usd_rates("16000");
    let rules = Indonesia.default_rules();
    // Before PPN 11 %: no rate in the data, no tax.
    let out = tax("ID", "2022-03-31", &[idr("111000")], &rates);
    assert_eq!((out.tax, out.name.clone()), (idr("0"), None));
    for (on, rule_from) in [
        ("2022-04-01", "2022-04-01"),
        ("2024-12-31", "2022-04-01"),
        ("2025-01-01", "2025-01-01"),
        ("2026-11-28", "2025-01-01"),
    ] {
        let in_force: Vec<_> = in_force(&rules.tax, day(on)).collect();
        assert_eq!(in_force.len(), 1, "{on}");
        assert_eq!(in_force[0].validity.valid_from, day(rule_from), "{on}");
        let out = tax("ID", on, &[idr("111000"), idr("49900")], &rates);
        assert!(out.inclusive, "{on}");
        assert_eq!(out.name.as_deref(), Some("PPN"));
        assert_eq!(out.rate.map(|r| r.to_string()), Some("0.11".into()));
        // 111,000 * 11/111 = 11,000; 49,900 * 11/111 = 4,945.05 -> 4,945.
        assert_eq!(out.lines, [idr("11000"), idr("4945")], "{on}");
        assert_eq!(out.tax, idr("15945"));
    }
    assert!(in_force(&rules.tax, day("2025-01-01")).all(|r| r.validity.source.contains("11/12")));
}

#[test]
fn landed_cost_follows_the_pmk_96_2023_bands_in_whole_rupiah() {
    let rates = usd_rates("16321.5");
    // USD 2 = 32,643 IDR: no duty, 11 % VAT = 3,590.73 -> 3,591.
    let out = tax("KR", "2026-11-28", &[idr("32643")], &rates);
    assert_eq!(out.tax, idr("0"));
    let lc = out.landed_cost.unwrap();
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (idr("0"), idr("3591"), idr("3591"))
    );
    assert!(!lc.charged);
    assert_eq!(out.duties, idr("0"));

    // USD 50 = 816,075 IDR: duty 7.5 % = 61,205.6 -> 61,206; VAT 11 % of 877,281 =
    // 96,500.9 -> 96,501.
    let out = tax("KR", "2026-11-28", &[idr("400000"), idr("416075")], &rates);
    let lc = out.landed_cost.unwrap();
    assert_eq!(
        (lc.duty, lc.import_tax, lc.total),
        (idr("61206"), idr("96501"), idr("157707"))
    );
    assert_eq!(
        lc.label.0["id"],
        "Kiriman USD 3 - 1.500: bea masuk 7,5 % dan PPN impor 11 %"
    );

    // The USD 3 bound is inclusive (1 USD = 16,000 IDR).
    let rates = usd_rates("16000");
    let lc = tax("KR", "2026-11-28", &[idr("48000")], &rates)
        .landed_cost
        .unwrap();
    assert_eq!((lc.duty, lc.import_tax), (idr("0"), idr("5280")));
    let lc = tax("KR", "2026-11-28", &[idr("48001")], &rates)
        .landed_cost
        .unwrap();
    assert_eq!((lc.duty, lc.import_tax), (idr("3600"), idr("5676")));
    // Above USD 1,500 there is no band (and the value limit refuses the order).
    assert!(tax("KR", "2026-11-28", &[idr("24000016")], &rates)
        .landed_cost
        .is_none());
}
