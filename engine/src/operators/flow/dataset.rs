//! NSL-KDD files: one connection per line, 41 features, the label (`normal` or an attack
//! name) and, in the official files, a difficulty level that is not a feature.
//!
//! Attack names map to the five classes through `models/flow/data/attack_types.csv` (the
//! training file's 22 attack names). KDDTest+ also holds 17 attack names that never occur in
//! training; [`TEST_ONLY_ATTACKS`] maps them with the categorisation commonly used for
//! NSL-KDD, only so that `eval` can report per-category recall. Whether a row is an attack
//! never depends on that table: every label other than `normal` is one.

use std::collections::BTreeMap;
use std::path::Path;

use crate::events::FlowEvent;

/// The classes the model predicts, in output order.
pub const CLASSES: [&str; 5] = ["normal", "dos", "probe", "r2l", "u2r"];

/// Attack name → category for the training file (from `../shared/data/nsl-kdd`).
const TRAINING_ATTACKS: &str = include_str!("../../../../models/flow/data/attack_types.csv");

/// Attack names that appear only in KDDTest+, with their usual category.
pub const TEST_ONLY_ATTACKS: [(&str, &str); 17] = [
    ("apache2", "dos"),
    ("mailbomb", "dos"),
    ("processtable", "dos"),
    ("udpstorm", "dos"),
    ("mscan", "probe"),
    ("saint", "probe"),
    ("httptunnel", "r2l"),
    ("named", "r2l"),
    ("sendmail", "r2l"),
    ("snmpgetattack", "r2l"),
    ("snmpguess", "r2l"),
    ("worm", "r2l"),
    ("xlock", "r2l"),
    ("xsnoop", "r2l"),
    ("ps", "u2r"),
    ("sqlattack", "u2r"),
    ("xterm", "u2r"),
];

/// One labelled connection.
#[derive(Debug, Clone)]
pub struct LabelledFlow {
    /// The record.
    pub event: FlowEvent,
    /// Attack name as in the file (`normal` for benign traffic).
    pub label: String,
    /// Class index in [`CLASSES`], `None` for an attack name no table knows.
    pub class: Option<usize>,
}

impl LabelledFlow {
    /// Whether the row is an attack.
    pub fn is_attack(&self) -> bool {
        self.label != "normal"
    }
}

/// Errors reading a data file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line does not have the NSL-KDD shape.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// File.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Attack name → class index.
pub fn class_table() -> BTreeMap<String, usize> {
    let mut table = BTreeMap::new();
    let training = TRAINING_ATTACKS.lines().filter_map(|line| {
        let (name, category) = line.trim().split_once(',')?;
        Some((name.to_owned(), category.to_owned()))
    });
    let test_only = TEST_ONLY_ATTACKS
        .iter()
        .map(|(name, category)| ((*name).to_owned(), (*category).to_owned()));
    for (name, category) in training.chain(test_only) {
        if let Some(class) = CLASSES.iter().position(|known| *known == category) {
            table.insert(name, class);
        }
    }
    table
}

/// Reads an NSL-KDD file (41 features, label, optional difficulty per line).
pub fn read_nsl_kdd(path: &Path) -> Result<Vec<LabelledFlow>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_nsl_kdd(&text, path)
}

/// Parses the text of an NSL-KDD file; `path` only names it in errors.
pub fn parse_nsl_kdd(text: &str, path: &Path) -> Result<Vec<LabelledFlow>, DatasetError> {
    let table = class_table();
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_line(line, &table).map_err(|reason| DatasetError::Malformed {
            path: path.display().to_string(),
            line: index + 1,
            reason,
        })?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_line(line: &str, table: &BTreeMap<String, usize>) -> Result<LabelledFlow, String> {
    let columns: Vec<&str> = line.trim().split(',').collect();
    if columns.len() != 42 && columns.len() != 43 {
        return Err(format!(
            "expected 42 or 43 columns, found {}",
            columns.len()
        ));
    }
    let number = |index: usize| -> Result<f64, String> {
        columns[index]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .ok_or_else(|| format!("column {} is not a finite number", index + 1))
    };
    let mut numeric = [0.0; 38];
    numeric[0] = number(0)?;
    for (slot, column) in numeric[1..].iter_mut().zip(4..41) {
        *slot = number(column)?;
    }
    let symbolic = [1, 2, 3].map(|column| columns[column].trim().to_owned());
    let label = columns[41].trim().trim_end_matches('.').to_owned();
    let class = table.get(&label).copied();
    Ok(LabelledFlow {
        event: FlowEvent::from_features(symbolic, numeric),
        class: if label == "normal" { Some(0) } else { class },
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_training_line_and_maps_classes() {
        let table = class_table();
        let line = "0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19";
        let row = parse_line(line, &table).unwrap();
        assert_eq!(row.event.protocol_type, "tcp");
        assert_eq!(row.event.service, "private");
        assert_eq!(row.event.flag, "S0");
        assert_eq!(row.event.count, 123.0);
        assert_eq!(row.event.dst_host_srv_rerror_rate, 0.0);
        assert_eq!(row.event.dst_host_serror_rate, 1.0);
        assert_eq!(row.class, Some(1)); // dos
        assert!(row.is_attack());
        assert_eq!(table.get("mscan"), Some(&2));
        assert_eq!(table.get("buffer_overflow"), Some(&4));
        assert!(parse_line("0,tcp,http", &table).is_err());
        let bad_number = line.replacen("123", "abc", 1);
        assert!(parse_line(&bad_number, &table).is_err());
    }
}
