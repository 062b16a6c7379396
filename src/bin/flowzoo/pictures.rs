//! PNG pictures: sample scatter plots, density heat maps, digit grids.
//! Each file is written to `NAME.tmp` and renamed, so none is left half written.

use flowzoo::train::sample::{interpolate, DensityGrid, Interpolation, LatentScale};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| format!("{}: cannot rename into place: {e}", path.display()))
}

/// An RGB image being drawn.
struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize, background: [u8; 3]) -> Self {
        Canvas {
            width,
            height,
            rgb: background.repeat(width * height),
        }
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
            writer
                .write_image_data(&self.rgb)
                .map_err(|e| e.to_string())?;
        }
        write_atomically(path, &bytes)
    }
}

/// The font every label is drawn with: DejaVu Sans, embedded (no system
/// font library is looked up), registered with plotters once.
const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans is a valid font"));
    });
}

/// Draws on a white `width × height` RGB canvas with plotters, then saves it.
fn draw(
    path: &Path,
    width: usize,
    height: usize,
    paint: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    register_font();
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    {
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (width as u32, height as u32))
            .into_drawing_area();
        paint(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    canvas.save(path)
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A 2-D chart over `x_range × y_range` in `area`, titled, axes x₁ and x₂.
fn chart_2d<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    x_range: [f64; 2],
    y_range: [f64; 2],
    title_size: u32,
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String>
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, title_size))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(x_range[0]..x_range[1], y_range[0]..y_range[1])
        .map_err(text)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x₁")
        .y_desc("x₂")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(text)?;
    Ok(chart)
}

/// Data points (grey) and model samples (blue), both `[n, 2]` row-major,
/// in the box `x_range × y_range`: a 640×680 chart with axes, `title`, and
/// a legend.
pub fn scatter(
    path: &Path,
    data: &[f64],
    samples: &[f64],
    x_range: [f64; 2],
    y_range: [f64; 2],
    title: &str,
) -> Result<(), String> {
    draw(path, 640, 680, |root| {
        let mut chart = chart_2d(root, title, x_range, y_range, 17)?;
        let grey = RGBColor(165, 165, 165);
        let blue = RGBColor(31, 86, 196);
        for (points, color, label) in [(data, grey, "data"), (samples, blue, "model samples")] {
            chart
                .draw_series(
                    points
                        .chunks_exact(2)
                        .filter(|p| inside(p, x_range, y_range))
                        .map(|p| Circle::new((p[0], p[1]), 1, color.filled())),
                )
                .map_err(text)?
                .label(format!("{label} ({})", points.len() / 2))
                .legend(move |(x, y)| Circle::new((x + 6, y), 3, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(text)
    })
}

fn inside(p: &[f64], x_range: [f64; 2], y_range: [f64; 2]) -> bool {
    (x_range[0]..=x_range[1]).contains(&p[0]) && (y_range[0]..=y_range[1]).contains(&p[1])
}

/// The density exp(log p) of a grid as a heat map with axes, `title`, and a
/// colour bar from 0 to the grid's maximum (the density's units: per unit
/// area), optionally with `samples` (`[n, 2]`) drawn over it in white.
pub fn heat_map(
    path: &Path,
    grid: &DensityGrid,
    title: &str,
    samples: Option<&[f64]>,
) -> Result<(), String> {
    let n = grid.resolution;
    let density: Vec<f64> = grid.log_density.iter().map(|l| l.exp()).collect();
    let max = density
        .iter()
        .cloned()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let (x_range, y_range) = (grid.x_range, grid.y_range);
    draw(path, 720, 680, |root| {
        let (left, right) = root.split_horizontally(620);
        let mut chart = chart_2d(&left, title, x_range, y_range, 17)?;
        let (dx, dy) = (
            (x_range[1] - x_range[0]) / n as f64,
            (y_range[1] - y_range[0]) / n as f64,
        );
        chart
            .draw_series((0..n * n).map(|k| {
                let (row, col) = (k / n, k % n);
                let x0 = x_range[0] + col as f64 * dx;
                let y1 = y_range[1] - row as f64 * dy;
                let c = colormap(density[k] / max);
                Rectangle::new(
                    [(x0, y1), (x0 + dx, y1 - dy)],
                    RGBColor(c[0], c[1], c[2]).filled(),
                )
            }))
            .map_err(text)?;
        if let Some(samples) = samples {
            chart
                .draw_series(
                    samples
                        .chunks_exact(2)
                        .filter(|p| inside(p, x_range, y_range))
                        .map(|p| Circle::new((p[0], p[1]), 1, WHITE.filled())),
                )
                .map_err(text)?;
        }
        colour_bar(&right, max)
    })
}

/// A vertical colour bar from 0 to `max`, labelled "density".
fn colour_bar(area: &DrawingArea<BitMapBackend, Shift>, max: f64) -> Result<(), String> {
    let mut bar = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(44)
        .margin_right(8)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, 0.0..max)
        .map_err(text)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc("density")
        .y_labels(6)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(text)?;
    const STEPS: usize = 200;
    bar.draw_series((0..STEPS).map(|k| {
        let (a, b) = (k as f64 / STEPS as f64, (k + 1) as f64 / STEPS as f64);
        let c = colormap((a + b) / 2.0);
        Rectangle::new(
            [(0.0, a * max), (1.0, b * max)],
            RGBColor(c[0], c[1], c[2]).filled(),
        )
    }))
    .map_err(text)?;
    Ok(())
}

/// A perceptually ordered dark-blue → teal → yellow map of `t` in [0, 1]
/// (anchors close to viridis).
fn colormap(t: f64) -> [u8; 3] {
    const ANCHORS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * (ANCHORS.len() - 1) as f64;
    let i = (t.floor() as usize).min(ANCHORS.len() - 2);
    let f = t - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (ANCHORS[i][k] * (1.0 - f) + ANCHORS[i + 1][k] * f).round() as u8;
    }
    c
}

/// Images (`[n, c·h·w]` with `shape = [c, h, w]`, values in [0, 1]) in a
/// grid of `columns` per row, each pixel a block of 64 / max(h, w) screen
/// pixels (8 for the 8x8 digits, 2 for MNIST), with a 4-pixel gutter and a
/// `caption` line under the grid. One channel: 1 = ink, dark on white;
/// three: the red, green and blue planes as they are.
pub fn image_grid(
    path: &Path,
    images: &[f64],
    shape: [usize; 3],
    columns: usize,
    caption: &str,
) -> Result<(), String> {
    const GUTTER: usize = 4;
    const CAPTION: usize = 28;
    let [channels, h, w] = shape;
    let plane = h * w;
    let zoom = (64 / h.max(w).max(1)).max(1);
    let n = images.len() / (channels * plane).max(1);
    let rows = n.div_ceil(columns);
    let cell = h.max(w) * zoom + GUTTER;
    // About 8 pixels per character of the 15-pixel caption font.
    let width = (columns * cell + GUTTER).max(8 * caption.chars().count() + 2 * GUTTER);
    let height = rows * cell + GUTTER + CAPTION;
    let byte = |v: f64| (255.0 * v.clamp(0.0, 1.0)).round() as u8;
    draw(path, width, height, |root| {
        root.fill(&RGBColor(200, 200, 200)).map_err(text)?;
        for (k, image) in images.chunks_exact(channels * plane).enumerate() {
            let (x0, y0) = (GUTTER + (k % columns) * cell, GUTTER + (k / columns) * cell);
            for p in 0..plane {
                let colour = if channels == 3 {
                    RGBColor(
                        byte(image[p]),
                        byte(image[plane + p]),
                        byte(image[2 * plane + p]),
                    )
                } else {
                    let grey = 255 - byte(image[p]);
                    RGBColor(grey, grey, grey)
                };
                let (x, y) = ((x0 + (p % w) * zoom) as i32, (y0 + (p / w) * zoom) as i32);
                let z = zoom as i32;
                root.draw(&Rectangle::new([(x, y), (x + z, y + z)], colour.filled()))
                    .map_err(text)?;
            }
        }
        let y = (rows * cell + GUTTER + 6) as i32;
        root.draw(&Text::new(
            caption.to_string(),
            (GUTTER as i32, y),
            (FONT, 15),
        ))
        .map_err(text)
    })
}

/// The lecture's picture of a flow: the base samples and the samples after
/// each layer (`stages`, each `[n, 2]` with its label), one panel each, the
/// points coloured by the quadrant of the base sample they started from, so
/// the reader sees each layer bend the space.
pub fn flows_png(path: &Path, stages: &[(String, Vec<f64>)], title: &str) -> Result<(), String> {
    const PANEL: usize = 300;
    let columns = stages.len().clamp(1, 4);
    let rows = stages.len().div_ceil(columns);
    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    let quadrant: Vec<usize> = stages
        .first()
        .map(|(_, z)| {
            z.chunks_exact(2)
                .map(|p| usize::from(p[0] < 0.0) + 2 * usize::from(p[1] < 0.0))
                .collect()
        })
        .unwrap_or_default();
    draw(path, columns * PANEL, rows * PANEL + 40, |root| {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(title.to_string(), (10, 10), (FONT, 18)))
            .map_err(text)?;
        let panels = body.split_evenly((rows, columns));
        for ((label, points), panel) in stages.iter().zip(&panels) {
            let (x_range, y_range) = square_box(points);
            let mut chart = ChartBuilder::on(panel)
                .caption(label, (FONT, 13))
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(30)
                .build_cartesian_2d(x_range[0]..x_range[1], y_range[0]..y_range[1])
                .map_err(text)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(5)
                .y_labels(5)
                .label_style((FONT, 10))
                .draw()
                .map_err(text)?;
            chart
                .draw_series(
                    points
                        .chunks_exact(2)
                        .zip(&quadrant)
                        .map(|(p, &q)| Circle::new((p[0], p[1]), 1, colours[q].filled())),
                )
                .map_err(text)?;
        }
        Ok(())
    })
}

/// The multi-scale latents of one digit: the digit (`side × side`, in
/// [0, 1]) on the first row, then one row per scale of its latent `z`
/// (each channel a tile, values from −3 (black) to +3 (white), 0 grey),
/// labelled with what the scale is.
pub fn latents_png(
    path: &Path,
    digit: &[f64],
    side: usize,
    z: &[f64],
    scales: &[LatentScale],
    title: &str,
) -> Result<(), String> {
    const TILE: usize = 96;
    const GAP: usize = 8;
    const ROW: usize = TILE + 34;
    let widest = scales.iter().map(|s| s.shape[0]).max().unwrap_or(1).max(1);
    let width = (widest * (TILE + GAP) + GAP).max(8 * title.chars().count() + 2 * GAP);
    let height = 40 + (scales.len() + 1) * ROW;
    draw(path, width, height, |root| {
        root.draw(&Text::new(title.to_string(), (GAP as i32, 10), (FONT, 16)))
            .map_err(text)?;
        let tile = |top: usize,
                    left: usize,
                    values: &[f64],
                    h: usize,
                    w: usize,
                    grey: &dyn Fn(f64) -> u8| {
            let cell = (TILE / h.max(w)).max(1);
            for (k, &v) in values.iter().enumerate() {
                let (x, y) = (
                    (left + (k % w) * cell) as i32,
                    (top + (k / w) * cell) as i32,
                );
                let g = grey(v);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    RGBColor(g, g, g).filled(),
                ))
                .map_err(text)?;
            }
            Ok::<(), String>(())
        };
        let label = |top: usize, what: &str| {
            root.draw(&Text::new(
                what.to_string(),
                (GAP as i32, top as i32),
                (FONT, 14),
            ))
            .map_err(text)
        };
        let ink = |v: f64| (255.0 * (1.0 - v.clamp(0.0, 1.0))).round() as u8;
        let signed = |v: f64| (255.0 * ((v.clamp(-3.0, 3.0) + 3.0) / 6.0)).round() as u8;
        label(40, "the digit x")?;
        tile(40 + 20, GAP, digit, side, side, &ink)?;
        for (r, scale) in scales.iter().enumerate() {
            let top = 40 + (r + 1) * ROW;
            let [c, h, w] = scale.shape;
            label(top, &scale.label)?;
            for ch in 0..c {
                let start = scale.offset + ch * h * w;
                let values = z.get(start..start + h * w).unwrap_or(&[]);
                tile(top + 20, GAP + ch * (TILE + GAP), values, h, w, &signed)?;
            }
        }
        Ok(())
    })
}

/// A square box around the central 99.5 % of `points` (`[n, 2]`), so a few
/// far points do not shrink the picture.
fn square_box(points: &[f64]) -> ([f64; 2], [f64; 2]) {
    let quantiles = |axis: usize| {
        let mut v: Vec<f64> = points
            .chunks_exact(2)
            .map(|p| p[axis])
            .filter(|v| v.is_finite())
            .collect();
        if v.is_empty() {
            return (-1.0, 1.0);
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.0025), at(0.9975))
    };
    let ((x0, x1), (y0, y1)) = (quantiles(0), quantiles(1));
    let half = ((x1 - x0).max(y1 - y0) / 2.0 * 1.1).max(1e-6);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    ([cx - half, cx + half], [cy - half, cy + half])
}

/// A latent interpolation strip, as in the Glow paper's figure: for three
/// pairs of test digits (the first 2 and 7, 0 and 6, 3 and 8 of `test`),
/// each encoded as z = f⁻¹(x) at the centre of its dequantisation cells,
/// `steps` images decoded from z(t) = (1 − t)·z_a + t·z_b, t = 0 … 1. The
/// ends reconstruct the two digits; returns `[3·steps, side·side]` row-major
/// values in [0, 1].
pub fn latent_interpolation(
    model: &flowzoo::flows::FlowModel<f32>,
    test: &flowzoo::data::images::ImageSet,
    levels: u32,
    steps: usize,
) -> Vec<f64> {
    use flowzoo::flows::Flow;
    use flowzoo::tensor::Tensor;
    let levels = f64::from(levels);
    let pixels = test.pixels();
    let first_of = |label: u8| {
        let i = test.labels.iter().position(|&l| l == label).unwrap_or(0);
        test.image(i)
            .iter()
            .map(|&v| (f64::from(v) + 0.5) / levels)
            .collect::<Vec<f64>>()
    };
    let mut strip = Vec::with_capacity(3 * steps * pixels);
    for (a, b) in [(2, 7), (0, 6), (3, 8)] {
        let ends: Vec<f64> = first_of(a).into_iter().chain(first_of(b)).collect();
        let (z, _) = model
            .flow
            .inverse_tensor(&Tensor::<f32>::from_f64_slice(&ends, &[2, pixels]));
        let path = interpolate(
            &z.narrow(0, 0, 1),
            &z.narrow(0, 1, 1),
            steps.max(2),
            Interpolation::Linear,
        );
        let (x, _) = model.flow.forward_tensor(&path);
        strip.extend(x.to_f64_vec());
    }
    strip
}
