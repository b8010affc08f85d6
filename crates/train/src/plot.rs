//! A PNG chart of a run: training loss (total and its MNRL part) over steps on top, the
//! evaluation metrics over steps below when evaluations ran (the loss alone fills the chart
//! otherwise). Steps are labelled as integers. Text uses the embedded DejaVu Sans font, so no
//! system fonts are needed.

use std::path::Path;
use std::sync::Once;

use crate::error::{Result, TrainError};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::trainer::{LogEntry, Metrics};

/// The most metric curves drawn in the lower panel (the headline ones are preferred).
pub const MAX_METRIC_CURVES: usize = 8;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; failing to parse it would only lose text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// The metrics worth a curve: ranking headline metrics (nDCG@10, MRR@10) and binary
/// classification AP/accuracy, the dot-product version of each when there is one, in name
/// order, at most [`MAX_METRIC_CURVES`]; all metrics when none of those exist.
pub fn headline_metrics(evaluations: &[(usize, Metrics)]) -> Vec<String> {
    let mut names: Vec<String> = evaluations
        .iter()
        .flat_map(|(_, m)| m.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    let headline = |n: &str| {
        n.ends_with("ndcg@10")
            || n.ends_with("mrr@10")
            || n.ends_with("_ap")
            || n.ends_with("_accuracy")
    };
    let chosen: Vec<String> = names.iter().filter(|n| headline(n)).cloned().collect();
    // SPLADE models score with the dot product: a metric of another function only when its
    // evaluator has no dot-product version of it (e.g. a retrieval evaluator run with the
    // model's cosine similarity).
    let dot_version = |n: &str| {
        ["cosine_", "euclidean_", "manhattan_", "max_"]
            .iter()
            .find(|f| n.contains(*f))
            .map(|f| n.replacen(f, "dot_", 1))
    };
    let chosen: Vec<String> = chosen
        .iter()
        .filter(|n| dot_version(n).is_none_or(|d| !chosen.contains(&d)))
        .cloned()
        .collect();
    let chosen = if chosen.is_empty() { names } else { chosen };
    chosen.into_iter().take(MAX_METRIC_CURVES).collect()
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

/// The chart of one panel: a caption, steps 0..`last_step` on x, `y` on y, and its grid.
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    last_step: f64,
    y: (f64, f64),
) -> std::result::Result<
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    String,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..last_step, y.0..y.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("step")
        // Integer steps only: as many ticks as steps when few, else about 10.
        .x_labels((last_step as usize + 1).clamp(2, 11))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Draws the loss curves of `log` and the metric curves of `evaluations` into a PNG at `path`
/// (written to a temporary file first, then renamed). `title` heads the chart.
pub fn plot_training(
    log: &[LogEntry],
    evaluations: &[(usize, Metrics)],
    title: &str,
    path: &Path,
) -> Result<()> {
    register_font();
    let tmp = path.with_extension("tmp.png");
    let last_step = log
        .iter()
        .map(|e| e.step)
        .chain(evaluations.iter().map(|(s, _)| *s))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    {
        let root = BitMapBackend::new(&tmp, (1000, 800)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let root = root
            .titled(title, (FONT, 22))
            .map_err(|e| plot_error(path, e))?;
        let names = headline_metrics(evaluations);
        let (top, bottom) = if names.is_empty() {
            (root.clone(), None)
        } else {
            let (top, bottom) = root.split_vertically(380);
            (top, Some(bottom))
        };

        let (lo, hi) = range(log.iter().flat_map(|e| [e.loss, e.base_loss]));
        let mut chart =
            panel(&top, "training loss", last_step, (lo, hi)).map_err(|e| plot_error(path, e))?;
        let series = [
            ("loss (total)", RGBColor(31, 119, 180), true),
            ("MNRL part", RGBColor(255, 127, 14), false),
        ];
        for (label, color, total) in series {
            let points = log
                .iter()
                .map(|e| (e.step as f64, if total { e.loss } else { e.base_loss }));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| plot_error(path, e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_error(path, e))?;

        if let Some(bottom) = bottom {
            let (lo, hi) = range(
                evaluations
                    .iter()
                    .flat_map(|(_, m)| names.iter().filter_map(|n| m.get(n).copied())),
            );
            let mut chart = panel(&bottom, "evaluation", last_step, (lo, hi))
                .map_err(|e| plot_error(path, e))?;
            for (i, name) in names.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let points: Vec<(f64, f64)> = evaluations
                    .iter()
                    .filter_map(|(s, m)| m.get(name).map(|v| (*s as f64, *v)))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(|e| plot_error(path, e))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(|e| plot_error(path, e))?;
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 13))
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_error(path, e))?;
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(TrainError::write(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: usize, loss: f64) -> LogEntry {
        LogEntry {
            step,
            epoch: step as f64 / 100.0,
            loss,
            base_loss: loss * 0.9,
            query_regularizer_loss: 0.0,
            document_regularizer_loss: 0.0,
            reconstruction_losses: [0.0; 3],
            learning_rate: 2e-5,
            lambdas: (5e-5, 3e-5),
            seconds_per_step: 0.1,
        }
    }

    #[test]
    fn writes_a_png_of_the_requested_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        let log: Vec<LogEntry> = (1..=20).map(|s| entry(s * 5, 2.0 / s as f64)).collect();
        let evals: Vec<(usize, Metrics)> = (1..=4)
            .map(|i| {
                let mut m = Metrics::new();
                m.insert("eval_dot_ap".into(), 0.5 + 0.05 * i as f64);
                m.insert("eval_active_dims".into(), 100.0);
                (i * 25, m)
            })
            .collect();
        plot_training(&log, &evals, "a run", &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // IHDR: width and height, big endian, at bytes 16..24.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (1000, 800));
        assert!(!dir.path().join("plot.tmp.png").exists());
    }

    #[test]
    fn without_evaluations_the_loss_fills_the_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.png");
        let log: Vec<LogEntry> = (1..=3).map(|s| entry(s, 2.0 / s as f64)).collect();
        plot_training(&log, &[], "a run", &path).unwrap();
        let with = dir.path().join("with.png");
        let mut m = Metrics::new();
        m.insert("eval_dot_ap".into(), 0.5);
        plot_training(&log, &[(3, m)], "a run", &with).unwrap();
        // Different drawings of the same size: one panel, two panels.
        let (a, b) = (std::fs::read(&path).unwrap(), std::fs::read(&with).unwrap());
        assert_eq!(&a[16..24], &b[16..24]);
        assert_ne!(a, b);
    }

    #[test]
    fn headline_metrics_prefers_ranking_and_ap() {
        let mut m = Metrics::new();
        for k in [
            "s_dot_ndcg@10",
            "s_dot_map@100",
            "eval_dot_ap",
            "eval_cosine_ap",
            "eval_query_active_dims",
        ] {
            m.insert(k.into(), 0.1);
        }
        assert_eq!(
            headline_metrics(&[(1, m)]),
            vec!["eval_dot_ap".to_string(), "s_dot_ndcg@10".to_string()]
        );
        // A retrieval metric of the cosine function stays when there is no dot version.
        let mut mixed = Metrics::new();
        for k in ["eval_dot_ap", "eval_cosine_ap", "scifact_cosine_ndcg@10"] {
            mixed.insert(k.into(), 0.1);
        }
        assert_eq!(
            headline_metrics(&[(1, mixed)]),
            vec![
                "eval_dot_ap".to_string(),
                "scifact_cosine_ndcg@10".to_string()
            ]
        );
        let mut only = Metrics::new();
        only.insert("x".into(), 1.0);
        assert_eq!(headline_metrics(&[(1, only)]), vec!["x".to_string()]);
    }
}
