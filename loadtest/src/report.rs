//! The load test's result: per target the medians of its rounds, the baselines as ratios of
//! the same run, a table for people, one JSON line for scripts, and a PNG of throughput and
//! latency over time.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::round::RoundResult;

/// Medians of one target's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// Rounds measured.
    pub rounds: usize,
    /// Median events/s of its flat-out rounds (of all rounds when none ran flat out).
    pub events_per_sec: f64,
    /// Median latencies of its open-loop rounds (of all rounds when none ran open loop), ms.
    pub p50_ms: u64,
    /// See `p50_ms`.
    pub p90_ms: u64,
    /// See `p50_ms`.
    pub p99_ms: u64,
    /// See `p50_ms`.
    pub max_ms: u64,
    /// Median open-loop rate the latencies were measured at, events/s.
    pub latency_at_events_per_sec: Option<f64>,
    /// Median mean CPU cores of the target's processes.
    pub cpu_cores: f64,
    /// Highest resident set over its rounds, MiB.
    pub peak_rss_mib: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `embedded`, `tansu` or `external`.
    pub broker: String,
    /// The measured target's name.
    pub target: String,
    /// Its events/s (median).
    pub events_per_sec: f64,
    /// Its latencies (median), ms.
    pub p50_ms: u64,
    /// See `p50_ms`.
    pub p90_ms: u64,
    /// See `p50_ms`.
    pub p99_ms: u64,
    /// See `p50_ms`.
    pub max_ms: u64,
    /// Rate of its open-loop rounds, events/s.
    pub latency_at_events_per_sec: Option<f64>,
    /// Inputs lost over every round of the run.
    pub lost: u64,
    /// Inputs without an output, uncommitted, over every round.
    pub not_yet_seen: u64,
    /// Outputs beyond one per input over every round.
    pub duplicates: u64,
    /// Dead letters over every round.
    pub dead_lettered: u64,
    /// The passthrough baseline's events/s and the target's ratio to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough_events_per_sec: Option<f64>,
    /// See `passthrough_events_per_sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The raw relay's events/s and the target's ratio to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_events_per_sec: Option<f64>,
    /// See `raw_events_per_sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_ratio: Option<f64>,
    /// Twice the processes' events/s and its ratio to the target's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_out_events_per_sec: Option<f64>,
    /// See `scale_out_events_per_sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_out_ratio: Option<f64>,
    /// Every target's medians.
    pub targets: BTreeMap<String, TargetSummary>,
    /// Every round, in the order run.
    pub rounds: Vec<RoundResult>,
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn median_u64(values: Vec<u64>) -> u64 {
    median_f64(values.into_iter().map(|value| value as f64).collect()).round() as u64
}

/// One target's medians.
pub fn summarise_target(rounds: &[&RoundResult]) -> TargetSummary {
    let flat: Vec<&&RoundResult> = rounds.iter().filter(|r| r.pace == "flat-out").collect();
    let open: Vec<&&RoundResult> = rounds.iter().filter(|r| r.pace == "open-loop").collect();
    let throughput_rounds = if flat.is_empty() { &open } else { &flat };
    let latency_rounds = if open.is_empty() { &flat } else { &open };
    let latency = |pick: fn(&RoundResult) -> u64| {
        median_u64(latency_rounds.iter().map(|round| pick(round)).collect())
    };
    TargetSummary {
        rounds: rounds.len(),
        events_per_sec: median_f64(throughput_rounds.iter().map(|r| r.events_per_sec).collect()),
        p50_ms: latency(|round| round.p50_ms),
        p90_ms: latency(|round| round.p90_ms),
        p99_ms: latency(|round| round.p99_ms),
        max_ms: latency(|round| round.max_ms),
        latency_at_events_per_sec: (!open.is_empty())
            .then(|| median_f64(open.iter().filter_map(|round| round.rate).collect())),
        cpu_cores: median_f64(rounds.iter().map(|round| round.cpu_cores).collect()),
        peak_rss_mib: rounds
            .iter()
            .map(|round| round.peak_rss_mib)
            .fold(0.0, f64::max),
    }
}

/// The run's summary: `target` is the measured one; the baselines' names are fixed.
pub fn summarise(
    broker: &str,
    target: &str,
    passthrough: Option<&str>,
    raw: Option<&str>,
    scale_out: Option<&str>,
    rounds: Vec<RoundResult>,
) -> Summary {
    let mut targets = BTreeMap::new();
    let names: Vec<String> = rounds.iter().map(|round| round.target.clone()).collect();
    for name in &names {
        if targets.contains_key(name) {
            continue;
        }
        let of_target: Vec<&RoundResult> = rounds
            .iter()
            .filter(|round| &round.target == name)
            .collect();
        targets.insert(name.clone(), summarise_target(&of_target));
    }
    let main = targets
        .get(target)
        .cloned()
        .unwrap_or_else(|| summarise_target(&[]));
    let rate_of = |name: Option<&str>| {
        name.and_then(|name| targets.get(name))
            .map(|t| t.events_per_sec)
    };
    let ratio = |base: Option<f64>| {
        base.filter(|base| *base > 0.0)
            .map(|base| main.events_per_sec / base)
    };
    let passthrough_events_per_sec = rate_of(passthrough);
    let raw_events_per_sec = rate_of(raw);
    let scale_out_events_per_sec = rate_of(scale_out);
    Summary {
        broker: broker.to_owned(),
        target: target.to_owned(),
        events_per_sec: main.events_per_sec,
        p50_ms: main.p50_ms,
        p90_ms: main.p90_ms,
        p99_ms: main.p99_ms,
        max_ms: main.max_ms,
        latency_at_events_per_sec: main.latency_at_events_per_sec,
        lost: rounds.iter().map(|round| round.lost).sum(),
        not_yet_seen: rounds.iter().map(|round| round.not_yet_seen).sum(),
        duplicates: rounds.iter().map(|round| round.duplicates).sum(),
        dead_lettered: rounds.iter().map(|round| round.dead_lettered).sum(),
        ratio: ratio(passthrough_events_per_sec),
        passthrough_events_per_sec,
        raw_ratio: ratio(raw_events_per_sec),
        raw_events_per_sec,
        scale_out_ratio: scale_out_events_per_sec
            .filter(|_| main.events_per_sec > 0.0)
            .map(|rate| rate / main.events_per_sec),
        scale_out_events_per_sec,
        targets,
        rounds,
    }
}

impl Summary {
    /// The table printed for people.
    pub fn render(&self) -> String {
        let mut text = format!("broker: {}\n", self.broker);
        text.push_str(
            "round target          pace       rate/s   events/s   p50   p90   p99    max  cpu  RSS MiB  lost  dup  dead\n",
        );
        for (index, round) in self.rounds.iter().enumerate() {
            text.push_str(&format!(
                "{index:>5} {:<15} {:<9} {:>7} {:>10.0} {:>5} {:>5} {:>5} {:>6} {:>4.2} {:>8.0} {:>5} {:>4} {:>5}\n",
                round.target,
                round.pace,
                round.rate.map_or("-".to_owned(), |rate| format!("{rate:.0}")),
                round.events_per_sec,
                round.p50_ms,
                round.p90_ms,
                round.p99_ms,
                round.max_ms,
                round.cpu_cores,
                round.peak_rss_mib,
                round.lost,
                round.duplicates,
                round.dead_lettered,
            ));
        }
        let mut ratios = Vec::new();
        if let (Some(rate), Some(ratio)) = (self.passthrough_events_per_sec, self.ratio) {
            ratios.push(format!("passthrough {rate:.0}/s (target {ratio:.2}x)"));
        }
        if let (Some(rate), Some(ratio)) = (self.raw_events_per_sec, self.raw_ratio) {
            ratios.push(format!("raw relay {rate:.0}/s (target {ratio:.2}x)"));
        }
        if let (Some(rate), Some(ratio)) = (self.scale_out_events_per_sec, self.scale_out_ratio) {
            ratios.push(format!("2x processes {rate:.0}/s ({ratio:.2}x the target)"));
        }
        text.push_str(&format!(
            "{}: {:.0} events/s, p50 {} ms, p99 {} ms{}; lost {}, duplicates {}\n",
            self.target,
            self.events_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.latency_at_events_per_sec
                .map(|rate| format!(" at {rate:.0}/s"))
                .unwrap_or_default(),
            self.lost,
            self.duplicates
        ));
        if !ratios.is_empty() {
            text.push_str(&format!("baselines: {}\n", ratios.join("; ")));
        }
        text
    }

    /// The one-line JSON (rounds without their timelines).
    pub fn json_line(&self) -> String {
        let mut short = self.clone();
        for round in &mut short.rounds {
            round.timeline.clear();
        }
        serde_json::to_string(&short).unwrap_or_default()
    }

    /// Throughput (top) and p99 latency (bottom) per second of every round.
    pub fn write_plot(&self, path: &Path) -> anyhow::Result<()> {
        let has_font = threatflow::ml::plot::font_available();
        let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(400);
        let seconds = self
            .rounds
            .iter()
            .map(|round| round.timeline.len())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let series = |pick: fn(&crate::round::SecondPoint) -> f64| {
            self.rounds.iter().map(move |round| {
                round
                    .timeline
                    .iter()
                    .map(move |point| (point.second as f64, pick(point)))
            })
        };
        for (area, title, pick) in [
            (
                &top,
                "accounted events/s",
                (|p: &crate::round::SecondPoint| p.accounted as f64) as fn(&_) -> f64,
            ),
            (
                &bottom,
                "p99 latency, ms",
                |p: &crate::round::SecondPoint| p.p99_ms as f64,
            ),
        ] {
            let highest = series(pick).flatten().map(|(_, y)| y).fold(1.0, f64::max) * 1.1;
            let mut builder = ChartBuilder::on(area);
            builder.margin(10);
            if has_font {
                builder
                    .caption(title, ("sans-serif", 20))
                    .x_label_area_size(30)
                    .y_label_area_size(60);
            }
            let mut chart = builder.build_cartesian_2d(0.0..seconds, 0.0..highest)?;
            let mut mesh = chart.configure_mesh();
            if has_font {
                mesh.x_desc("seconds since the first input");
            } else {
                mesh.disable_x_mesh().disable_y_mesh();
            }
            mesh.draw()?;
            for (index, points) in series(pick).enumerate() {
                let colour = Palette99::pick(index).to_rgba();
                let label = format!("{index}: {}", self.rounds[index].target);
                let drawn = chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
                if has_font {
                    drawn
                        .label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
                }
            }
            if has_font {
                chart
                    .configure_series_labels()
                    .border_style(BLACK)
                    .background_style(WHITE.mix(0.8))
                    .draw()?;
            }
        }
        root.present()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_f64(vec![]), 0.0);
        assert_eq!(median_u64(vec![10, 30, 20]), 20);
    }
}
