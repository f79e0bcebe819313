//! Flow features: the 41 NSL-KDD fields plus engineered security features, in one fixed
//! order that the model manifest records and the loader checks.
//!
//! Symbolic fields (`protocol_type`, `service`, `flag`) become ordinal codes through a
//! [`Vocabulary`] learned at training time and stored in the manifest: categories are ordered
//! by their attack rate in the training data, so a tree split on the code separates risky
//! from benign categories. Categories seen fewer than [`MIN_CATEGORY_ROWS`] times, and
//! categories never seen, encode as missing (NaN); the trees learn a default direction for
//! missing values from those rare rows, so an unknown service is scored, never refused.
//!
//! Engineered features ([`ENGINEERED`]) are ratios and combinations that a tree cannot form
//! from one field at a time; each is documented where it is defined.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::FlowEvent;

/// Categories with fewer training rows than this are folded into "missing": their attack
/// rate is noise, and the model needs some missing rows to learn where unknowns go.
pub const MIN_CATEGORY_ROWS: usize = 5;

/// Column order of an NSL-KDD row: duration, the 3 symbolic fields, the other 37 numbers.
const RAW_FEATURE_COUNT: usize = 41;

/// An engineered feature: its name, what it captures, and how it is computed.
pub struct EngineeredFeature {
    /// Feature name (manifest, explanations).
    pub name: &'static str,
    /// What it captures, for the model card.
    pub doc: &'static str,
    compute: fn(&FlowEvent) -> f64,
}

/// The engineered features, in feature order after the 41 raw fields.
pub const ENGINEERED: [EngineeredFeature; 10] = [
    EngineeredFeature {
        name: "bytes_ratio_log",
        doc: "ln((src_bytes+1)/(dst_bytes+1)): upload-heavy (exfiltration, exploit payload) vs download-heavy transfers",
        compute: |e| ((e.src_bytes + 1.0) / (e.dst_bytes + 1.0)).ln(),
    },
    EngineeredFeature {
        name: "bytes_per_second_log",
        doc: "ln(1 + (src_bytes+dst_bytes)/max(duration,1)): transfer rate; floods are fast and empty, exfiltration fast and full",
        compute: |e| (1.0 + (e.src_bytes + e.dst_bytes) / e.duration.max(1.0)).ln(),
    },
    EngineeredFeature {
        name: "zero_payload",
        doc: "1 when neither side sent a byte: half-open connections of SYN floods and scans",
        compute: |e| f64::from(u8::from(e.src_bytes == 0.0 && e.dst_bytes == 0.0)),
    },
    EngineeredFeature {
        name: "error_rate_max",
        doc: "max of the SYN-error and REJ-error rates, connection- and host-window: any error storm",
        compute: |e| {
            e.serror_rate
                .max(e.rerror_rate)
                .max(e.dst_host_serror_rate)
                .max(e.dst_host_rerror_rate)
        },
    },
    EngineeredFeature {
        name: "failed_login_spike",
        doc: "num_failed_logins × ln(1+count): failed logins amid many connections to the host (password guessing)",
        compute: |e| e.num_failed_logins * (1.0 + e.count).ln(),
    },
    EngineeredFeature {
        name: "privilege_escalation_indicators",
        doc: "count of root_shell, su_attempted, num_root>0, num_file_creations>0, num_shells>0, num_access_files>0: host-level escalation traces (u2r)",
        compute: |e| {
            [
                e.root_shell,
                e.su_attempted,
                e.num_root,
                e.num_file_creations,
                e.num_shells,
                e.num_access_files,
            ]
            .iter()
            .filter(|&&value| value > 0.0)
            .count() as f64
        },
    },
    EngineeredFeature {
        name: "compromise_activity",
        doc: "hot + num_compromised + num_file_creations + num_shells + num_access_files: content indicators of a session gone wrong (r2l, u2r)",
        compute: |e| {
            e.hot + e.num_compromised + e.num_file_creations + e.num_shells + e.num_access_files
        },
    },
    EngineeredFeature {
        name: "service_fanout",
        doc: "diff_srv_rate × count: distinct services touched on the host in the last 2 s (port scans)",
        compute: |e| e.diff_srv_rate * e.count,
    },
    EngineeredFeature {
        name: "host_service_fanout",
        doc: "dst_host_diff_srv_rate × dst_host_count: distinct services over the last 100 connections to the host (slow scans)",
        compute: |e| e.dst_host_diff_srv_rate * e.dst_host_count,
    },
    EngineeredFeature {
        name: "same_port_concentration",
        doc: "dst_host_same_src_port_rate × dst_host_srv_count: one source port hammering a service (floods, scripted tools)",
        compute: |e| e.dst_host_same_src_port_rate * e.dst_host_srv_count,
    },
];

/// Codes of one symbolic field's categories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Known categories; a category's code is its index here.
    pub categories: Vec<String>,
}

impl Vocabulary {
    /// Learns a vocabulary from `(category, is_attack)` rows: categories with at least
    /// [`MIN_CATEGORY_ROWS`] rows, ordered by attack rate (then name, for determinism).
    pub fn learn<'a>(rows: impl Iterator<Item = (&'a str, bool)>) -> Self {
        let mut tallies: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (category, is_attack) in rows {
            let tally = tallies.entry(category).or_default();
            tally.0 += 1;
            tally.1 += usize::from(is_attack);
        }
        let mut ranked: Vec<(f64, &str)> = tallies
            .into_iter()
            .filter(|(_, (rows, _))| *rows >= MIN_CATEGORY_ROWS)
            .map(|(category, (rows, attacks))| (attacks as f64 / rows as f64, category))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        Self {
            categories: ranked
                .into_iter()
                .map(|(_, category)| category.to_owned())
                .collect(),
        }
    }

    /// The code of `category`, NaN (missing) when unknown or rare.
    pub fn encode(&self, category: &str) -> f64 {
        self.categories
            .iter()
            .position(|known| known == category)
            .map_or(f64::NAN, |index| index as f64)
    }
}

/// The symbolic-field vocabularies, in [`FlowEvent::SYMBOLIC_NAMES`] order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabularies {
    /// Per symbolic field name.
    pub fields: BTreeMap<String, Vocabulary>,
}

/// Turns flow events into feature rows.
#[derive(Debug, Clone)]
pub struct FeatureEncoder {
    /// Lookup per symbolic field, [`FlowEvent::SYMBOLIC_NAMES`] order.
    lookups: [BTreeMap<String, f64>; 3],
}

impl FeatureEncoder {
    /// An encoder using `vocabularies` (a field without one encodes everything as missing).
    pub fn new(vocabularies: &Vocabularies) -> Self {
        let lookups = FlowEvent::SYMBOLIC_NAMES.map(|field| {
            vocabularies
                .fields
                .get(field)
                .map(|vocabulary| {
                    vocabulary
                        .categories
                        .iter()
                        .enumerate()
                        .map(|(code, category)| (category.clone(), code as f64))
                        .collect()
                })
                .unwrap_or_default()
        });
        Self { lookups }
    }

    /// Number of features per row.
    pub fn width() -> usize {
        RAW_FEATURE_COUNT + ENGINEERED.len()
    }

    /// Feature names, in row order: the 41 NSL-KDD fields in their file order, then the
    /// engineered features.
    pub fn feature_names() -> Vec<String> {
        let numeric = FlowEvent::NUMERIC_NAMES;
        std::iter::once(numeric[0])
            .chain(FlowEvent::SYMBOLIC_NAMES)
            .chain(numeric[1..].iter().copied())
            .chain(ENGINEERED.iter().map(|feature| feature.name))
            .map(str::to_owned)
            .collect()
    }

    /// Appends the feature row of `event` to `row_major`.
    pub fn encode_into(&self, event: &FlowEvent, row_major: &mut Vec<f64>) {
        let numeric = event.numeric_features();
        let symbolic = event.symbolic_features();
        row_major.push(numeric[0]);
        for (lookup, category) in self.lookups.iter().zip(symbolic) {
            row_major.push(lookup.get(category).copied().unwrap_or(f64::NAN));
        }
        row_major.extend_from_slice(&numeric[1..]);
        row_major.extend(ENGINEERED.iter().map(|feature| (feature.compute)(event)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_orders_by_attack_rate_and_drops_rare_categories() {
        let mut rows = Vec::new();
        rows.extend(std::iter::repeat_n(("http", false), 9));
        rows.push(("http", true));
        rows.extend(std::iter::repeat_n(("private", true), 8));
        rows.extend(std::iter::repeat_n(("private", false), 2));
        rows.extend(std::iter::repeat_n(("rare", true), MIN_CATEGORY_ROWS - 1));
        let vocabulary = Vocabulary::learn(rows.into_iter());
        assert_eq!(vocabulary.categories, ["http", "private"]);
        assert_eq!(vocabulary.encode("http"), 0.0);
        assert_eq!(vocabulary.encode("private"), 1.0);
        assert!(vocabulary.encode("rare").is_nan());
        assert!(vocabulary.encode("never-seen").is_nan());
    }

    #[test]
    fn rows_follow_the_documented_order() {
        let names = FeatureEncoder::feature_names();
        assert_eq!(names.len(), FeatureEncoder::width());
        assert_eq!(
            &names[..5],
            ["duration", "protocol_type", "service", "flag", "src_bytes"]
        );
        let expected = include_str!("../../../../models/flow/data/field_names.csv")
            .lines()
            .filter_map(|line| line.split(',').next())
            .collect::<Vec<_>>();
        assert_eq!(&names[..41], expected.as_slice());

        let mut vocabularies = Vocabularies::default();
        vocabularies.fields.insert(
            "protocol_type".into(),
            Vocabulary {
                categories: vec!["udp".into(), "tcp".into()],
            },
        );
        let mut event = FlowEvent {
            protocol_type: "tcp".into(),
            service: "http".into(),
            duration: 3.0,
            src_bytes: 0.0,
            dst_bytes: 0.0,
            num_root: 2.0,
            root_shell: 1.0,
            ..Default::default()
        };
        event.flag = "SF".into();
        let mut row = Vec::new();
        FeatureEncoder::new(&vocabularies).encode_into(&event, &mut row);
        assert_eq!(row.len(), FeatureEncoder::width());
        assert_eq!(row[0], 3.0);
        assert_eq!(row[1], 1.0); // tcp
        assert!(row[2].is_nan()); // no service vocabulary: missing
        let index = |name: &str| names.iter().position(|n| n == name).unwrap();
        assert_eq!(row[index("zero_payload")], 1.0);
        assert_eq!(row[index("privilege_escalation_indicators")], 2.0);
        assert_eq!(row[index("num_root")], 2.0);
    }
}
