//! Machine-learning building blocks shared by the operators (never operator-specific):
//! tree ensembles with exact TreeSHAP ([`trees`]) and a histogram gradient-boosting trainer
//! ([`gbdt`]). Operators own their features, models and thresholds; they share these.

pub mod gbdt;
pub mod trees;
