//! Density grids for pictures and for the quadrature check that a 2-D density
//! integrates to one.

use crate::flows::FlowModel;
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
        self.log_density.iter().map(|l| l.exp()).sum::<f64>() * area
    }
}
