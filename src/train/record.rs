//! [`RunRecord`]: the typed facts of the run that wrote a checkpoint (what
//! it was trained on, which zoo architecture at which sizes, the batch, the
//! seed, the steps taken), stored once in the file's `META` section beside
//! the architecture (the layer specs) and the optimiser state. `--resume`,
//! `flowzoo eval` and `flowzoo sample` read it through
//! [`load_run`](super::run::load_run).

use crate::error::CheckpointError;
use crate::flows::spec::{LayerSpec, SpecValue};
use crate::flows::zoo::FlowName;
use std::path::PathBuf;

/// How a run was set up, as far as reading its checkpoint needs: the
/// architecture itself is the checkpoint's layer specs, not this.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// The `--data` argument: a toy name, `digits`, or the user's file.
    /// Empty for an IAF fitted to an energy (see `target`).
    pub data: String,
    /// The zoo architecture.
    pub flow: FlowName,
    /// Its `layers` size.
    pub layers: usize,
    /// Its `hidden` size.
    pub hidden: usize,
    /// The batch size.
    pub batch: usize,
    /// The run's seed (every stream of [`Stream`](super::seeds::Stream) derives from it).
    pub seed: u64,
    /// Optimisation steps taken when the checkpoint was written.
    pub step: u64,
    /// The energy an IAF was fitted to (`ring`, ...), if any.
    pub target: Option<String>,
    /// The column names of a user's table, in the model's order.
    pub columns: Option<Vec<String>>,
    /// The context of a conditional run: `label` (the digits' one-hot
    /// label), or the names of a table's context columns, in order
    /// ([`Condition::to_record`](super::condition::Condition::to_record)).
    /// `None` for an unconditional run, whose record is as before.
    pub context: Option<String>,
}

/// Fields earlier versions wrote and this one derives instead (from `data`
/// and `seed`): read and ignored.
const DERIVED: &[&str] = &["test_seed", "image_shape", "dequantize_levels"];

impl RunRecord {
    /// The fields of the `META` section (docs/checkpoint-format.md).
    pub fn to_fields(&self) -> Vec<(String, SpecValue)> {
        let mut fields: Vec<(String, SpecValue)> = vec![
            ("data".into(), self.data.clone().into()),
            ("flow".into(), self.flow.name().into()),
            ("layers".into(), self.layers.into()),
            ("hidden".into(), self.hidden.into()),
            ("batch".into(), self.batch.into()),
            ("seed".into(), SpecValue::Int(self.seed as i64)),
            ("step".into(), SpecValue::Int(self.step as i64)),
        ];
        if let Some(target) = &self.target {
            fields.push(("target".into(), target.clone().into()));
        }
        if let Some(columns) = &self.columns {
            fields.push(("columns".into(), columns.join(",").into()));
        }
        if let Some(context) = &self.context {
            fields.push(("context".into(), context.clone().into()));
        }
        fields
    }

    /// Reads the fields [`RunRecord::to_fields`] wrote (or an earlier
    /// version's: a missing `data`, `batch` or `step`, as IAF checkpoints of
    /// version 1 lack, reads as empty or 0).
    ///
    /// # Errors
    /// [`CheckpointError::BadRecord`] naming the field: an unknown field, a
    /// missing or mistyped one, an unknown flow name.
    pub fn from_fields(fields: &[(String, SpecValue)]) -> Result<Self, CheckpointError> {
        let known = [
            "data", "flow", "layers", "hidden", "batch", "seed", "step", "target", "columns",
            "context",
        ];
        if let Some((name, _)) = fields
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()) && !DERIVED.contains(&n.as_str()))
        {
            return Err(bad(name, "is not a field of a run record"));
        }
        let spec = LayerSpec {
            kind: "RunRecord".into(),
            fields: fields.to_vec(),
            children: Vec::new(),
        };
        let read = |e: crate::flows::FlowError| match e {
            crate::flows::FlowError::BadSpec { field, what, .. } => bad(&field, what),
            other => bad("?", other.to_string()),
        };
        let optional_usize = |name: &str| match spec.get(name) {
            None => Ok(0),
            Some(_) => spec.usize(name).map_err(read),
        };
        let flow_name = spec.str("flow").map_err(read)?;
        let flow: FlowName = flow_name
            .parse()
            .map_err(|e: crate::flows::zoo::ZooError| bad("flow", e.to_string()))?;
        Ok(RunRecord {
            data: match spec.get("data") {
                None => String::new(),
                Some(_) => spec.str("data").map_err(read)?.to_string(),
            },
            flow,
            layers: spec.usize("layers").map_err(read)?,
            hidden: spec.usize("hidden").map_err(read)?,
            batch: optional_usize("batch")?,
            seed: spec.usize("seed").map_err(read)? as u64,
            step: optional_usize("step")? as u64,
            target: match spec.get("target") {
                None => None,
                Some(_) => Some(spec.str("target").map_err(read)?.to_string()),
            },
            columns: match spec.get("columns") {
                None => None,
                Some(_) => Some(
                    spec.str("columns")
                        .map_err(read)?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                ),
            },
            context: match spec.get("context") {
                None => None,
                Some(_) => Some(spec.str("context").map_err(read)?.to_string()),
            },
        })
    }
}

fn bad(field: &str, what: impl Into<String>) -> CheckpointError {
    CheckpointError::BadRecord {
        path: PathBuf::new(),
        field: field.to_string(),
        what: what.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            data: "people.csv".into(),
            flow: FlowName::Glow,
            layers: 3,
            hidden: 7,
            batch: 64,
            seed: 9,
            step: 120,
            target: None,
            columns: Some(vec!["a".into(), "b".into()]),
            context: Some("c,d".into()),
        }
    }

    #[test]
    fn a_record_reads_back_what_it_wrote() {
        let r = record();
        assert_eq!(RunRecord::from_fields(&r.to_fields()).unwrap(), r);
    }

    #[test]
    fn unknown_fields_and_flows_are_refused_by_name() {
        let mut fields = record().to_fields();
        fields.push(("colour".into(), "blue".into()));
        let err = RunRecord::from_fields(&fields).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let mut fields = record().to_fields();
        fields[1].1 = "spline".into();
        let err = RunRecord::from_fields(&fields).unwrap_err().to_string();
        assert!(err.contains("`flow`") && err.contains("spline"), "{err}");
    }
}
