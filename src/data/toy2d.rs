//! Two-dimensional toy densities: the pictures every flow paper draws.
//!
//! Each [`Toy2d`] variant's doc is its exact definition, so a reader can
//! reproduce the samples elsewhere. The sets follow the toy data of FFJORD
//! (Grathwohl et al. 2019, arXiv:1810.01367, file `lib/toy_data.py`) except
//! moons, which is scikit-learn's `make_moons`. Each also gives a
//! [`bounds`](Toy2d::bounds) box that holds essentially all its mass, for
//! density maps and for checking by quadrature that a density integrates to 1.

use crate::tensor::math;
use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::DataError;

/// Noise of [`Toy2d::Moons`] when parsed from the name `"moons"`.
pub const DEFAULT_MOONS_NOISE: f64 = 0.05;

/// The canonical names, as [`Toy2d::name`] returns and [`FromStr`] accepts.
pub const NAMES: [&str; 5] = ["moons", "8gaussians", "checkerboard", "pinwheel", "circles"];

/// A two-dimensional toy distribution. Below, u ~ U[0, 1) and ε ~ N(0, 1) are
/// fresh draws for each use, and each point is drawn independently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Toy2d {
    /// Two interleaving half circles (scikit-learn's `make_moons`):
    /// t = π·u; with probability 1/2 the upper arc (cos t, sin t), otherwise
    /// the lower arc (1 − cos t, 1/2 − sin t); then each coordinate gets
    /// `noise · ε`. Mean (1/2, 1/4).
    Moons {
        /// Standard deviation of the isotropic Gaussian noise (0.05 by default).
        noise: f64,
    },
    /// Eight Gaussians on a circle (FFJORD's `8gaussians`): k uniform in
    /// 0..8, centre c = 4·(cos kπ/4, sin kπ/4), point (c + 0.5·(ε₁, ε₂)) / √2.
    /// So the centres lie on a circle of radius 2√2 ≈ 2.83 and each Gaussian
    /// has standard deviation 1/(2√2) ≈ 0.354. (FFJORD divides by 1.414, a
    /// rounding of √2; we use √2.)
    EightGaussians,
    /// A 4x4 checkerboard on [−4, 4]² with the 8 cells (i, j), i, j in 0..4,
    /// where i + j is even (FFJORD's `checkerboard`): the cell is uniform
    /// among them, the point (−4 + 2(i + u₁), −4 + 2(j + u₂)). Uniform density
    /// 1/32 on the black cells, 0 elsewhere.
    Checkerboard,
    /// Five spiralling arms (FFJORD's `pinwheel`): k uniform in 0..5,
    /// r = 1 + 0.3·ε₁, s = 0.1·ε₂, θ = 2πk/5 + 0.25·exp(r), point
    /// 2·(r cos θ + s sin θ, −r sin θ + s cos θ).
    Pinwheel,
    /// Two concentric noisy circles (FFJORD's `circles`, after scikit-learn's
    /// `make_circles` with factor 0.5, noise 0.08, scaled by 3): radius ρ = 1
    /// or ρ = 1/2 with probability 1/2 each, φ = 2π·u, point
    /// 3·(ρ cos φ + 0.08·ε₁, ρ sin φ + 0.08·ε₂).
    Circles,
}

impl Toy2d {
    /// Moons with the default noise, 0.05.
    pub fn moons() -> Self {
        Toy2d::Moons {
            noise: DEFAULT_MOONS_NOISE,
        }
    }

    /// The canonical name: one of [`NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Toy2d::Moons { .. } => "moons",
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Pinwheel => "pinwheel",
            Toy2d::Circles => "circles",
        }
    }

    /// Draws `n` independent points, as defined in the variant's doc.
    ///
    /// # Shapes
    /// Returns `[n, 2]` row-major: `x` at even indices, `y` at odd ones.
    ///
    /// # Examples
    /// ```
    /// use flowzoo::data::toy2d::Toy2d;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let points = Toy2d::moons().sample(100, &mut rng);
    /// assert_eq!(points.len(), 200);
    /// ```
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<f64> {
        let mut points = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let [x, y] = self.sample_one(rng);
            points.push(x);
            points.push(y);
        }
        points
    }

    fn sample_one<R: Rng + ?Sized>(&self, rng: &mut R) -> [f64; 2] {
        match *self {
            Toy2d::Moons { noise } => {
                let t = PI * rng.gen::<f64>();
                let [x, y] = if rng.gen_bool(0.5) {
                    [math::cos(t), math::sin(t)]
                } else {
                    [1.0 - math::cos(t), 0.5 - math::sin(t)]
                };
                [x + noise * normal(rng), y + noise * normal(rng)]
            }
            Toy2d::EightGaussians => {
                let k = rng.gen_range(0..8) as f64;
                let (sin, cos) = (math::sin(k * PI / 4.0), math::cos(k * PI / 4.0));
                let (e1, e2) = (normal(rng), normal(rng));
                // (4·c + 0.5·ε) / √2
                [
                    (4.0 * cos + 0.5 * e1) / SQRT_2,
                    (4.0 * sin + 0.5 * e2) / SQRT_2,
                ]
            }
            Toy2d::Checkerboard => {
                // the 8 cells with i + j even: i in 0..4, j = 2m + (i mod 2)
                let i = rng.gen_range(0..4);
                let j = 2 * rng.gen_range(0..2) + i % 2;
                let x = -4.0 + 2.0 * (f64::from(i) + rng.gen::<f64>());
                let y = -4.0 + 2.0 * (f64::from(j) + rng.gen::<f64>());
                [x, y]
            }
            Toy2d::Pinwheel => {
                let k = f64::from(rng.gen_range(0..5u32));
                let (r, s) = (1.0 + 0.3 * normal(rng), 0.1 * normal(rng));
                let theta = 2.0 * PI * k / 5.0 + 0.25 * math::exp(r);
                let (sin, cos) = (math::sin(theta), math::cos(theta));
                // the row vector (r, s) times the rotation [[cos, −sin], [sin, cos]]
                [2.0 * (r * cos + s * sin), 2.0 * (-r * sin + s * cos)]
            }
            Toy2d::Circles => {
                let rho = if rng.gen_bool(0.5) { 1.0 } else { 0.5 };
                let phi = 2.0 * PI * rng.gen::<f64>();
                let (sin, cos) = (math::sin(phi), math::cos(phi));
                let (e1, e2) = (normal(rng), normal(rng));
                [3.0 * (rho * cos + 0.08 * e1), 3.0 * (rho * sin + 0.08 * e2)]
            }
        }
    }

    /// A box `([x_min, x_max], [y_min, y_max])` that holds essentially all the
    /// mass: the support for checkerboard, six noise standard deviations
    /// beyond the noise-free shape for the others (so the mass outside is
    /// below about 1e-8).
    ///
    /// Use it for density maps and to check by quadrature that a learned
    /// density integrates to 1 (DESIGN.md, proof 6).
    pub fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        match *self {
            Toy2d::Moons { noise } => {
                // arcs span x in [−1, 2], y in [−1/2, 1]
                let pad = 6.0 * noise.abs();
                ([-1.0 - pad, 2.0 + pad], [-0.5 - pad, 1.0 + pad])
            }
            Toy2d::EightGaussians => {
                // centres at radius 2√2, standard deviation 1/(2√2)
                let edge = 2.0 * SQRT_2 + 6.0 * 0.5 * FRAC_1_SQRT_2;
                ([-edge, edge], [-edge, edge])
            }
            Toy2d::Checkerboard => ([-4.0, 4.0], [-4.0, 4.0]),
            Toy2d::Pinwheel => {
                // |point| = 2·√(r² + s²) with r ≤ 1 + 6·0.3, |s| ≤ 6·0.1
                let edge = 2.0 * (2.8f64.powi(2) + 0.6f64.powi(2)).sqrt();
                ([-edge, edge], [-edge, edge])
            }
            Toy2d::Circles => {
                let edge = 3.0 * (1.0 + 6.0 * 0.08);
                ([-edge, edge], [-edge, edge])
            }
        }
    }
}

/// One draw ε ~ N(0, 1).
fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    rng.sample(StandardNormal)
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toy2d {
    type Err = DataError;

    /// Parses a name, ignoring ASCII case: `moons` (noise 0.05), `8gaussians`
    /// (also `eight-gaussians`, `eight_gaussians`), `checkerboard`,
    /// `pinwheel`, `circles`.
    ///
    /// # Errors
    /// [`DataError::UnknownDataset`] listing [`NAMES`].
    fn from_str(name: &str) -> Result<Self, DataError> {
        match name.to_ascii_lowercase().as_str() {
            "moons" => Ok(Toy2d::moons()),
            "8gaussians" | "eight-gaussians" | "eight_gaussians" => Ok(Toy2d::EightGaussians),
            "checkerboard" => Ok(Toy2d::Checkerboard),
            "pinwheel" => Ok(Toy2d::Pinwheel),
            "circles" => Ok(Toy2d::Circles),
            _ => Err(DataError::UnknownDataset {
                name: name.to_string(),
                known: NAMES.iter().map(|known| known.to_string()).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const ALL: [Toy2d; 5] = [
        Toy2d::Moons { noise: 0.05 },
        Toy2d::EightGaussians,
        Toy2d::Checkerboard,
        Toy2d::Pinwheel,
        Toy2d::Circles,
    ];

    fn sample(toy: Toy2d, n: usize, seed: u64) -> Vec<f64> {
        toy.sample(n, &mut StdRng::seed_from_u64(seed))
    }

    fn mean(points: &[f64]) -> [f64; 2] {
        let n = (points.len() / 2) as f64;
        let sum = |offset: usize| points.iter().skip(offset).step_by(2).sum::<f64>();
        [sum(0) / n, sum(1) / n]
    }

    #[test]
    fn same_seed_gives_the_same_points() {
        for toy in ALL {
            assert_eq!(sample(toy, 50, 9), sample(toy, 50, 9), "{toy}");
            assert_ne!(sample(toy, 50, 9), sample(toy, 50, 10), "{toy}");
        }
    }

    #[test]
    fn noise_free_moons_lie_on_their_arcs() {
        let points = sample(Toy2d::Moons { noise: 0.0 }, 1000, 1);
        for point in points.chunks_exact(2) {
            let (x, y) = (point[0], point[1]);
            // upper arc: unit circle around (0, 0), y ≥ 0;
            // lower arc: unit circle around (1, 1/2), y ≤ 1/2
            let upper = ((x.hypot(y)) - 1.0).abs() + (-y).max(0.0);
            let lower = ((x - 1.0).hypot(y - 0.5) - 1.0).abs() + (y - 0.5).max(0.0);
            assert!(upper.min(lower) < 1e-12, "({x}, {y}) is on neither arc");
        }
    }

    #[test]
    fn sample_means_match_the_definitions() {
        // moons (1/2, 1/4); the others are symmetric about the origin
        let expected = [[0.5, 0.25], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]];
        for (toy, expected) in ALL.into_iter().zip(expected) {
            let [x, y] = mean(&sample(toy, 20_000, 2));
            let tolerance = 0.06; // ≈ 4 standard errors for the widest set
            assert!((x - expected[0]).abs() < tolerance, "{toy}: mean x {x}");
            assert!((y - expected[1]).abs() < tolerance, "{toy}: mean y {y}");
        }
    }

    #[test]
    fn every_sample_lies_inside_the_bounds_box() {
        for toy in ALL {
            let ([x_min, x_max], [y_min, y_max]) = toy.bounds();
            let points = sample(toy, 20_000, 3);
            for point in points.chunks_exact(2) {
                assert!((x_min..=x_max).contains(&point[0]), "{toy}: x {}", point[0]);
                assert!((y_min..=y_max).contains(&point[1]), "{toy}: y {}", point[1]);
            }
        }
    }

    #[test]
    fn samples_reach_the_extent_of_each_shape() {
        // the largest radius drawn is near the shape's outer edge
        let max_radius = |toy| {
            let points = sample(toy, 5_000, 4);
            points
                .chunks_exact(2)
                .map(|p| p[0].hypot(p[1]))
                .fold(0.0, f64::max)
        };
        assert!((3.3..4.8).contains(&max_radius(Toy2d::EightGaussians)));
        assert!((5.0..5.7).contains(&max_radius(Toy2d::Checkerboard))); // corner 4√2
        assert!((3.0..4.4).contains(&max_radius(Toy2d::Circles)));
    }

    #[test]
    fn checkerboard_fills_only_cells_with_even_index_sum() {
        let points = sample(Toy2d::Checkerboard, 2_000, 5);
        for point in points.chunks_exact(2) {
            let i = ((point[0] + 4.0) / 2.0).floor() as i64;
            let j = ((point[1] + 4.0) / 2.0).floor() as i64;
            assert_eq!((i + j) % 2, 0, "({}, {})", point[0], point[1]);
        }
    }

    #[test]
    fn names_parse_back_and_unknown_names_list_the_known_ones() {
        for toy in ALL {
            assert_eq!(toy.name().parse::<Toy2d>().unwrap().name(), toy.name());
        }
        assert_eq!(
            "Eight-Gaussians".parse::<Toy2d>().unwrap(),
            Toy2d::EightGaussians
        );
        let error = "spirals".parse::<Toy2d>().unwrap_err().to_string();
        assert!(
            error.contains("spirals") && error.contains("checkerboard"),
            "{error}"
        );
    }
}
