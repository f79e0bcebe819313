//! `threatflow eval prompt`: scores a labelled prompt file through the whole operator path
//! (normalize + L1 + L2 via the batcher) and reports TPR, FPR, precision, recall, F1, ROC-AUC,
//! the confusion matrix, which layer decided, and per-prompt latency p50/p95.
//!
//! Input: JSON lines `{"text": ..., "label": 0|1}` (other fields ignored) or CSV with a
//! `text,label` header (RFC 4180 quoting). A prompt counts as flagged when its verdict is
//! `attack`; ROC-AUC ranks `attack_probability`. Latency is the wall time of each scoring
//! call (one prompt per call unless `--batch` is larger; then every prompt of a call gets
//! the call's time), as an operator batch of that size would see it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::decision::Verdict;
use super::PromptScorer;
use crate::ml::metrics::{roc_auc, BinaryCounts};

/// One labelled prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledPrompt {
    /// The prompt.
    pub text: String,
    /// True for an attack.
    pub attack: bool,
}

/// Reads a JSONL or CSV prompt file (by extension: `.csv` is CSV, anything else JSONL).
pub fn read_labeled(path: &Path) -> Result<Vec<LabeledPrompt>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(&text)
    } else {
        parse_jsonl(&text)
    }
}

fn label_of(value: &serde_json::Value, line: usize) -> Result<bool, String> {
    match value {
        serde_json::Value::Number(number) if number.as_u64() == Some(1) => Ok(true),
        serde_json::Value::Number(number) if number.as_u64() == Some(0) => Ok(false),
        serde_json::Value::Bool(flag) => Ok(*flag),
        _ => Err(format!("line {line}: label must be 0 or 1")),
    }
}

/// Parses JSON lines; blank lines are skipped.
pub fn parse_jsonl(text: &str) -> Result<Vec<LabeledPrompt>, String> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", index + 1))?;
        let prompt = value
            .get("text")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("line {}: no \"text\" string", index + 1))?;
        let label = value
            .get("label")
            .ok_or_else(|| format!("line {}: no \"label\"", index + 1))?;
        rows.push(LabeledPrompt {
            text: prompt.to_owned(),
            attack: label_of(label, index + 1)?,
        });
    }
    Ok(rows)
}

/// Parses CSV with a header naming `text` and `label` columns; quoted fields may hold commas,
/// doubled quotes and newlines.
pub fn parse_csv(text: &str) -> Result<Vec<LabeledPrompt>, String> {
    let records = csv_records(text)?;
    let Some((header, body)) = records.split_first() else {
        return Ok(Vec::new());
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|field| field.trim() == name)
            .ok_or_else(|| format!("csv header has no {name:?} column"))
    };
    let (text_column, label_column) = (column("text")?, column("label")?);
    body.iter()
        .enumerate()
        .filter(|(_, record)| !(record.len() == 1 && record[0].is_empty()))
        .map(|(index, record)| {
            let field = |column: usize| {
                record
                    .get(column)
                    .ok_or_else(|| format!("record {}: missing column", index + 2))
            };
            let attack = match field(label_column)?.trim() {
                "1" => true,
                "0" => false,
                _ => return Err(format!("record {}: label must be 0 or 1", index + 2)),
            };
            Ok(LabeledPrompt {
                text: field(text_column)?.clone(),
                attack,
            })
        })
        .collect()
}

fn csv_records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(character) = chars.next() {
        match (quoted, character) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, other) => field.push(other),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field).trim_end_matches('\r').to_owned());
                records.push(std::mem::take(&mut record));
            }
            (false, other) => field.push(other),
        }
    }
    if quoted {
        return Err("csv ends inside a quoted field".to_owned());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// The figures of one evaluation (the JSON line of `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptEvaluation {
    /// Prompts scored.
    pub rows: usize,
    /// Attacks among them.
    pub attacks: usize,
    /// Attacks flagged / attacks.
    pub tpr: f64,
    /// Benign prompts flagged / benign prompts.
    pub fpr: f64,
    /// Attacks among flagged.
    pub precision: f64,
    /// Same as `tpr`.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Share of correct verdicts.
    pub accuracy: f64,
    /// ROC-AUC of `attack_probability`.
    pub auc: f64,
    /// ROC-AUC of the L2 probability alone (absent without L2).
    pub l2_auc: Option<f64>,
    /// Confusion matrix of the attack verdict.
    pub confusion: BinaryCounts,
    /// Prompts marked suspicious (not counted as flagged).
    pub suspicious: usize,
    /// Flagged prompts by deciding layer (l1, l2, l1+l2).
    pub flagged_by_layer: BTreeMap<String, usize>,
    /// Per-prompt latency of the whole operator path, median, milliseconds.
    pub p50_ms: f64,
    /// … 95th percentile.
    pub p95_ms: f64,
    /// … 99th percentile.
    pub p99_ms: f64,
    /// Prompts per scoring call.
    pub batch: usize,
    /// L2 threshold in force.
    pub l2_threshold: f64,
    /// Where L2 ran (`cpu`, `cuda:N`, `disabled`).
    pub device: String,
}

/// Scores `rows` in calls of `batch` prompts and computes the figures.
pub fn evaluate(
    scorer: &PromptScorer,
    rows: &[LabeledPrompt],
    batch: usize,
) -> Result<PromptEvaluation, String> {
    let batch = batch.max(1);
    let mut attack_scores = Vec::with_capacity(rows.len());
    let mut l2_scores = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    let mut confusion = BinaryCounts::default();
    let mut flagged_by_layer = BTreeMap::new();
    let mut suspicious = 0;
    let mut latencies_ms = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch) {
        let texts: Vec<&str> = chunk.iter().map(|row| row.text.as_str()).collect();
        let started = Instant::now();
        let assessments = scorer
            .assess_batch(&texts)
            .map_err(|error| error.to_string())?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        for (row, assessment) in chunk.iter().zip(&assessments) {
            let decision = &assessment.decision;
            let flagged = decision.verdict == Verdict::Attack;
            confusion.add(row.attack, flagged);
            if flagged {
                *flagged_by_layer
                    .entry(decision.decided_by.to_owned())
                    .or_insert(0) += 1;
            }
            if decision.verdict == Verdict::Suspicious {
                suspicious += 1;
            }
            attack_scores.push(decision.attack_probability);
            l2_scores.push(decision.l2_probability.unwrap_or(0.0));
            labels.push(row.attack);
            latencies_ms.push(elapsed_ms);
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let has_l2 = scorer.l2_manifest().is_some();
    Ok(PromptEvaluation {
        rows: rows.len(),
        attacks: labels.iter().filter(|attack| **attack).count(),
        tpr: confusion.recall(),
        fpr: confusion.false_positive_rate(),
        precision: confusion.precision(),
        recall: confusion.recall(),
        f1: confusion.f1(),
        accuracy: confusion.accuracy(),
        auc: roc_auc(&attack_scores, &labels),
        l2_auc: has_l2.then(|| roc_auc(&l2_scores, &labels)),
        confusion,
        suspicious,
        flagged_by_layer,
        p50_ms: percentile(&latencies_ms, 0.50),
        p95_ms: percentile(&latencies_ms, 0.95),
        p99_ms: percentile(&latencies_ms, 0.99),
        batch,
        l2_threshold: scorer.thresholds().l2_threshold,
        device: scorer.l2_device().to_owned(),
    })
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl PromptEvaluation {
    /// The human-readable report.
    pub fn report(&self) -> String {
        let c = &self.confusion;
        let layers: Vec<String> = self
            .flagged_by_layer
            .iter()
            .map(|(layer, count)| format!("{layer} {count}"))
            .collect();
        format!(
            "prompts {} (attacks {}), L2 on {} threshold {:.4}\n\
             TPR {:.4}  FPR {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  accuracy {:.4}\n\
             ROC-AUC {:.4} (L2 alone {})\n\
             confusion: TP {}  FP {}  TN {}  FN {}  (suspicious, not flagged: {})\n\
             flagged by layer: {}\n\
             latency per prompt (batch {}): p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms\n",
            self.rows,
            self.attacks,
            self.device,
            self.l2_threshold,
            self.tpr,
            self.fpr,
            self.precision,
            self.recall,
            self.f1,
            self.accuracy,
            self.auc,
            self.l2_auc
                .map_or("n/a".to_owned(), |auc| format!("{auc:.4}")),
            c.true_positives,
            c.false_positives,
            c.true_negatives,
            c.false_negatives,
            self.suspicious,
            if layers.is_empty() {
                "none".to_owned()
            } else {
                layers.join(", ")
            },
            self.batch,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_and_csv_read_the_same_rows() {
        let jsonl = "{\"text\": \"hello, world\", \"label\": 0, \"source\": \"x\"}\n\n{\"text\": \"ignore \\\"it\\\"\", \"label\": 1}\n";
        let csv = "text,label\n\"hello, world\",0\n\"ignore \"\"it\"\"\",1\n";
        let expected = vec![
            LabeledPrompt {
                text: "hello, world".to_owned(),
                attack: false,
            },
            LabeledPrompt {
                text: "ignore \"it\"".to_owned(),
                attack: true,
            },
        ];
        assert_eq!(parse_jsonl(jsonl).unwrap(), expected);
        assert_eq!(parse_csv(csv).unwrap(), expected);
    }

    #[test]
    fn csv_fields_may_span_lines_and_columns_may_be_reordered() {
        let csv = "label,text\r\n1,\"line one\nline two\"\r\n0,plain\r\n";
        let rows = parse_csv(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "line one\nline two");
        assert!(rows[0].attack && !rows[1].attack);
    }

    #[test]
    fn bad_rows_are_refused_with_their_position() {
        assert!(parse_jsonl("{\"text\": \"a\", \"label\": 2}")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse_jsonl("{\"label\": 1}").unwrap_err().contains("text"));
        assert!(parse_csv("text,label\na,yes\n")
            .unwrap_err()
            .contains("record 2"));
        assert!(parse_csv("text\na\n").unwrap_err().contains("label"));
        assert!(parse_csv("text,label\n\"open,1\n").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.95), 95.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }
}
