//! Machine-learning building blocks shared by the operators (never operator-specific):
//! tree ensembles with exact TreeSHAP ([`trees`], tabulated for speed in [`fast_shap`]; packed
//! for batch inference in [`packed`]), a histogram gradient-boosting trainer
//! ([`gbdt`]) and random-forest trainer ([`forest`]) over shared quantile bins ([`binning`]),
//! an isolation forest ([`isolation_forest`]), a dense autoencoder ([`autoencoder`]), a
//! one-class SVM ([`one_class`]), percentile score scales ([`score_scale`]), standardised
//! logistic regression ([`logistic`]), the XGBoost JSON importer ([`xgboost`]), evaluation
//! metrics ([`metrics`]) and ROC / PR curve plots ([`plot`]). Operators own their features, models and thresholds; they
//! share these. Model files are written and verified (sha256) through [`artifact`].

pub mod artifact;
pub mod autoencoder;
pub mod binning;
pub mod fast_shap;
pub mod forest;
pub mod gbdt;
pub mod isolation_forest;
pub mod logistic;
pub mod metrics;
pub mod one_class;
pub mod packed;
pub mod plot;
pub mod quantized;
pub mod score_scale;
pub mod trees;
pub mod xgboost;
pub mod xgboost_export;
