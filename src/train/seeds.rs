//! The seed streams of a run: one table that names every random stream an
//! experiment draws from and the offset that separates it from the run's
//! seed, so that `flowzoo train`, `--resume`, `flowzoo eval` and the
//! pictures all draw the same numbers from the same place.
//!
//! Each stream is an independent `StdRng` seeded with `seed + offset`
//! (wrapping). The streams of the maximum-likelihood runs and those of the
//! IAF experiments share offsets: the two kinds never run in one
//! experiment, except the IAF's MAF teacher, which is itself a
//! maximum-likelihood run with its own streams.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// A named random stream of a run seeded `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The model's initial parameters (offset 0).
    Init,
    /// The training loop: toy batches, dequantisation noise, reverse-KL
    /// draws (offset 1).
    Fit,
    /// The training / test split of a user's table (offset 0: its own RNG,
    /// apart from `Init`'s).
    Split,
    /// The order in which a dataset's rows are batched (offset 2).
    Batches,
    /// The dequantisation noise of every validation check, drawn afresh for
    /// each so that checks compare (offset 3).
    Validation,
    /// The samples drawn for the pictures of a maximum-likelihood run (offset 4).
    Pictures,
    /// The batch that initialises ActNorm (and any data-dependent
    /// initialisation), dequantised on its own (offset 5).
    Initialize,
    /// The test points of a toy density or the test dequantisation noise
    /// (offset 10 000): `flowzoo eval` uses it to repeat the run's figure.
    Test,
    /// IAF to an energy: the samples of the KL estimate (offset 2).
    IafKlEstimate,
    /// IAF to an energy: the samples drawn for the pictures (offset 3).
    IafPictures,
    /// Distillation: the student IAF's initial parameters (offset 5).
    StudentInit,
    /// Distillation: the training loop (offset 6).
    Distill,
    /// Distillation: the samples of the KL estimate (offset 7).
    DistillKlEstimate,
    /// Distillation: the samples drawn for the pictures (offset 8).
    DistillPictures,
}

impl Stream {
    /// The offset added to the run's seed.
    pub const fn offset(self) -> u64 {
        match self {
            Stream::Init => 0,
            Stream::Split => 0,
            Stream::Fit => 1,
            Stream::Batches => 2,
            Stream::Validation => 3,
            Stream::Pictures => 4,
            Stream::Initialize => 5,
            Stream::Test => 10_000,
            Stream::IafKlEstimate => 2,
            Stream::IafPictures => 3,
            Stream::StudentInit => 5,
            Stream::Distill => 6,
            Stream::DistillKlEstimate => 7,
            Stream::DistillPictures => 8,
        }
    }

    /// The stream's seed for a run seeded `seed`: `seed + offset`, wrapping.
    pub const fn seed(self, seed: u64) -> u64 {
        seed.wrapping_add(self.offset())
    }

    /// A fresh RNG on the stream.
    pub fn rng(self, seed: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_stream_is_the_one_eval_has_always_used() {
        // Checkpoints of earlier versions stored `test_seed` = 10 000 + seed.
        assert_eq!(Stream::Test.seed(0), 10_000);
        assert_eq!(Stream::Test.seed(7), 10_007);
        assert_eq!(Stream::Init.seed(u64::MAX), u64::MAX);
        assert_eq!(Stream::Fit.seed(u64::MAX), 0);
    }
}
