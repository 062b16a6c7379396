//! Density grids for pictures and for the quadrature check that a 2-D density
//! integrates to one; latent interpolation, and the samples a 2-D model's
//! layers carry one by one (the lecture's picture of a flow).

use crate::flows::FlowModel;
use crate::tensor::math;
use crate::tensor::{Element, Tensor};

/// A square grid of log-densities over a box.
#[derive(Clone, Debug)]
pub struct DensityGrid {
    /// log p at cell centres, `[resolution, resolution]` row-major, row 0 at
    /// the *top* (largest y), so it maps straight onto an image.
    pub log_density: Vec<f64>,
    /// Cells per side.
    pub resolution: usize,
    /// The box's x range.
    pub x_range: [f64; 2],
    /// The box's y range.
    pub y_range: [f64; 2],
}

impl DensityGrid {
    /// Evaluates a 2-D `model` at the centres of `resolution²` cells of the box.
    ///
    /// # Panics
    /// If the model is not 2-D or `resolution` is 0.
    pub fn new<T: Element>(
        model: &FlowModel<T>,
        x_range: [f64; 2],
        y_range: [f64; 2],
        resolution: usize,
    ) -> Self {
        assert_eq!(
            model.dim(),
            2,
            "DensityGrid: the model is {}-D, not 2-D",
            model.dim()
        );
        assert!(resolution > 0, "DensityGrid: resolution must be positive");
        let (dx, dy) = (
            (x_range[1] - x_range[0]) / resolution as f64,
            (y_range[1] - y_range[0]) / resolution as f64,
        );
        let mut points = Vec::with_capacity(2 * resolution * resolution);
        for row in 0..resolution {
            let y = y_range[1] - (row as f64 + 0.5) * dy;
            for col in 0..resolution {
                points.push(x_range[0] + (col as f64 + 0.5) * dx);
                points.push(y);
            }
        }
        let x = Tensor::<T>::from_f64_slice(&points, &[resolution * resolution, 2]);
        let mut log_density = Vec::with_capacity(resolution * resolution);
        for chunk in 0..resolution {
            let rows = x.narrow(0, chunk * resolution, resolution);
            log_density.extend(model.log_prob(&rows).to_vec().into_iter().map(T::to_f64));
        }
        DensityGrid {
            log_density,
            resolution,
            x_range,
            y_range,
        }
    }

    /// The midpoint-rule integral Σ exp(log p)·(cell area): 1 for a normalised
    /// density whose mass lies inside the box.
    pub fn mass(&self) -> f64 {
        let area = (self.x_range[1] - self.x_range[0]) * (self.y_range[1] - self.y_range[0])
            / (self.resolution * self.resolution) as f64;
        self.log_density.iter().map(|&l| math::exp(l)).sum::<f64>() * area
    }
}

/// How [`interpolate`] walks from one latent to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// z(t) = (1 − t)·z_a + t·z_b: a straight line, whose midpoint has a
    /// smaller norm than either end (a less typical latent in high D).
    Linear,
    /// Spherical (slerp): z(t) = sin((1 − t)Ω)/sin Ω · z_a + sin(tΩ)/sin Ω
    /// · z_b, Ω the angle between them, which keeps the norm near that of
    /// the ends, where a Gaussian's mass lies in high D (Shoemake 1985;
    /// White, "Sampling Generative Networks", arXiv:1609.04468). Linear
    /// where Ω is within 1e-6 of 0 or π, or an end is zero.
    Spherical,
}

/// `steps` latents from `z_a` to `z_b` (the same shape, one sample each,
/// e.g. `[dim]` or `[1, C, H, W]`), stacked along a new first axis:
/// `[steps, …]`, t = k/(steps − 1). The first is `z_a` and the last `z_b`
/// exactly; every one is finite when the ends are.
///
/// # Panics
/// If the shapes differ or `steps` < 2.
pub fn interpolate<T: Element>(
    z_a: &Tensor<T>,
    z_b: &Tensor<T>,
    steps: usize,
    kind: Interpolation,
) -> Tensor<T> {
    assert_eq!(
        z_a.shape(),
        z_b.shape(),
        "interpolate: the ends have shapes {:?} and {:?}",
        z_a.shape(),
        z_b.shape()
    );
    assert!(
        steps >= 2,
        "interpolate: needs at least 2 steps, got {steps}"
    );
    let (a, b) = (z_a.to_f64_vec(), z_b.to_f64_vec());
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (na, nb) = (norm(&a), norm(&b));
    let omega = if na > 0.0 && nb > 0.0 {
        let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (na * nb);
        cos.clamp(-1.0, 1.0).acos()
    } else {
        0.0
    };
    let spherical =
        kind == Interpolation::Spherical && omega > 1e-6 && omega < std::f64::consts::PI - 1e-6;
    let mut out = Vec::with_capacity(steps * a.len());
    for k in 0..steps {
        let (wa, wb) = if k == 0 {
            (1.0, 0.0)
        } else if k == steps - 1 {
            (0.0, 1.0)
        } else {
            let t = k as f64 / (steps - 1) as f64;
            if spherical {
                let s = omega.sin();
                (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s)
            } else {
                (1.0 - t, t)
            }
        };
        out.extend(a.iter().zip(&b).map(|(x, y)| wa * x + wb * y));
    }
    let mut shape = vec![steps];
    shape.extend(z_a.shape().iter().copied());
    // One sample each: a leading 1 of the ends is replaced by `steps`.
    if z_a.shape().len() > 1 && z_a.shape()[0] == 1 {
        shape.remove(1);
    }
    Tensor::from_f64_slice(&out, &shape)
}

/// The samples of a model's layers one by one: `z` (`[n, …]`, base
/// samples), then f₁(z), f₂(f₁(z)), … up to x, the model's samples: the
/// lecture's picture of how each layer bends the space. `n_layers + 1`
/// tensors, each `[n, …]`, with each layer's name.
pub fn layer_by_layer<T: Element>(model: &FlowModel<T>, z: &Tensor<T>) -> Vec<(String, Tensor<T>)> {
    let mut stages = vec![("base z".to_string(), z.clone())];
    let mut v = z.clone();
    for (i, layer) in model.flow.layers.iter().enumerate() {
        let (x, _) = layer.forward_tensor(&v);
        stages.push((format!("after layer {i} ({})", layer.name()), x.clone()));
        v = x;
    }
    stages
}

/// One scale of a multi-scale model's flat latent: where its values lie
/// and the image shape they had where they were factored out.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentScale {
    /// What the values are, for a picture's label.
    pub label: String,
    /// The first index in the flat latent `[C·H·W]`.
    pub offset: usize,
    /// `[channels, height, width]`: the values are `offset ..
    /// offset + channels·height·width`, in this shape.
    pub shape: [usize; 3],
}

/// The scales of a multi-scale model's flat latent of `dim` values, from
/// its spec: each [`Split`](crate::flows::Split) factors out its last
/// channels (`[C − kept, H, W]`, at the end of its segment) and hands the
/// first `kept·H·W` values to its inner flow; the innermost segment comes
/// last in the list, shown in the shape `[kept, H, W]` of the deepest
/// split's kept channels. Empty for a model without a split (or without a
/// spec).
pub fn latent_scales<T: Element>(model: &FlowModel<T>, dim: usize) -> Vec<LatentScale> {
    use crate::flows::spec::LayerSpec;
    use crate::flows::Flow;
    /// The first Split in `spec` or its descendants, depth first.
    fn first_split(spec: &LayerSpec) -> Option<&LayerSpec> {
        if spec.kind == "Split" {
            return Some(spec);
        }
        spec.children.iter().find_map(first_split)
    }
    let mut scales = Vec::new();
    let Some(spec) = model.flow.to_spec() else {
        return scales;
    };
    let (mut node, mut len) = (first_split(&spec), dim);
    let mut innermost = None;
    while let Some(split) = node {
        let field = |name: &str| split.usize(name).unwrap_or(0);
        let (c, h, w, kept) = (
            field("channels"),
            field("height"),
            field("width"),
            field("kept"),
        );
        if c * h * w != len || kept == 0 || kept >= c {
            break;
        }
        let inner = kept * h * w;
        scales.push(LatentScale {
            label: format!("factored out at {h}x{w}: {} channels", c - kept),
            offset: inner,
            shape: [c - kept, h, w],
        });
        innermost = Some([kept, h, w]);
        len = inner;
        node = split.children.first().and_then(first_split);
    }
    if let Some(shape) = innermost {
        scales.push(LatentScale {
            label: format!(
                "innermost latent: {len} values, shown as {} channels of {}x{}",
                shape[0], shape[1], shape[2]
            ),
            offset: 0,
            shape,
        });
    }
    scales
}
