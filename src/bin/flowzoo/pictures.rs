//! PNG pictures: sample scatter plots, density heat maps, digit grids.
//! Each file is written to `NAME.tmp` and renamed, so none is left half written.

use flowzoo::train::sample::DensityGrid;
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

    fn put(&mut self, x: usize, y: usize, color: [u8; 3]) {
        if x < self.width && y < self.height {
            let at = 3 * (y * self.width + x);
            self.rgb[at..at + 3].copy_from_slice(&color);
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

/// Data points (grey) under model samples (blue), both `[n, 2]` row-major,
/// in the box `x_range × y_range`, on a 512×512 canvas with y pointing up.
pub fn scatter(
    path: &Path,
    data: &[f64],
    samples: &[f64],
    x_range: [f64; 2],
    y_range: [f64; 2],
) -> Result<(), String> {
    const SIZE: usize = 512;
    let mut canvas = Canvas::new(SIZE, SIZE, [255, 255, 255]);
    let to_pixel = |x: f64, y: f64| -> Option<(usize, usize)> {
        let px = (x - x_range[0]) / (x_range[1] - x_range[0]) * SIZE as f64;
        let py = (y_range[1] - y) / (y_range[1] - y_range[0]) * SIZE as f64;
        (px >= 0.0 && py >= 0.0 && px < SIZE as f64 && py < SIZE as f64)
            .then_some((px as usize, py as usize))
    };
    for (points, color) in [(data, [170, 170, 170]), (samples, [31, 86, 196])] {
        for p in points.chunks_exact(2) {
            if let Some((x, y)) = to_pixel(p[0], p[1]) {
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    canvas.put(x + dx, y + dy, color);
                }
            }
        }
    }
    canvas.save(path)
}

/// The density exp(log p) of a grid as a heat map (dark = 0, bright = the
/// grid's maximum), one pixel per cell, scaled up to at least 512 pixels.
pub fn heat_map(path: &Path, grid: &DensityGrid) -> Result<(), String> {
    let n = grid.resolution;
    let scale = 512usize.div_ceil(n).max(1);
    let density: Vec<f64> = grid.log_density.iter().map(|l| l.exp()).collect();
    let max = density
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut canvas = Canvas::new(n * scale, n * scale, [0, 0, 0]);
    for row in 0..n {
        for col in 0..n {
            let color = colormap(density[row * n + col] / max);
            for dy in 0..scale {
                for dx in 0..scale {
                    canvas.put(col * scale + dx, row * scale + dy, color);
                }
            }
        }
    }
    canvas.save(path)
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

/// Images (`[n, side·side]`, values in [0, 1], 1 = ink) in a grid of
/// `columns` per row, each pixel drawn as an 8×8 block with a 4-pixel gutter,
/// ink dark on white.
pub fn digit_grid(path: &Path, images: &[f64], side: usize, columns: usize) -> Result<(), String> {
    const ZOOM: usize = 8;
    const GUTTER: usize = 4;
    let n = images.len() / (side * side);
    let rows = n.div_ceil(columns);
    let cell = side * ZOOM + GUTTER;
    let mut canvas = Canvas::new(
        columns * cell + GUTTER,
        rows * cell + GUTTER,
        [200, 200, 200],
    );
    for (k, image) in images.chunks_exact(side * side).enumerate() {
        let (x0, y0) = (GUTTER + (k % columns) * cell, GUTTER + (k / columns) * cell);
        for (p, &v) in image.iter().enumerate() {
            let grey = (255.0 * (1.0 - v.clamp(0.0, 1.0))).round() as u8;
            for dy in 0..ZOOM {
                for dx in 0..ZOOM {
                    canvas.put(
                        x0 + (p % side) * ZOOM + dx,
                        y0 + (p / side) * ZOOM + dy,
                        [grey; 3],
                    );
                }
            }
        }
    }
    canvas.save(path)
}

/// Samples (`[n, 2]` row-major, white dots) over the heat map of a density
/// grid (as [`heat_map`] draws it), in the grid's box: a sampler against its
/// target.
pub fn scatter_over_density(
    path: &Path,
    grid: &DensityGrid,
    samples: &[f64],
) -> Result<(), String> {
    let n = grid.resolution;
    let scale = 512usize.div_ceil(n).max(1);
    let size = n * scale;
    let density: Vec<f64> = grid.log_density.iter().map(|l| l.exp()).collect();
    let max = density
        .iter()
        .cloned()
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut canvas = Canvas::new(size, size, [0, 0, 0]);
    for row in 0..n {
        for col in 0..n {
            let color = colormap(density[row * n + col] / max);
            for dy in 0..scale {
                for dx in 0..scale {
                    canvas.put(col * scale + dx, row * scale + dy, color);
                }
            }
        }
    }
    let (x_range, y_range) = (grid.x_range, grid.y_range);
    for p in samples.chunks_exact(2) {
        let px = (p[0] - x_range[0]) / (x_range[1] - x_range[0]) * size as f64;
        let py = (y_range[1] - p[1]) / (y_range[1] - y_range[0]) * size as f64;
        if px >= 0.0 && py >= 0.0 && px < size as f64 && py < size as f64 {
            let (x, y) = (px as usize, py as usize);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                canvas.put(x + dx, y + dy, [255, 255, 255]);
            }
        }
    }
    canvas.save(path)
}

/// A latent interpolation strip, as in the Glow paper's figure: for three
/// pairs of test digits (the first 2 and 7, 0 and 6, 3 and 8 of `test`),
/// each encoded as z = f⁻¹(x) at the centre of its dequantisation cells,
/// `steps` images decoded from z(t) = (1 − t)·z_a + t·z_b, t = 0 … 1. The
/// ends reconstruct the two digits; returns `[3·steps, side·side]` row-major
/// values in [0, 1].
pub fn latent_interpolation(
    model: &flowzoo::flows::FlowModel<f32>,
    test: &flowzoo::data::digits::Digits,
    steps: usize,
) -> Vec<f64> {
    use flowzoo::flows::Flow;
    use flowzoo::tensor::Tensor;
    let levels = flowzoo::data::digits::LEVELS as f64;
    let pixels = test.height * test.width;
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
        let z = z.to_f64_vec();
        let (z_a, z_b) = z.split_at(pixels);
        let mut path = Vec::with_capacity(steps * pixels);
        for k in 0..steps {
            let t = k as f64 / (steps.max(2) - 1) as f64;
            path.extend(z_a.iter().zip(z_b).map(|(p, q)| (1.0 - t) * p + t * q));
        }
        let (x, _) = model
            .flow
            .forward_tensor(&Tensor::<f32>::from_f64_slice(&path, &[steps, pixels]));
        strip.extend(x.to_f64_vec());
    }
    strip
}
