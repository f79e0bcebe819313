//! Scoring one address: features → Markov risk (with the short-local guardrail) →
//! calibration → boost-only final risk → decision. The one code path of the operator, the
//! email operator's sender check and `threatflow eval address`.
//!
//! - **Markov risk** = `max(ratio_risk, abnormality · guardrail(length))`: `ratio_risk` is
//!   `P(fraud)` from the total legitimate-vs-fraudulent log-likelihood ratio alone (a fitted
//!   sigmoid; see [`total_log_ratio`]);
//!   `abnormality` is how far the local part lies outside legitimate ones under the
//!   legitimate 3-gram model (0 at their median, 1 at their 99th percentile).
//! - **Short-local guardrail**: the abnormality part is multiplied by 0 for local parts of at
//!   most `guardrail_min` characters, 1 from `guardrail_max`, linear between — a 3-letter name
//!   is "unusual" for any n-gram model without being suspicious.
//! - **Boost-only calibration**: `risk = max(markov_risk, calibrated)`, where `calibrated` is
//!   the logistic model's probability over all features — with the Markov columns pulled
//!   toward their training means by the same guardrail ([`guarded_row`]), so a short local
//!   part's unusual letters cannot come back through the calibration. Calibration can raise the risk
//!   (a disposable domain, a digit burst), never lower the Markov signal.
//! - **Decision**: `block` from `block_at`, `review` from `review_at`, else `allow`.

use crate::operators::address::domains::DomainClass;
use crate::operators::address::features::{
    guarded_row, total_log_ratio, AddressFeatures, FEATURE_COUNT, LEGIT_3, LENGTH,
};
use crate::operators::address::local_part::{parse_address, AddressError};
use crate::operators::address::model::AddressModel;

/// The short-local guardrail's bounds, in characters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guardrail {
    /// At or below: abnormality counts 0.
    pub min_length: usize,
    /// At or above: abnormality counts fully.
    pub max_length: usize,
}

impl Guardrail {
    /// Factor on the abnormality part for a local part of `length` characters.
    pub fn factor(&self, length: usize) -> f64 {
        if length <= self.min_length {
            0.0
        } else if length >= self.max_length {
            1.0
        } else {
            (length - self.min_length) as f64 / (self.max_length - self.min_length) as f64
        }
    }
}

/// What to do with an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Below `review_at`.
    Allow,
    /// From `review_at`.
    Review,
    /// From `block_at`.
    Block,
}

impl Decision {
    /// Name as in scored events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Review => "review",
            Self::Block => "block",
        }
    }
}

/// Risk thresholds of the decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionThresholds {
    /// Risk from which an address is reviewed.
    pub review_at: f64,
    /// Risk from which it is blocked.
    pub block_at: f64,
}

impl DecisionThresholds {
    /// The decision for `risk`.
    pub fn decide(&self, risk: f64) -> Decision {
        if risk >= self.block_at {
            Decision::Block
        } else if risk >= self.review_at {
            Decision::Review
        } else {
            Decision::Allow
        }
    }
}

/// Everything the scorer found about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressAssessment {
    /// Final risk, 0–1.
    pub risk: f64,
    /// Markov-based risk.
    pub markov_risk: f64,
    /// Its log-ratio part.
    pub ratio_risk: f64,
    /// Its abnormality part before the guardrail.
    pub abnormality: f64,
    /// The guardrail factor applied to the abnormality.
    pub guardrail: f64,
    /// The calibration's probability.
    pub calibrated: f64,
    /// `max(0, calibrated − markov_risk)`: how much calibration raised the risk.
    pub boost: f64,
    /// The decision.
    pub decision: Decision,
    /// Each feature's term in the calibration's log-odds, [`FEATURE_COUNT`] order.
    pub contributions: Vec<f64>,
    /// The feature row.
    pub features: AddressFeatures,
    /// The address's domain, lower-case.
    pub domain: String,
}

impl AddressAssessment {
    /// Whether calibration raised the risk above the Markov risk.
    pub fn boosted(&self) -> bool {
        self.boost > 0.0
    }

    /// Which list the domain is on.
    pub fn domain_class(&self) -> DomainClass {
        self.features.domain_class
    }
}

/// Scores addresses with one model set and settings.
#[derive(Debug, Clone)]
pub struct AddressScorer {
    /// The model set.
    pub model: AddressModel,
    /// Guardrail bounds.
    pub guardrail: Guardrail,
    /// Decision thresholds.
    pub thresholds: DecisionThresholds,
}

impl AddressScorer {
    /// Scores `text` (an address, optionally with a display name).
    pub fn score(&self, text: &str) -> Result<AddressAssessment, AddressError> {
        let address = parse_address(text)?;
        let features = AddressFeatures::compute(&address, &self.model.markov, &self.model.lists);
        let row = &features.row;
        let params = &self.model.manifest.markov_risk;
        let ratio_risk = params.ratio_risk(total_log_ratio(row));
        let abnormality = params.abnormality(row[LEGIT_3]);
        let guardrail = self.guardrail.factor(row[LENGTH] as usize);
        let markov_risk = ratio_risk.max(abnormality * guardrail);
        let calibration = &self.model.calibration;
        let guarded = guarded_row(row, &self.model.manifest.markov_anchor, guardrail);
        let contributions = calibration.contributions(&guarded);
        let calibrated = calibration.probability(&guarded);
        let risk = markov_risk.max(calibrated);
        debug_assert_eq!(contributions.len(), FEATURE_COUNT);
        Ok(AddressAssessment {
            risk,
            markov_risk,
            ratio_risk,
            abnormality,
            guardrail,
            calibrated,
            boost: (calibrated - markov_risk).max(0.0),
            decision: self.thresholds.decide(risk),
            contributions,
            features,
            domain: address.domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrail_ramps_linearly_between_its_bounds() {
        let guardrail = Guardrail {
            min_length: 4,
            max_length: 12,
        };
        for length in 0..=4 {
            assert_eq!(guardrail.factor(length), 0.0, "length {length}");
        }
        assert_eq!(guardrail.factor(8), 0.5);
        assert_eq!(guardrail.factor(6), 0.25);
        for length in [12, 13, 40] {
            assert_eq!(guardrail.factor(length), 1.0, "length {length}");
        }
    }

    #[test]
    fn decisions_follow_the_thresholds() {
        let thresholds = DecisionThresholds {
            review_at: 0.5,
            block_at: 0.85,
        };
        assert_eq!(thresholds.decide(0.49), Decision::Allow);
        assert_eq!(thresholds.decide(0.5), Decision::Review);
        assert_eq!(thresholds.decide(0.85), Decision::Block);
    }
}
