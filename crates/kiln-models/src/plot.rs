//! The history on a picture: one panel per logged quantity (loss, then each
//! metric), training and validation curves over epochs, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{ModelError, Result};
use crate::history::History;

impl History {
    /// Writes the loss and metric curves to an SVG file.
    pub fn plot_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(ModelError::Invalid(format!(
                "{}: only SVG plots are written (name the file *.svg)",
                path.display()
            )));
        }
        if self.epochs.is_empty() {
            return Err(ModelError::Invalid(
                "an empty history has nothing to plot".into(),
            ));
        }
        let draw_err = |e: &dyn std::fmt::Display| {
            ModelError::Invalid(format!("plotting to {}: {e}", path.display()))
        };
        let panels: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| !n.starts_with("val_"))
            .collect();
        let root = SVGBackend::new(path, (480 * panels.len() as u32, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let areas = root.split_evenly((1, panels.len()));
        let epochs: Vec<f32> = self.epochs.iter().map(|e| e.epoch as f32).collect();
        let last = *epochs.last().expect("not empty");
        for (name, area) in panels.iter().zip(&areas) {
            let train = self.series(name);
            let val = self.series(&format!("val_{name}"));
            let finite = train.iter().chain(&val).copied().filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
            // A series with no finite value (a diverged run) still gets axes.
            let (lo, hi) = if lo < hi {
                (lo, hi)
            } else if lo.is_finite() {
                (lo - 0.5, lo + 0.5)
            } else {
                (0.0, 1.0)
            };
            let pad = (hi - lo) * 0.05;
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(1f32..last.max(2.0), (lo - pad)..(hi + pad))
                .map_err(|e| draw_err(&e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .draw()
                .map_err(|e| draw_err(&e))?;
            for (values, label, color) in [(&train, "train", BLUE), (&val, "validation", RED)] {
                if values.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(
                        epochs
                            .iter()
                            .copied()
                            .zip(values.iter().copied())
                            .filter(|(_, v)| v.is_finite()),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| draw_err(&e))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw_err(&e))?;
        }
        root.present().map_err(|e| draw_err(&e))
    }
}
