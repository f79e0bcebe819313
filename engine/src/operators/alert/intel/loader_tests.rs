//! The intel loaders on real-format fixtures: a STIX 2.1 bundle written by OASIS's `stix2`,
//! a MISP event written by CIRCL's `pymisp` (both by `models/alert/intel/recipes/fixtures.py`),
//! and hand-written CSV and text lists.

use super::*;

const STIX: &str = include_str!("testdata/bundle.stix.json");
const MISP: &str = include_str!("testdata/event.misp.json");
const CSV: &str = include_str!("testdata/feed.csv");
const TEXT: &str = include_str!("testdata/list.txt");

fn find<'a>(report: &'a LoadReport, value: &str) -> &'a Indicator {
    report
        .indicators
        .iter()
        .find(|indicator| indicator.value == value)
        .unwrap_or_else(|| panic!("{value} not loaded: {:#?}", report.indicators))
}

#[test]
fn stix_bundles_yield_value_indicators_with_source_confidence_and_validity() {
    assert_eq!(detect_format("x.json", STIX), IntelFormat::Stix);
    let report = stix::parse(STIX, "fallback").unwrap();
    let values: Vec<&str> = report.indicators.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(
        values,
        [
            "198.51.100.0/24",
            "c2.evil.example",
            "2001:db8:bad::/48",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "http://dl.evil.example/a.exe",
        ]
    );
    // The AND pattern and the revoked indicator.
    assert_eq!(report.skipped, 2);
    let network = find(&report, "198.51.100.0/24");
    assert_eq!(network.source, "Example CERT");
    assert_eq!(network.confidence, 0.85);
    assert_eq!(network.label, "C2 network");
    assert_eq!(network.valid_from_ms, parse_time_ms("2026-12-01T00:00:00Z"));
    assert_eq!(
        network.valid_until_ms,
        parse_time_ms("2027-06-01T00:00:00Z")
    );
    assert_eq!(
        find(&report, "http://dl.evil.example/a.exe").confidence,
        0.5
    );
    assert_eq!(
        find(
            &report,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        )
        .kind,
        IndicatorKind::Sha256
    );
}

#[test]
fn misp_events_yield_attribute_indicators_bare_or_wrapped() {
    assert_eq!(detect_format("event.json", MISP), IntelFormat::Misp);
    let bare = misp::parse(MISP, "fallback").unwrap();
    let wrapped = misp::parse(&format!("{{\"Event\": {MISP}}}"), "fallback").unwrap();
    let listed = misp::parse(&format!("{{\"response\": [{{\"Event\": {MISP}}}]}}"), "f").unwrap();
    assert_eq!(bare, wrapped);
    assert_eq!(bare, listed);
    let values: Vec<&str> = bare.indicators.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(
        values,
        [
            "203.0.113.50/32",
            "login.phish.example",
            "https://login.phish.example/verify",
            "192.0.2.77/32",
            "198.18.0.1/32",
            &"a".repeat(64),
        ]
    );
    // The e-mail subject, the deleted domain and the filename.
    assert_eq!(bare.skipped, 3);
    let ip = find(&bare, "203.0.113.50/32");
    assert_eq!((ip.source.as_str(), ip.confidence), ("Example ISAC", 0.9));
    assert_eq!(ip.label, "Phishing campaign against finance");
    assert_eq!(ip.last_seen_ms, Some(1_796_083_200_000));
    // Not flagged for detection: half the event's confidence.
    assert_eq!(find(&bare, "198.18.0.1/32").confidence, 0.45);
}

#[test]
fn csv_lists_read_their_columns_and_skip_junk() {
    assert_eq!(detect_format("feed.csv", CSV), IntelFormat::List);
    let report = lists::parse(CSV, 0.7, "feed.csv").unwrap();
    assert_eq!(report.indicators.len(), 5);
    assert_eq!(report.skipped, 1);
    let network = find(&report, "198.51.100.0/24");
    assert_eq!(
        (network.confidence, network.source.as_str()),
        (0.8, "Example CERT")
    );
    assert_eq!(network.valid_from_ms, parse_time_ms("2026-11-01"));
    assert_eq!(
        network.valid_until_ms,
        parse_time_ms("2027-01-01T00:00:00Z")
    );
    let scanner = find(&report, "203.0.113.7/32");
    assert_eq!(
        (scanner.confidence, scanner.source.as_str()),
        (0.6, "feed.csv")
    );
    assert_eq!(
        find(&report, "update.evil.example").valid_from_ms,
        Some(1_795_000_000_000)
    );
    assert_eq!(
        find(&report, "44d88612fea8a8f36de82e1278abb02f").kind,
        IndicatorKind::Md5
    );
}

#[test]
fn text_lists_guess_kinds_and_ignore_comments() {
    let report = lists::parse(TEXT, 0.7, "list.txt").unwrap();
    let kinds: Vec<(IndicatorKind, &str)> = report
        .indicators
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (IndicatorKind::Network, "192.0.2.0/24"),
            (IndicatorKind::Network, "2001:db8:dead::/48"),
            (IndicatorKind::Domain, "c2.evil.example"),
            (IndicatorKind::Url, "https://evil.example/Path"),
            (
                IndicatorKind::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ),
        ]
    );
    assert_eq!(report.skipped, 1);
    assert!(report
        .indicators
        .iter()
        .all(|i| i.confidence == 0.7 && i.source == "list.txt"));
}

#[test]
fn times_parse_in_every_accepted_form() {
    assert_eq!(
        parse_time_ms("2026-12-07T00:00:00Z"),
        Some(1_796_601_600_000)
    );
    assert_eq!(parse_time_ms("2026-12-07"), Some(1_796_601_600_000));
    assert_eq!(parse_time_ms("1796601600"), Some(1_796_601_600_000));
    assert_eq!(parse_time_ms("1796601600000"), Some(1_796_601_600_000));
    assert_eq!(parse_time_ms("yesterday"), None);
}
