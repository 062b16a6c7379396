//! An opt-in breakdown of a tape's time by op kind, for finding where a
//! training step goes (docs/benchmarks/engine.md, "Where the MLP step's time
//! goes"). Off by default; while off, each recorded op and each backward node
//! pays one relaxed atomic load.
//!
//! Forward: an op's value is computed before its node is pushed, so the time
//! from the previous push (or from [`start`]) to this push is filed under
//! this op's kind. That time includes whatever ran in between: the kernels
//! of unrecorded ops on constants, and the layer code around the op.
//! Backward: each node's vector-Jacobian product is timed on its own,
//! including the accumulation into its parents' gradients.
//!
//! The table is global: profile one step on one thread at a time.
//!
//! # Examples
//! ```
//! use flowzoo::autodiff::{profile, Tape};
//! use flowzoo::tensor::Tensor;
//! profile::start();
//! let tape = Tape::new();
//! let x = tape.leaf(Tensor::<f32>::ones(&[4]));
//! let y = x.tanh().sum_all();
//! tape.backward(&y);
//! let table = profile::stop();
//! assert!(table.iter().any(|e| e.op == "Tanh" && e.phase == profile::Phase::Backward));
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// Which pass a time belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Computing the op's value (and what ran since the previous push).
    Forward,
    /// The op's vector-Jacobian product and the accumulation of its result.
    Backward,
}

/// One row of the breakdown: an op kind in one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Forward or backward.
    pub phase: Phase,
    /// The op kind ([`Op::kind`](super::op::Op::kind)).
    pub op: &'static str,
    /// How many nodes of this kind were timed.
    pub calls: u64,
    /// Their total time, in seconds.
    pub seconds: f64,
}

/// Clears the table and starts timing (the forward clock starts now).
pub fn start() {
    TABLE.lock().expect("profile table").clear();
    mark();
    ON.store(true, Ordering::SeqCst);
}

/// Restarts the forward clock: what ran since the last push is not filed
/// under the next op (call it before a step's forward pass).
pub fn mark() {
    *LAST.lock().expect("profile clock") = Some(Instant::now());
}

/// Stops timing and returns the table, the largest times first.
pub fn stop() -> Vec<Entry> {
    ON.store(false, Ordering::SeqCst);
    let mut table = std::mem::take(&mut *TABLE.lock().expect("profile table"));
    table.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    table
}

/// True while [`start`] is in effect.
#[inline]
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

fn add(phase: Phase, op: &'static str, seconds: f64) {
    let mut table = TABLE.lock().expect("profile table");
    match table.iter_mut().find(|e| e.phase == phase && e.op == op) {
        Some(e) => {
            e.calls += 1;
            e.seconds += seconds;
        }
        None => table.push(Entry {
            phase,
            op,
            calls: 1,
            seconds,
        }),
    }
}

/// Files the time since the previous push under `op` (forward).
pub(crate) fn pushed(op: &'static str) {
    let now = Instant::now();
    let since = LAST
        .lock()
        .expect("profile clock")
        .replace(now)
        .unwrap_or(now);
    add(Phase::Forward, op, (now - since).as_secs_f64());
}

/// Files the time since `started` under `op` (backward).
pub(crate) fn backward_done(op: &'static str, started: Instant) {
    add(Phase::Backward, op, started.elapsed().as_secs_f64());
}
