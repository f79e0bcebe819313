//! ROC and precision-recall curves as PNG files, for `eval --report`.
//!
//! Text (title, axis names, tick labels) needs a TrueType font: the first readable file of
//! `THREATFLOW_PLOT_FONT` and the usual DejaVu / Liberation paths is used. Without one the
//! curves are still drawn, on a plain frame, and the caller is told so; a missing font never
//! fails an evaluation.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::ml::metrics::CurvePoint;

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Whether a font was found and registered as "sans-serif" (looked up once per process).
pub fn font_available() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let configured = std::env::var("THREATFLOW_PLOT_FONT").ok();
        let candidates = configured.iter().map(String::as_str).chain(FONT_CANDIDATES);
        for candidate in candidates {
            if let Ok(bytes) = std::fs::read(candidate) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One curve to draw.
pub struct Curve<'a> {
    /// Chart title.
    pub title: &'a str,
    /// X axis name.
    pub x_name: &'a str,
    /// Y axis name.
    pub y_name: &'a str,
    /// Points, in drawing order, within [0,1]².
    pub points: Vec<(f64, f64)>,
    /// Whether to draw the chance diagonal.
    pub diagonal: bool,
}

/// Points of the ROC curve (false-positive rate, true-positive rate) from a sweep.
pub fn roc_points(sweep: &[CurvePoint]) -> Vec<(f64, f64)> {
    std::iter::once((0.0, 0.0))
        .chain(
            sweep
                .iter()
                .map(|point| (point.counts.false_positive_rate(), point.counts.recall())),
        )
        .collect()
}

/// Points of the precision-recall curve (recall, precision) from a sweep.
pub fn pr_points(sweep: &[CurvePoint]) -> Vec<(f64, f64)> {
    sweep
        .iter()
        .map(|point| (point.counts.recall(), point.counts.precision()))
        .collect()
}

/// Draws `curve` into a 640×480 PNG at `path`; returns whether text could be drawn.
pub fn write_png(path: &Path, curve: &Curve<'_>) -> Result<bool, String> {
    let with_text = font_available();
    let root = BitMapBackend::new(path, (640, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| error.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if with_text {
        builder
            .caption(curve.title, ("sans-serif", 22))
            .x_label_area_size(44)
            .y_label_area_size(56);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(|error| error.to_string())?;
    if with_text {
        chart
            .configure_mesh()
            .x_desc(curve.x_name)
            .y_desc(curve.y_name)
            .draw()
            .map_err(|error| error.to_string())?;
    } else {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (1.0, 1.02)],
                BLACK.stroke_width(1),
            )))
            .map_err(|error| error.to_string())?;
    }
    if curve.diagonal {
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(|error| error.to_string())?;
    }
    chart
        .draw_series(LineSeries::new(
            curve.points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(|error| error.to_string())?;
    root.present().map_err(|error| error.to_string())?;
    Ok(with_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::metrics::threshold_sweep;

    #[test]
    fn writes_a_png_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("roc.png");
        let sweep = threshold_sweep(&[0.9, 0.8, 0.3, 0.2], &[true, false, true, false]);
        let curve = Curve {
            title: "ROC",
            x_name: "false-positive rate",
            y_name: "true-positive rate",
            points: roc_points(&sweep),
            diagonal: true,
        };
        write_png(&path, &curve).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 1000);
    }
}
