//! SVG plots of ensemble summaries: mean lines with shaded bands.
//!
//! Plots are drawn with plotters' SVG backend into a `String` and written with
//! [`crate::output::write_atomic`]. Text needs no font: without plotters' `ttf`/`ab_glyph`
//! features, plotters sizes text by a crude estimate (0.7 em per character) and the SVG backend
//! emits `<text>` elements (font family `sans-serif`) that the viewer lays out, so no system
//! font library is involved.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use quasistatic::simulate::EnsembleResult;
use quasistatic::stats::Summary;

/// Width and height of a plot in pixels.
const SIZE: (u32, u32) = (900, 560);

/// Fixed palette (Tableau 10), so series `i` has the same color in every plot.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Opacity of the inner band (e.g. mean ± 1.96 stderr).
const BAND_ALPHA: f64 = 0.30;
/// Opacity of the outer band (e.g. q05..q95).
const OUTER_ALPHA: f64 = 0.12;

/// One curve of a [`band_plot`]: a mean line, an inner band and an optional outer band.
///
/// All vectors are read in step with `x` (extra entries are ignored). Points where a value is
/// not finite are skipped: lines and bands break there.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// Abscissae (e.g. optimizer steps).
    pub x: Vec<f64>,
    /// Central line.
    pub mean: Vec<f64>,
    /// Lower edge of the inner band (e.g. mean - 1.96 stderr).
    pub lower: Vec<f64>,
    /// Upper edge of the inner band (e.g. mean + 1.96 stderr).
    pub upper: Vec<f64>,
    /// Lower edge of the lighter outer band (e.g. the 5% quantile), if any.
    pub outer_lower: Option<Vec<f64>>,
    /// Upper edge of the lighter outer band (e.g. the 95% quantile), if any.
    pub outer_upper: Option<Vec<f64>>,
}

/// The series of observable `o` of an ensemble: the mean, the band mean ± 1.96 stderr (a 95%
/// confidence interval of the mean) and the outer band q05..q95 (where 90% of the trajectories
/// lie), against the checkpoint steps.
///
/// `summaries` is [`quasistatic::stats::summarize_ensemble`]`(result)`.
pub fn ensemble_series(
    result: &EnsembleResult,
    summaries: &[Vec<Summary>],
    o: usize,
    label: &str,
) -> Series {
    let column: Vec<&Summary> = summaries.iter().map(|row| &row[o]).collect();
    Series {
        label: label.to_string(),
        x: result.steps.iter().map(|&s| s as f64).collect(),
        mean: column.iter().map(|s| s.mean).collect(),
        lower: column.iter().map(|s| s.mean - 1.96 * s.stderr).collect(),
        upper: column.iter().map(|s| s.mean + 1.96 * s.stderr).collect(),
        outer_lower: Some(column.iter().map(|s| s.q05).collect()),
        outer_upper: Some(column.iter().map(|s| s.q95).collect()),
    }
}

/// Draw `series` overlaid (colors from a fixed palette, in order) with a title, axis labels
/// and a legend, and write the SVG to `path` atomically.
///
/// Non-finite points are skipped; a constant (or single-point) range is padded so that it is
/// still drawn; a plot without any finite point is drawn with empty unit axes.
pub fn band_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> quasistatic::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, title, x_label, y_label, series).map_err(|e| {
            quasistatic::Error::io(
                format!("cannot draw plot {}", path.display()),
                std::io::Error::other(e.to_string()),
            )
        })?;
    }
    crate::output::write_atomic(path, svg.as_bytes())
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> DrawResult {
    root.fill(&WHITE)?;
    let (x_range, y_range) = ranges(series);
    let legend_at = legend_position(series, &x_range, &y_range);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 26))
        .margin(18)
        .x_label_area_size(56)
        .y_label_area_size(96)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 19))
        .light_line_style(RGBColor(246, 246, 246))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;

    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        if let (Some(lo), Some(hi)) = (&s.outer_lower, &s.outer_upper) {
            draw_band(&mut chart, &s.x, lo, hi, color.mix(OUTER_ALPHA))?;
        }
        draw_band(&mut chart, &s.x, &s.lower, &s.upper, color.mix(BAND_ALPHA))?;
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = color.stroke_width(2);
        let segments = finite_runs(s.x.len().min(s.mean.len()), |k| [s.x[k], s.mean[k]]);
        let mut labelled = false;
        for seg in segments {
            let points: Vec<(f64, f64)> = seg.iter().map(|p| (p[0], p[1])).collect();
            let anno = if points.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(points[0], 3, color.filled())))?
            } else {
                chart.draw_series(LineSeries::new(points, line))?
            };
            if !labelled {
                labelled = true;
                let band = color.mix(BAND_ALPHA).filled();
                anno.label(s.label.clone()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -6), (22, 6)], band)
                        + PathElement::new(vec![(0, 0), (22, 0)], line)
                });
            }
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_at)
            .label_font(("sans-serif", 17))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
    }
    root.present()
}

/// Fill the region between `lo` and `hi` over `x`, breaking at non-finite points.
fn draw_band<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x: &[f64],
    lo: &[f64],
    hi: &[f64],
    color: RGBAColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = x.len().min(lo.len()).min(hi.len());
    for seg in finite_runs(n, |k| [x[k], lo[k], hi[k]]) {
        if seg.len() == 1 {
            let [x, lo, hi] = seg[0];
            let stroke = color.stroke_width(4);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, lo), (x, hi)],
                stroke,
            )))?;
        } else {
            let mut outline: Vec<(f64, f64)> = seg.iter().map(|p| (p[0], p[2])).collect();
            outline.extend(seg.iter().rev().map(|p| (p[0], p[1])));
            chart.draw_series(std::iter::once(Polygon::new(outline, color.filled())))?;
        }
    }
    Ok(())
}

/// Maximal runs of consecutive indices `0..n` whose values `at(k)` are all finite.
fn finite_runs<const N: usize>(n: usize, at: impl Fn(usize) -> [f64; N]) -> Vec<Vec<[f64; N]>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for k in 0..n {
        let p = at(k);
        if p.iter().all(|v| v.is_finite()) {
            current.push(p);
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Axis ranges covering every finite point of every line and band, padded by 5% (and so that
/// a constant range is not empty).
fn ranges(series: &[Series]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let mut xs = Extent::default();
    let mut ys = Extent::default();
    for s in series {
        let columns = [Some(&s.mean), Some(&s.lower), Some(&s.upper)]
            .into_iter()
            .chain([s.outer_lower.as_ref(), s.outer_upper.as_ref()])
            .flatten();
        for column in columns {
            for (&x, &y) in s.x.iter().zip(column) {
                if x.is_finite() && y.is_finite() {
                    xs.add(x);
                    ys.add(y);
                }
            }
        }
    }
    (xs.padded(0.02), ys.padded(0.06))
}

/// The corner whose legend-sized box (about 30% of the width, 7% of the height per series)
/// holds the fewest data points, preferring upper right, upper left, lower right, lower left.
fn legend_position(
    series: &[Series],
    x: &std::ops::Range<f64>,
    y: &std::ops::Range<f64>,
) -> SeriesLabelPosition {
    let w = 0.3;
    let h = (0.07 * series.len() as f64).clamp(0.15, 0.6);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let mut counts = [0usize; 4];
    for s in series {
        let columns = [Some(&s.mean), Some(&s.lower), Some(&s.upper)]
            .into_iter()
            .chain([s.outer_lower.as_ref(), s.outer_upper.as_ref()])
            .flatten();
        for column in columns {
            for (&px, &py) in s.x.iter().zip(column) {
                let u = (px - x.start) / (x.end - x.start);
                let v = (py - y.start) / (y.end - y.start);
                for (count, &(_, right, upper)) in counts.iter_mut().zip(&corners) {
                    let in_x = if right { u >= 1.0 - w } else { u <= w };
                    let in_y = if upper { v >= 1.0 - h } else { v <= h };
                    if in_x && in_y {
                        *count += 1;
                    }
                }
            }
        }
    }
    let best = (0..4).min_by_key(|&k| (counts[k], k)).unwrap_or(0);
    corners[best].0.clone()
}

/// Running minimum and maximum.
#[derive(Clone, Copy, Debug)]
struct Extent {
    min: f64,
    max: f64,
}

impl Default for Extent {
    fn default() -> Self {
        Extent {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Extent {
    fn add(&mut self, v: f64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// The range widened by `fraction` of its width on each side; an empty range becomes
    /// `0..1`, a (nearly) constant one `v ± 10% of |v|` (or `± 1` at zero).
    fn padded(self, fraction: f64) -> std::ops::Range<f64> {
        if self.min > self.max {
            return 0.0..1.0;
        }
        let width = self.max - self.min;
        let scale = self.max.abs().max(self.min.abs());
        if width <= 1e-12 * scale || width == 0.0 {
            let pad = if scale > 0.0 { 0.1 * scale } else { 1.0 };
            return (self.min - pad)..(self.max + pad);
        }
        (self.min - fraction * width)..(self.max + fraction * width)
    }
}

/// A short tick label: plain decimals for moderate magnitudes, scientific notation otherwise,
/// at most 4 significant digits.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.3e}");
        // 1.500e-4 -> 1.5e-4
        match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("quasistatic-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn series(label: &str, mean: Vec<f64>) -> Series {
        let x = (0..mean.len()).map(|k| 10.0 * k as f64).collect();
        Series {
            label: label.into(),
            x,
            lower: mean.iter().map(|m| m - 0.1).collect(),
            upper: mean.iter().map(|m| m + 0.1).collect(),
            outer_lower: Some(mean.iter().map(|m| m - 0.3).collect()),
            outer_upper: Some(mean.iter().map(|m| m + 0.3).collect()),
            mean,
        }
    }

    #[test]
    fn band_plot_writes_svg_with_text_and_bands() {
        let dir = test_dir("basic");
        let path = dir.join("p.svg");
        let a = series("true", vec![1.0, 0.8, 0.5, 0.45, 0.4]);
        let b = series("derived", vec![1.0, 0.7, 0.55, 0.5, 0.42]);
        band_plot(
            &path,
            "distance to manifold",
            "optimizer step",
            "dist",
            &[a, b],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "distance to manifold",
            "optimizer step",
            "dist",
            "true",
            "derived",
        ] {
            // The SVG backend writes each text on its own line inside `<text>`.
            assert!(svg.lines().any(|l| l == text), "missing text {text}");
        }
        assert!(svg.contains("<polygon"), "bands are drawn as polygons");
        assert!(svg.contains("<polyline"), "means are drawn as lines");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn band_plot_copes_with_nan_constant_and_empty_series() {
        let dir = test_dir("edge");
        let with_nan = series("gappy", vec![1.0, f64::NAN, 0.5, 0.4, f64::NAN]);
        let constant = series("flat", vec![2.0; 4]);
        let all_nan = series("nothing", vec![f64::NAN; 3]);
        band_plot(&dir.join("a.svg"), "t", "x", "y", &[with_nan, constant]).unwrap();
        band_plot(&dir.join("b.svg"), "t", "x", "y", &[all_nan]).unwrap();
        band_plot(&dir.join("c.svg"), "t", "x", "y", &[]).unwrap();
        let mut zero = series("zero", vec![0.0; 3]);
        zero.lower = zero.mean.clone();
        zero.upper = zero.mean.clone();
        zero.outer_lower = None;
        zero.outer_upper = None;
        band_plot(&dir.join("d.svg"), "t", "x", "y", &[zero]).unwrap();
        for f in ["a.svg", "b.svg", "c.svg", "d.svg"] {
            let svg = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(!svg.contains("NaN"), "{f} has NaN coordinates");
            assert!(svg.trim_end().ends_with("</svg>"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn band_plot_is_deterministic() {
        let dir = test_dir("det");
        let s = [series("a", vec![3.0, 2.0, 1.5])];
        band_plot(&dir.join("1.svg"), "t", "x", "y", &s).unwrap();
        band_plot(&dir.join("2.svg"), "t", "x", "y", &s).unwrap();
        assert_eq!(
            std::fs::read(dir.join("1.svg")).unwrap(),
            std::fs::read(dir.join("2.svg")).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finite_runs_split_at_non_finite_points() {
        let v = [1.0, f64::NAN, 2.0, 3.0, f64::INFINITY, 4.0];
        let runs = finite_runs(v.len(), |k| [v[k]]);
        assert_eq!(runs, vec![vec![[1.0]], vec![[2.0], [3.0]], vec![[4.0]]]);
    }

    #[test]
    fn ranges_pad_constant_and_empty_extents() {
        let mut e = Extent::default();
        assert_eq!(e.padded(0.05), 0.0..1.0);
        e.add(2.0);
        assert_eq!(e.padded(0.05), 1.8..2.2);
        let mut z = Extent::default();
        z.add(0.0);
        assert_eq!(z.padded(0.05), -1.0..1.0);
        z.add(10.0);
        assert_eq!(z.padded(0.1), -1.0..11.0);
    }

    #[test]
    fn legend_avoids_the_data() {
        // Rising series: the upper right corner is full, the upper left empty.
        let rising = series("up", vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        let (x, y) = ranges(std::slice::from_ref(&rising));
        let at = legend_position(std::slice::from_ref(&rising), &x, &y);
        assert!(matches!(at, SeriesLabelPosition::UpperLeft));
        let falling = series("down", vec![4.0, 3.0, 2.0, 1.0, 0.0]);
        let (x, y) = ranges(std::slice::from_ref(&falling));
        let at = legend_position(std::slice::from_ref(&falling), &x, &y);
        assert!(matches!(at, SeriesLabelPosition::UpperRight));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(1500.0), "1500");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(1.0), "1");
        assert_eq!(tick_label(0.00015), "1.5e-4");
        assert_eq!(tick_label(-2.5e7), "-2.5e7");
    }

    #[test]
    fn ensemble_series_uses_stderr_band_and_quantiles() {
        let result = EnsembleResult {
            observables: vec!["loss".into()],
            steps: vec![0, 5],
            trajectories: 4,
            values: vec![1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0],
            valid: vec![2; 4],
            divergences: vec![],
            gradient_evaluations: 20,
            seconds: 0.0,
        };
        let summaries = quasistatic::stats::summarize_ensemble(&result);
        let s = ensemble_series(&result, &summaries, 0, "loss");
        assert_eq!(s.x, vec![0.0, 5.0]);
        assert_eq!(s.mean, vec![2.5, 3.5]);
        let half = 1.96 * 1.2909944487358056 / 2.0;
        assert!((s.upper[0] - (2.5 + half)).abs() < 1e-12);
        assert!((s.lower[1] - (3.5 - half)).abs() < 1e-12);
        assert_eq!(s.outer_lower.unwrap()[0], summaries[0][0].q05);
        assert_eq!(s.outer_upper.unwrap()[1], summaries[1][0].q95);
    }
}
