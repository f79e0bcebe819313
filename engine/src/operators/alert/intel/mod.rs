//! The alert operator's threat-intelligence stage: indicators (networks, domains, URLs, file
//! hashes) with their type, confidence, source and validity, matched against every alert.
//!
//! - Sources: STIX 2.1 bundles ([`stix`]), MISP feeds and event exports ([`misp`]), and plain
//!   CSV / text lists ([`lists`]), read from a versioned snapshot under
//!   `<model_dir>/alert/intel/` (manifest with each file's sha256, checked at load:
//!   [`snapshot`]), from `[operators.alert] intel` files, and live from a compacted intel topic
//!   ([`topic`]).
//! - Matching: networks by longest prefix in a trie ([`trie`]), never a scan; domains, URLs
//!   and hashes exactly (domains and URLs case-folded, hashes lower-case hex). An indicator
//!   whose validity ended, or has not begun, at the alert's time matches nothing.
//! - Hits feed the rule facts (`intel_ip_hits`, `intel_host_hits`, `intel_max_confidence`)
//!   and the explanation (which indicator, from which source).
//!
//! Guarantee: a set is immutable once built; the topic follower swaps in a new one, so a
//! lookup sees one consistent set.

pub mod lists;
#[cfg(test)]
mod loader_tests;
pub mod misp;
pub mod snapshot;
pub mod stix;
pub mod topic;
pub mod trie;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use trie::{Network, NetworkTrie};

/// What an indicator names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// An IPv4 or IPv6 address or network (CIDR).
    Network,
    /// A domain name (or host name).
    Domain,
    /// A URL.
    Url,
    /// MD5 file hash.
    Md5,
    /// SHA-1 file hash.
    Sha1,
    /// SHA-256 file hash.
    Sha256,
}

impl IndicatorKind {
    /// The kind a hex hash of `length` characters is.
    fn of_hash(length: usize) -> Option<Self> {
        match length {
            32 => Some(Self::Md5),
            40 => Some(Self::Sha1),
            64 => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// One indicator of compromise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    /// What it names.
    pub kind: IndicatorKind,
    /// The value, canonical: `a.b.c.d/n` networks, lower-case domains without a trailing
    /// dot, URLs as given but for a lower-case scheme and host, lower-case hex hashes.
    pub value: String,
    /// How sure the source is, 0–1.
    pub confidence: f64,
    /// Who says so (feed, organisation, file).
    pub source: String,
    /// Start of validity, Unix ms (none: always).
    #[serde(default)]
    pub valid_from_ms: Option<i64>,
    /// End of validity (expiry), Unix ms (none: never).
    #[serde(default)]
    pub valid_until_ms: Option<i64>,
    /// Last time the source saw it, Unix ms.
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
    /// Short description (threat, campaign), never shown with alert data.
    #[serde(default)]
    pub label: String,
}

impl Indicator {
    /// An indicator of `kind` for `value`, canonicalised; `None` when the value is not one.
    pub fn new(kind: IndicatorKind, value: &str, confidence: f64, source: &str) -> Option<Self> {
        Some(Self {
            kind,
            value: canonical(kind, value)?,
            confidence: if confidence.is_finite() {
                confidence.clamp(0.0, 1.0)
            } else {
                0.5
            },
            source: source.to_owned(),
            valid_from_ms: None,
            valid_until_ms: None,
            last_seen_ms: None,
            label: String::new(),
        })
    }

    /// An indicator whose kind is guessed from the value (lists without a type column):
    /// an address or CIDR, a URL with a scheme, a 32/40/64-digit hex hash, else a domain.
    pub fn guess(value: &str, confidence: f64, source: &str) -> Option<Self> {
        Self::new(guess_kind(value)?, value, confidence, source)
    }

    /// Whether it is valid at `time_ms`.
    pub fn valid_at(&self, time_ms: i64) -> bool {
        self.valid_from_ms.is_none_or(|from| time_ms >= from)
            && self.valid_until_ms.is_none_or(|until| time_ms < until)
    }

    /// The key it is stored and replaced under (`network:203.0.113.0/24`).
    pub fn key(&self) -> String {
        format!("{}:{}", kind_name(self.kind), self.value)
    }
}

/// The kind's name as in keys and lists.
pub fn kind_name(kind: IndicatorKind) -> &'static str {
    match kind {
        IndicatorKind::Network => "network",
        IndicatorKind::Domain => "domain",
        IndicatorKind::Url => "url",
        IndicatorKind::Md5 => "md5",
        IndicatorKind::Sha1 => "sha1",
        IndicatorKind::Sha256 => "sha256",
    }
}

/// The kind named `name` (as [`kind_name`] writes it, or the usual synonyms).
pub fn kind_named(name: &str) -> Option<IndicatorKind> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "network" | "ip" | "ipv4" | "ipv6" | "cidr" | "ip-src" | "ip-dst" | "ipv4-addr"
        | "ipv6-addr" | "ip:port" => IndicatorKind::Network,
        "domain" | "hostname" | "domain-name" | "fqdn" => IndicatorKind::Domain,
        "url" | "uri" => IndicatorKind::Url,
        "md5" | "md5_hash" => IndicatorKind::Md5,
        "sha1" | "sha-1" | "sha1_hash" => IndicatorKind::Sha1,
        "sha256" | "sha-256" | "sha256_hash" => IndicatorKind::Sha256,
        _ => return None,
    })
}

fn guess_kind(value: &str) -> Option<IndicatorKind> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if Network::parse(value).is_some() {
        return Some(IndicatorKind::Network);
    }
    if value.contains("://") {
        return Some(IndicatorKind::Url);
    }
    if value.chars().all(|c| c.is_ascii_hexdigit()) {
        if let Some(kind) = IndicatorKind::of_hash(value.len()) {
            return Some(kind);
        }
    }
    value.contains('.').then_some(IndicatorKind::Domain)
}

/// `value` in canonical form for `kind`, or `None` when it is not a valid one.
pub fn canonical(kind: IndicatorKind, value: &str) -> Option<String> {
    let value = value.trim();
    match kind {
        IndicatorKind::Network => Network::parse(value)
            .or_else(|| {
                // `203.0.113.5:443` / `[2001:db8::1]:443` (feeds of ip:port).
                let address: std::net::SocketAddr = value.parse().ok()?;
                Network::parse(&address.ip().to_string())
            })
            .map(|network| network.to_string()),
        IndicatorKind::Domain => {
            let domain = value.trim_end_matches('.').to_ascii_lowercase();
            let valid = !domain.is_empty()
                && domain.len() <= 253
                && domain.contains('.')
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            valid.then_some(domain)
        }
        IndicatorKind::Url => {
            let (scheme, rest) = value.split_once("://")?;
            if scheme.is_empty() || rest.is_empty() {
                return None;
            }
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            Some(format!(
                "{}://{}{path}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            ))
        }
        IndicatorKind::Md5 | IndicatorKind::Sha1 | IndicatorKind::Sha256 => {
            let hash = value.to_ascii_lowercase();
            (IndicatorKind::of_hash(hash.len()) == Some(kind)
                && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then_some(hash)
        }
    }
}

/// What one source yielded: its indicators, and how many entries were not indicators
/// (unsupported types, behavioural patterns, malformed values).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// The indicators read.
    pub indicators: Vec<Indicator>,
    /// Entries left out.
    pub skipped: usize,
}

/// The formats [`load_file`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntelFormat {
    /// STIX 2.1 bundle.
    Stix,
    /// MISP event JSON (or a feed directory of them).
    Misp,
    /// CSV with a header, or text with one indicator per line.
    List,
}

/// Parses a time: RFC 3339, a date (`2026-12-07`, midnight UTC), or Unix seconds or
/// milliseconds (by magnitude).
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    let number: f64 = text
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some(if number >= 1e11 {
        number as i64
    } else {
        (number * 1000.0) as i64
    })
}

/// The format of `text` read from a file named `name`: by extension, else by content.
pub fn detect_format(name: &str, text: &str) -> IntelFormat {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".csv") || lower.ends_with(".txt") || lower.ends_with(".list") {
        return IntelFormat::List;
    }
    let start = text.trim_start();
    if start.starts_with('{') || start.starts_with('[') {
        let head: String = start.chars().take(4096).collect();
        if ["\"Event\"", "\"response\"", "\"Attribute\""]
            .iter()
            .any(|key| head.contains(key))
        {
            return IntelFormat::Misp;
        }
        return IntelFormat::Stix;
    }
    IntelFormat::List
}

/// Reads one intel source: a file in `format` (detected when `None`), or a directory (a MISP
/// feed: every `*.json` but `manifest.json`). `source` names indicators that carry no source
/// of their own; `confidence` is the default of lists.
pub fn load_path(
    path: &std::path::Path,
    format: Option<IntelFormat>,
    source: &str,
    confidence: f64,
) -> Result<LoadReport, String> {
    if path.is_dir() {
        let mut report = LoadReport::default();
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| {
                file.extension()
                    .is_some_and(|extension| extension == "json")
                    && file.file_name().is_some_and(|name| name != "manifest.json")
            })
            .collect();
        files.sort();
        for file in files {
            let part = load_path(
                &file,
                Some(format.unwrap_or(IntelFormat::Misp)),
                source,
                confidence,
            )?;
            report.indicators.extend(part.indicators);
            report.skipped += part.skipped;
        }
        return Ok(report);
    }
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    parse_text(
        &text,
        format.unwrap_or_else(|| detect_format(name, &text)),
        source,
        confidence,
    )
    .map_err(|error| format!("{}: {error}", path.display()))
}

/// Parses `text` in `format`.
pub fn parse_text(
    text: &str,
    format: IntelFormat,
    source: &str,
    confidence: f64,
) -> Result<LoadReport, String> {
    match format {
        IntelFormat::Stix => stix::parse(text, source),
        IntelFormat::Misp => misp::parse(text, source),
        IntelFormat::List => lists::parse(text, confidence, source),
    }
}

/// The set an engine starts from: the newest snapshot under `<model_dir>/alert/intel/` (or
/// the built-in one), every file of `files` (format detected, source = file name), and
/// `extra` (a rule file's `known_bad_networks`). Logs what it loaded.
pub fn base_set(
    model_dir: &std::path::Path,
    files: &[std::path::PathBuf],
    extra: Vec<Indicator>,
) -> Result<IntelSet, String> {
    let snapshot = snapshot::load(model_dir)?;
    tracing::info!(
        snapshot = %snapshot.manifest.version,
        location = %snapshot.location.display(),
        indicators = snapshot.indicators.len(),
        skipped = snapshot.skipped,
        "intel snapshot loaded"
    );
    let mut indicators = snapshot.indicators;
    for file in files {
        let name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report = load_path(file, None, &name, 0.7)?;
        tracing::info!(
            file = %file.display(),
            indicators = report.indicators.len(),
            skipped = report.skipped,
            "intel file loaded"
        );
        indicators.extend(report.indicators);
    }
    indicators.extend(extra);
    Ok(IntelSet::new(indicators))
}

/// One match of an alert value against an indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct IntelHit {
    /// The indicator that matched (its canonical value: a network, domain, URL or hash).
    pub indicator: String,
    /// Its kind.
    pub kind: IndicatorKind,
    /// Its source.
    pub source: String,
    /// Its confidence, 0–1.
    pub confidence: f64,
}

/// What the intel stage found for one alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntelMatches {
    /// Alert IPs inside an indicator network.
    pub ip_hits: usize,
    /// Alert hosts equal to an indicator domain.
    pub host_hits: usize,
    /// Highest confidence among the hits, 0 when none.
    pub max_confidence: f64,
    /// The hits, one per matched alert value (the longest network for an IP).
    pub hits: Vec<IntelHit>,
}

/// An immutable set of indicators with its lookup structures.
#[derive(Debug, Clone, Default)]
pub struct IntelSet {
    indicators: Vec<Indicator>,
    networks: NetworkTrie<Vec<usize>>,
    exact: HashMap<(IndicatorKind, String), Vec<usize>>,
}

impl IntelSet {
    /// A set of `indicators`. One value may carry several indicators (two sources, or one
    /// valid later than the other); a lookup takes the most confident valid one.
    pub fn new(indicators: Vec<Indicator>) -> Self {
        let mut set = Self {
            indicators,
            ..Self::default()
        };
        for (index, indicator) in set.indicators.iter().enumerate() {
            match indicator.kind {
                IndicatorKind::Network => {
                    if let Some(network) = Network::parse(&indicator.value) {
                        set.networks.value_mut(network).push(index);
                    }
                }
                kind => set
                    .exact
                    .entry((kind, indicator.value.clone()))
                    .or_default()
                    .push(index),
            }
        }
        set
    }

    /// Indicators held.
    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The indicators.
    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    fn best(&self, entries: &[usize], time_ms: i64) -> Option<&Indicator> {
        entries
            .iter()
            .map(|&index| &self.indicators[index])
            .filter(|indicator| indicator.valid_at(time_ms))
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
    }

    /// The indicator for address `ip` at `time_ms`: the longest network holding it that has
    /// a valid indicator.
    pub fn match_ip(&self, ip: IpAddr, time_ms: i64) -> Option<&Indicator> {
        self.networks
            .matches(ip)
            .into_iter()
            .find_map(|(_, entries)| self.best(entries, time_ms))
    }

    /// The indicator for `value` of `kind` (not a network) at `time_ms`.
    pub fn match_exact(
        &self,
        kind: IndicatorKind,
        value: &str,
        time_ms: i64,
    ) -> Option<&Indicator> {
        let value = canonical(kind, value)?;
        self.exact
            .get(&(kind, value))
            .and_then(|entries| self.best(entries, time_ms))
    }

    /// Matches an alert's IPs and hosts at `time_ms`.
    pub fn match_alert(&self, ips: &[String], hosts: &[String], time_ms: i64) -> IntelMatches {
        let mut matches = IntelMatches::default();
        let mut record = |indicator: &Indicator| {
            matches.max_confidence = matches.max_confidence.max(indicator.confidence);
            matches.hits.push(IntelHit {
                indicator: indicator.value.clone(),
                kind: indicator.kind,
                source: indicator.source.clone(),
                confidence: indicator.confidence,
            });
        };
        let mut ip_hits = 0;
        for ip in ips {
            let Ok(address) = ip.trim().parse::<IpAddr>() else {
                continue;
            };
            if let Some(indicator) = self.match_ip(address, time_ms) {
                ip_hits += 1;
                record(indicator);
            }
        }
        let mut host_hits = 0;
        for host in hosts {
            if let Some(indicator) = self.match_exact(IndicatorKind::Domain, host, time_ms) {
                host_hits += 1;
                record(indicator);
            }
        }
        matches.ip_hits = ip_hits;
        matches.host_hits = host_hits;
        matches
    }

    /// This set with `updates` applied: `Some` replaces or adds the indicator under its key,
    /// `None` removes every indicator under that key.
    pub fn with_updates(&self, updates: &HashMap<String, Option<Indicator>>) -> Self {
        let mut kept: Vec<Indicator> = self
            .indicators
            .iter()
            .filter(|indicator| !updates.contains_key(&indicator.key()))
            .cloned()
            .collect();
        kept.extend(updates.values().flatten().cloned());
        Self::new(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicator(kind: IndicatorKind, value: &str, confidence: f64) -> Indicator {
        Indicator::new(kind, value, confidence, "test").unwrap()
    }

    #[test]
    fn values_are_canonical_and_kinds_are_guessed() {
        let guessed = |value: &str| Indicator::guess(value, 0.5, "t").map(|i| (i.kind, i.value));
        assert_eq!(
            guessed("198.51.100.7/24"),
            Some((IndicatorKind::Network, "198.51.100.0/24".into()))
        );
        assert_eq!(
            guessed("Evil.Example.COM."),
            Some((IndicatorKind::Domain, "evil.example.com".into()))
        );
        assert_eq!(
            guessed("HTTPS://Evil.Example/Path?q=A"),
            Some((IndicatorKind::Url, "https://evil.example/Path?q=A".into()))
        );
        assert_eq!(guessed(&"A".repeat(64)).unwrap().0, IndicatorKind::Sha256);
        assert_eq!(guessed(&"b".repeat(32)).unwrap().0, IndicatorKind::Md5);
        assert!(guessed("not an indicator").is_none());
        assert!(Indicator::new(IndicatorKind::Sha1, &"a".repeat(64), 1.0, "t").is_none());
    }

    #[test]
    fn an_alert_matches_the_longest_valid_network_and_exact_hosts() {
        let mut expired = indicator(IndicatorKind::Network, "203.0.113.0/25", 0.99);
        expired.valid_until_ms = Some(1_000);
        let set = IntelSet::new(vec![
            indicator(IndicatorKind::Network, "203.0.113.0/24", 0.6),
            expired,
            indicator(IndicatorKind::Network, "2001:db8::/32", 0.7),
            indicator(IndicatorKind::Domain, "c2.evil.example", 0.9),
        ]);
        let ips = [
            "203.0.113.5".to_owned(),
            "10.0.0.1".into(),
            "2001:db8::9".into(),
        ];
        let hosts = ["C2.evil.example".to_owned(), "web01.corp.example".into()];
        let before_expiry = set.match_alert(&ips, &hosts, 500);
        assert_eq!(before_expiry.ip_hits, 2);
        assert_eq!(before_expiry.hits[0].indicator, "203.0.113.0/25");
        let later = set.match_alert(&ips, &hosts, 5_000);
        assert_eq!(later.hits[0].indicator, "203.0.113.0/24");
        assert_eq!((later.ip_hits, later.host_hits), (2, 1));
        assert_eq!(later.max_confidence, 0.9);
    }

    #[test]
    fn updates_replace_add_and_remove_by_key() {
        let set = IntelSet::new(vec![
            indicator(IndicatorKind::Network, "203.0.113.0/24", 0.6),
            indicator(IndicatorKind::Domain, "old.example", 0.6),
        ]);
        let added = indicator(IndicatorKind::Network, "198.51.100.0/24", 0.8);
        let updates = HashMap::from([
            (added.key(), Some(added)),
            ("domain:old.example".to_owned(), None),
        ]);
        let updated = set.with_updates(&updates);
        assert_eq!(updated.len(), 2);
        assert!(updated
            .match_ip("198.51.100.1".parse().unwrap(), 0)
            .is_some());
        assert!(updated
            .match_exact(IndicatorKind::Domain, "old.example", 0)
            .is_none());
        assert!(set
            .match_exact(IndicatorKind::Domain, "old.example", 0)
            .is_some());
    }
}
