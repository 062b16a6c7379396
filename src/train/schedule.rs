//! [`Schedule`]: the learning-rate schedule of a run as the command line
//! names it (`constant`, `cosine`, `cosine:WARMUP`, `step:EVERY:GAMMA`),
//! turned into the optimiser's [`LrSchedule`] for a run's rate and length.

use crate::nn::LrSchedule;

/// A learning-rate schedule relative to a run's base rate and length:
/// `constant`, `cosine` or `cosine:WARMUP` (linear warm-up over WARMUP
/// steps, then cosine decay towards 0, reached one step after the last),
/// `step:EVERY:GAMMA` (the rate times GAMMA ≤ 1 every EVERY steps).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// [`LrSchedule::WarmupCosine`] from the base rate to 0.
    Cosine {
        /// Warm-up steps.
        warmup: usize,
    },
    /// [`LrSchedule::Step`].
    Step {
        /// Steps between decays.
        every: usize,
        /// The factor of each decay.
        gamma: f64,
    },
}

impl Schedule {
    /// The schedule of a run at base rate `lr` over `steps` steps (`None`
    /// for a constant rate: the optimiser's own).
    pub fn of_run(&self, lr: f64, steps: usize) -> Option<LrSchedule> {
        match *self {
            Schedule::Constant => None,
            Schedule::Cosine { warmup } => Some(LrSchedule::WarmupCosine {
                base: lr,
                warmup,
                total: steps,
                min: 0.0,
            }),
            Schedule::Step { every, gamma } => Some(LrSchedule::Step {
                base: lr,
                every,
                gamma,
            }),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    /// `constant`, `cosine`, `cosine:WARMUP`, `step:EVERY:GAMMA`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let number = |s: &str, what: &str| -> Result<f64, String> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{what} {s:?} is not a number"))
        };
        let count = |s: &str, what: &str| -> Result<usize, String> {
            s.parse::<usize>()
                .map_err(|_| format!("{what} {s:?} is not a whole number"))
        };
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine { warmup: 0 }),
            ["cosine", w] => Ok(Schedule::Cosine {
                warmup: count(w, "the warm-up")?,
            }),
            ["step", every, gamma] => {
                let every = count(every, "the decay interval")?;
                let gamma = number(gamma, "the decay factor")?;
                if every == 0 || gamma <= 0.0 || gamma > 1.0 {
                    return Err(format!(
                        "step:{every}:{gamma}: the interval must be at least 1 and the \
                         decay factor in (0, 1]"
                    ));
                }
                Ok(Schedule::Step { every, gamma })
            }
            _ => Err(format!(
                "unknown schedule {text:?}: constant, cosine, cosine:WARMUP or \
                 step:EVERY:GAMMA (e.g. step:1000:0.5)"
            )),
        }
    }
}
