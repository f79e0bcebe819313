//! Quantile binning shared by the histogram tree trainers ([`crate::ml::gbdt`],
//! [`crate::ml::forest`]): each feature is cut once into at most `max_bins` bins at
//! mid-points between sampled distinct values; missing values get their own bin, so a split
//! can learn where they go.

use crate::ml::gbdt::Dataset;

/// Quantile cut points per feature: `bin(x)` = number of cuts ≤ x; missing → [`MISSING_BIN`].
pub(crate) struct Binning {
    /// Ascending cut points of each column.
    pub(crate) cuts: Vec<Vec<f64>>,
}

/// Bin index of missing values.
pub(crate) const MISSING_BIN: u8 = u8::MAX;

impl Binning {
    /// Cut points of every column of `data`, at most `max_bins` bins each.
    pub(crate) fn fit(data: &Dataset<'_>, max_bins: usize) -> Self {
        let cuts = (0..data.columns)
            .map(|column| {
                let mut values: Vec<f64> = (0..data.rows())
                    .map(|row| data.features[row * data.columns + column])
                    .filter(|value| !value.is_nan())
                    .collect();
                values.sort_by(f64::total_cmp);
                values.dedup();
                let sampled: Vec<f64> = if values.len() <= max_bins {
                    values
                } else {
                    let mut sampled: Vec<f64> = (0..max_bins)
                        .map(|index| values[index * (values.len() - 1) / (max_bins - 1)])
                        .collect();
                    sampled.dedup();
                    sampled
                };
                // Cut half-way between neighbours, so unseen values between them split sensibly.
                sampled
                    .windows(2)
                    .map(|pair| 0.5 * (pair[0] + pair[1]))
                    .collect()
            })
            .collect();
        Self { cuts }
    }

    /// Bin of `value` in `column`.
    pub(crate) fn bin(&self, column: usize, value: f64) -> u8 {
        if value.is_nan() {
            return MISSING_BIN;
        }
        let cuts = &self.cuts[column];
        u8::try_from(cuts.partition_point(|cut| *cut <= value)).unwrap_or(MISSING_BIN - 1)
    }

    /// Column-major bin matrix.
    pub(crate) fn transform(&self, data: &Dataset<'_>) -> Vec<Vec<u8>> {
        (0..data.columns)
            .map(|column| {
                (0..data.rows())
                    .map(|row| self.bin(column, data.features[row * data.columns + column]))
                    .collect()
            })
            .collect()
    }
}

/// Splits `rows` by their bins in `column_bins`: bins below `cut_index` go left, missing
/// values go left when `missing_left` (the split rule both tree trainers grow with).
pub(crate) fn partition_rows(
    rows: &[u32],
    column_bins: &[u8],
    cut_index: usize,
    missing_left: bool,
) -> (Vec<u32>, Vec<u32>) {
    rows.iter().partition(|&&row| {
        let bin = column_bins[row as usize];
        if bin == MISSING_BIN {
            missing_left
        } else {
            usize::from(bin) < cut_index
        }
    })
}
