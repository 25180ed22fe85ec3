//! The history on a picture: one panel per logged quantity (loss, then each
//! metric), training and validation curves over whole-numbered epochs, and
//! a mark at the epoch whose weights were restored; as SVG or PNG.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{ModelError, Result};
use crate::history::History;

/// One panel's size in pixels.
const PANEL: (u32, u32) = (480, 360);

/// The font PNG text is drawn with, bundled so that no system font is
/// needed (assets/DejaVuSans.LICENSE).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; a failure would show
        // as a drawing error naming the font.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

impl History {
    /// Writes the loss and metric curves to `path`: SVG for `*.svg`, PNG
    /// for `*.png`.
    ///
    /// ```no_run
    /// # let history = kiln_models::History::default();
    /// history.plot("history.png")?;
    /// # Ok::<(), kiln_models::ModelError>(())
    /// ```
    pub fn plot(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if self.epochs.is_empty() {
            return Err(ModelError::Values(
                "an empty history has nothing to plot".into(),
            ));
        }
        register_font();
        let panels = self.panels();
        let size = (PANEL.0 * panels.len() as u32, PANEL.1);
        let draw_err = |e: &dyn std::fmt::Display| ModelError::Output {
            path: path.display().to_string(),
            detail: format!("plotting: {e}"),
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("svg") => {
                let root = SVGBackend::new(path, size).into_drawing_area();
                self.draw(&root, &panels).map_err(|e| draw_err(&e))?;
                root.present().map_err(|e| draw_err(&e))
            }
            Some("png") => {
                let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
                {
                    let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
                    self.draw(&root, &panels).map_err(|e| draw_err(&e))?;
                    root.present().map_err(|e| draw_err(&e))?;
                }
                let image = image::RgbImage::from_raw(size.0, size.1, pixels)
                    .expect("the buffer holds width × height pixels");
                image.save(path).map_err(|e| draw_err(&e))
            }
            _ => Err(ModelError::Output {
                path: path.display().to_string(),
                detail: "plots are SVG or PNG (name the file *.svg or *.png)".into(),
            }),
        }
    }

    /// [`History::plot`] to an SVG file, refusing any other name.
    pub fn plot_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(ModelError::Output {
                path: path.display().to_string(),
                detail: "plot_svg writes SVG (name the file *.svg, or call plot for PNG)".into(),
            });
        }
        self.plot(path)
    }

    /// The quantities with a panel: each logged name without `val_`.
    fn panels(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| !n.starts_with("val_"))
            .collect()
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        panels: &[String],
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len()));
        let epochs: Vec<f32> = self.epochs.iter().map(|e| e.epoch as f32).collect();
        let last = *epochs.last().expect("not empty");
        let best = self.restored_best.then_some(self.best_epoch).flatten();
        for (name, area) in panels.iter().zip(&areas) {
            let train = self.series(name);
            let val = self.series(&format!("val_{name}"));
            let (lo, hi) = value_range(train.iter().chain(&val).copied());
            let pad = (hi - lo) * 0.05;
            let (lo, hi) = (lo - pad, hi + pad);
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(1f32..last.max(2.0), lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(last.clamp(2.0, 10.0) as usize)
                .x_label_formatter(&|x| format!("{}", x.round() as i64))
                .draw()?;
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
                    ))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            }
            if let Some(best) = best {
                let x = best as f32;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        [(x, lo), (x, hi)],
                        BLACK.mix(0.5).stroke_width(1),
                    )))?
                    .label(format!("restored (epoch {best})"))
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.5)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// The range of the finite values; a series with none (a diverged run)
/// still gets axes.
fn value_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo < hi {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 0.5, lo + 0.5)
    } else {
        (0.0, 1.0)
    }
}
