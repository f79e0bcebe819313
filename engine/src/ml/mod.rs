//! Machine-learning building blocks shared by the operators (never operator-specific):
//! tree ensembles with exact TreeSHAP ([`trees`], tabulated for speed in [`fast_shap`]; packed
//! for batch inference in [`packed`]), a histogram gradient-boosting trainer
//! ([`gbdt`]), the XGBoost JSON importer ([`xgboost`]), evaluation metrics ([`metrics`]) and
//! ROC / PR curve plots ([`plot`]). Operators own their features, models and thresholds; they
//! share these.

pub mod fast_shap;
pub mod gbdt;
pub mod metrics;
pub mod packed;
pub mod plot;
pub mod trees;
pub mod xgboost;
