//! Plain lists: CSV with a header, or text with one indicator per line.
//!
//! - CSV: the header names an `indicator` column (or `value`, `ioc`, `ioc_value`,
//!   `observable`); optional columns `type` (`kind`, `ioc_type`: network, ip, cidr, ip:port,
//!   domain, hostname, url, md5, sha1, sha256, `*_hash`), `confidence` (0–1, or 0–100 when
//!   above 1), `source` (`feed`, `reporter`), `label` (`description`, `threat`,
//!   `threat_type`, `malware`), `first_seen` (`valid_from`, `dateadded`), `last_seen`,
//!   `expires` (`valid_until`). Times are RFC 3339, a date, or Unix seconds / milliseconds. A
//!   row without a type has its kind guessed.
//! - Text: one indicator per line, kind guessed; `#` and `;` start comments (whole lines, or
//!   after the value). Every indicator gets `confidence` and `source`.
//!
//! Rows that are no indicator are counted as skipped, never fatal: feeds carry junk.

use super::{kind_named, parse_time_ms, Indicator, LoadReport};

/// Reads a list; `confidence` and `source` are the defaults of rows that give none.
pub fn parse(text: &str, confidence: f64, source: &str) -> Result<LoadReport, String> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .unwrap_or_default();
    let header: Vec<String> = first
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let value_names = ["indicator", "value", "ioc", "ioc_value", "observable"];
    if header.len() > 1
        && header
            .iter()
            .any(|name| value_names.contains(&name.as_str()))
    {
        parse_csv(text, confidence, source)
    } else {
        Ok(parse_text(text, confidence, source))
    }
}

fn parse_text(text: &str, confidence: f64, source: &str) -> LoadReport {
    let mut report = LoadReport::default();
    for line in text.lines() {
        let value = line
            .split(['#', ';'])
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default();
        if value.is_empty() {
            continue;
        }
        match Indicator::guess(value, confidence, source) {
            Some(indicator) => report.indicators.push(indicator),
            None => report.skipped += 1,
        }
    }
    report
}

fn parse_csv(text: &str, confidence: f64, source: &str) -> Result<LoadReport, String> {
    let body: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| format!("CSV header: {error}"))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let column = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let value_column = column(&["indicator", "value", "ioc", "ioc_value", "observable"])
        .ok_or("no indicator column")?;
    let (type_column, confidence_column, source_column, label_column) = (
        column(&["type", "kind", "indicator_type", "ioc_type"]),
        column(&["confidence", "confidence_level"]),
        column(&["source", "feed", "reporter"]),
        column(&["label", "description", "threat", "threat_type", "malware"]),
    );
    let (first_column, last_column, expiry_column) = (
        column(&["first_seen", "first_seen_utc", "valid_from", "dateadded"]),
        column(&["last_seen", "last_seen_utc"]),
        column(&["expires", "valid_until", "expiry"]),
    );
    let mut report = LoadReport::default();
    for record in reader.records() {
        let Ok(record) = record else {
            report.skipped += 1;
            continue;
        };
        let field = |index: Option<usize>| {
            index
                .and_then(|index| record.get(index))
                .filter(|value| !value.is_empty())
        };
        let Some(value) = field(Some(value_column)) else {
            continue;
        };
        let row_confidence = field(confidence_column)
            .and_then(|text| text.parse::<f64>().ok())
            .map_or(
                confidence,
                |value| if value > 1.0 { value / 100.0 } else { value },
            );
        let row_source = field(source_column).unwrap_or(source);
        let indicator = match field(type_column) {
            Some(kind) => kind_named(kind)
                .and_then(|kind| Indicator::new(kind, value, row_confidence, row_source)),
            None => Indicator::guess(value, row_confidence, row_source),
        };
        let Some(mut indicator) = indicator else {
            report.skipped += 1;
            continue;
        };
        indicator.valid_from_ms = field(first_column).and_then(parse_time_ms);
        indicator.last_seen_ms = field(last_column).and_then(parse_time_ms);
        indicator.valid_until_ms = field(expiry_column).and_then(parse_time_ms);
        indicator.label = field(label_column).unwrap_or_default().to_owned();
        report.indicators.push(indicator);
    }
    Ok(report)
}
