//! STIX 2.1 bundles: `indicator` objects whose `pattern` (STIX patterning) names addresses,
//! networks, domains, URLs or file hashes.
//!
//! A pattern becomes indicators only when it is a disjunction of simple comparisons —
//! `[ipv4-addr:value = '198.51.100.7' OR domain-name:value = 'c2.example']`, possibly several
//! observation expressions joined by `OR` — because each value then suffices on its own.
//! Patterns with `AND`, `FOLLOWEDBY`, `NOT`, `REPEATS` or other operators than `=` (and
//! `ISSUBSET` for networks) describe behaviour, not a value; they are counted as skipped.
//! Revoked indicators are skipped. `confidence` (0–100) becomes 0–1 (absent: 0.5, STIX's
//! "unknown"); `valid_from` / `valid_until` bound validity; the source is the name of the
//! `identity` the indicator's `created_by_ref` points to, else `default_source`.

use std::collections::HashMap;

use serde_json::Value;

use super::{parse_time_ms, Indicator, IndicatorKind, LoadReport};

/// Reads a STIX 2.1 bundle (or a bare list of objects).
pub fn parse(text: &str, default_source: &str) -> Result<LoadReport, String> {
    let document: Value =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let objects = match &document {
        Value::Object(bundle) if bundle.get("type").and_then(Value::as_str) == Some("bundle") => {
            bundle
                .get("objects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        }
        Value::Array(objects) => objects.clone(),
        _ => return Err("not a STIX bundle (no \"type\": \"bundle\")".to_owned()),
    };
    let identities: HashMap<&str, &str> = objects
        .iter()
        .filter(|object| object.get("type").and_then(Value::as_str) == Some("identity"))
        .filter_map(|object| Some((object.get("id")?.as_str()?, object.get("name")?.as_str()?)))
        .collect();
    let mut report = LoadReport::default();
    for object in &objects {
        if object.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        let pattern_type = object.get("pattern_type").and_then(Value::as_str);
        let revoked = object.get("revoked").and_then(Value::as_bool) == Some(true);
        let Some(pattern) = object.get("pattern").and_then(Value::as_str) else {
            report.skipped += 1;
            continue;
        };
        if revoked || pattern_type.is_some_and(|kind| kind != "stix") {
            report.skipped += 1;
            continue;
        }
        let Some(values) = simple_values(pattern) else {
            report.skipped += 1;
            continue;
        };
        let source = object
            .get("created_by_ref")
            .and_then(Value::as_str)
            .and_then(|id| identities.get(id).copied())
            .unwrap_or(default_source);
        let confidence = object
            .get("confidence")
            .and_then(Value::as_f64)
            .map_or(0.5, |confidence| confidence / 100.0);
        let label = object
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| {
                object
                    .get("labels")
                    .and_then(Value::as_array)
                    .and_then(|labels| labels.first())
                    .and_then(Value::as_str)
            })
            .unwrap_or_default();
        let time = |field: &str| {
            object
                .get(field)
                .and_then(Value::as_str)
                .and_then(parse_time_ms)
        };
        for (kind, value) in values {
            match Indicator::new(kind, &value, confidence, source) {
                Some(mut indicator) => {
                    indicator.valid_from_ms = time("valid_from");
                    indicator.valid_until_ms = time("valid_until");
                    indicator.last_seen_ms = time("modified");
                    indicator.label = label.to_owned();
                    report.indicators.push(indicator);
                }
                None => report.skipped += 1,
            }
        }
    }
    Ok(report)
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Text(String),
}

fn tokens(pattern: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<String> {
        let mut text = String::new();
        loop {
            match chars.next()? {
                '\\' => text.push(chars.next()?),
                '\'' => return Some(text),
                c => text.push(c),
            }
        }
    };
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '[' | '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ']' | ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                tokens.push(Token::Text(quoted(&mut chars)?));
            }
            _ => {
                // A word; quoted parts inside it (file:hashes.'SHA-256') belong to it.
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '[' | ']' | '(' | ')') {
                        break;
                    }
                    chars.next();
                    if c == '\'' {
                        word.push('\'');
                        word.push_str(&quoted(&mut chars)?);
                        word.push('\'');
                    } else {
                        word.push(c);
                    }
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Some(tokens)
}

/// The indicator kind a comparison's object path names, for the operator used.
fn kind_of(path: &str, operator: &str) -> Option<IndicatorKind> {
    let path = path.to_ascii_lowercase();
    match (path.as_str(), operator) {
        ("ipv4-addr:value" | "ipv6-addr:value", "=" | "ISSUBSET") => Some(IndicatorKind::Network),
        ("domain-name:value", "=") => Some(IndicatorKind::Domain),
        ("url:value", "=") => Some(IndicatorKind::Url),
        ("file:hashes.'sha-256'" | "file:hashes.sha256", "=") => Some(IndicatorKind::Sha256),
        ("file:hashes.'sha-1'" | "file:hashes.sha1", "=") => Some(IndicatorKind::Sha1),
        ("file:hashes.md5" | "file:hashes.'md5'", "=") => Some(IndicatorKind::Md5),
        _ => None,
    }
}

/// The values of a pattern that is a disjunction of simple comparisons; `None` otherwise.
/// Comparisons on other objects (in a disjunction) are left out: each disjunct suffices.
pub fn simple_values(pattern: &str) -> Option<Vec<(IndicatorKind, String)>> {
    let tokens = tokens(pattern)?;
    let mut values = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        match &tokens[index] {
            Token::Open | Token::Close => index += 1,
            Token::Word(word) if word.eq_ignore_ascii_case("OR") => index += 1,
            Token::Word(word) if word.contains(':') => {
                let operator = match tokens.get(index + 1) {
                    Some(Token::Word(operator)) => operator.to_ascii_uppercase(),
                    _ => return None,
                };
                let Some(Token::Text(value)) = tokens.get(index + 2) else {
                    return None;
                };
                if operator != "=" && operator != "ISSUBSET" {
                    return None;
                }
                if let Some(kind) = kind_of(word, &operator) {
                    values.push((kind, value.clone()));
                }
                index += 3;
            }
            // WITHIN n SECONDS / START t'..' STOP t'..' narrow when, not what: allowed.
            Token::Word(word)
                if matches!(
                    word.to_ascii_uppercase().as_str(),
                    "WITHIN" | "SECONDS" | "START" | "STOP"
                ) =>
            {
                index += 1
            }
            Token::Word(word) if word.parse::<f64>().is_ok() || word.starts_with("t'") => {
                index += 1
            }
            // AND, FOLLOWEDBY, NOT, REPEATS, other operators: behaviour, not a value.
            _ => return None,
        }
    }
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_patterns_give_values_and_behavioural_ones_none() {
        assert_eq!(
            simple_values(
                "[ipv4-addr:value = '198.51.100.1/32' OR domain-name:value = 'c2.example']"
            ),
            Some(vec![
                (IndicatorKind::Network, "198.51.100.1/32".into()),
                (IndicatorKind::Domain, "c2.example".into())
            ])
        );
        assert_eq!(
            simple_values(
                "[file:hashes.'SHA-256' = 'aa'] OR [url:value = 'http://x.example/a\\'b']"
            ),
            Some(vec![
                (IndicatorKind::Sha256, "aa".into()),
                (IndicatorKind::Url, "http://x.example/a'b".into())
            ])
        );
        assert_eq!(
            simple_values("[ipv4-addr:value ISSUBSET '203.0.113.0/24'] WITHIN 300 SECONDS"),
            Some(vec![(IndicatorKind::Network, "203.0.113.0/24".into())])
        );
        for behavioural in [
            "[ipv4-addr:value = '198.51.100.1' AND network-traffic:dst_port = 443]",
            "[domain-name:value = 'a.example'] FOLLOWEDBY [domain-name:value = 'b.example']",
            "[process:name = 'evil.exe']",
            "[domain-name:value LIKE '%.example']",
            "[ipv4-addr:value = '198.51.100.1'] REPEATS 5 TIMES",
        ] {
            assert_eq!(simple_values(behavioural), None, "{behavioural}");
        }
    }
}
