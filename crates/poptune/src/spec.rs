//! The experiment specification: everything a run needs to know, as an experiment file or the
//! Rust API states it, validated. Pure data: reading files and starting processes belong to
//! the layers above.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::experiment::{Experiment, Initial};
use crate::policy::Policy;
use crate::population::Mode;
use crate::space::Space;

/// When the experiment stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRules {
    /// Steps each member trains.
    pub steps: u64,
    /// Stop when a member's score reaches this (in the experiment's mode).
    pub target: Option<f64>,
    /// Stop starting new segments after this many seconds of running time.
    pub max_seconds: Option<f64>,
    /// Stop when the best score has not improved by `min_delta` for `patience` steps.
    pub plateau: Option<(u64, f64)>,
}

impl StopRules {
    /// Each member trains `steps` steps; no other rule.
    pub fn steps(steps: u64) -> Self {
        StopRules {
            steps,
            target: None,
            max_seconds: None,
            plateau: None,
        }
    }

    /// The improvement that counts for the plateau rule (0 without the rule).
    pub fn min_delta(&self) -> f64 {
        self.plateau.map_or(0.0, |(_, d)| d)
    }
}

/// The trainable: an external command, and how its faults are handled (the fault settings
/// apply to in-process trainables too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainableDef {
    /// Program and arguments (empty for an in-process trainable).
    pub command: Vec<String>,
    /// Working directory (absolute).
    pub cwd: PathBuf,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Seconds to wait for each step before the segment counts as hung.
    pub step_timeout: f64,
    /// Faults a member may have in a row before it is replaced.
    pub max_failures: u32,
    /// GPUs each slot's process gets (a fraction shares one: 0.5 puts two slots on each);
    /// 0, the default, assigns none. Not written when 0, so that a definition stored before
    /// the field existed compares equal.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus_per_slot: f64,
    /// The device ids GPUs are assigned from; `None`: the machine's own (its
    /// `CUDA_VISIBLE_DEVICES`, else what `nvidia-smi -L` lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for TrainableDef {
    fn default() -> Self {
        TrainableDef {
            command: Vec::new(),
            cwd: PathBuf::from("."),
            env: BTreeMap::new(),
            step_timeout: 600.0,
            max_failures: 3,
            gpus_per_slot: 0.0,
            devices: None,
        }
    }
}

/// How the members' first hyperparameters are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialKind {
    /// Drawn from the search space's prior (seeded).
    #[default]
    Prior,
    /// A grid over the space; members past the grid's size draw from the prior.
    Grid,
}

/// A validated experiment definition: what is stored with an experiment, and compared (by
/// structure) when a run continues it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentDef {
    /// The experiment's name.
    pub name: String,
    /// The name of the score the trainable reports.
    pub metric: String,
    /// Maximise or minimise the score.
    pub mode: Mode,
    /// Members.
    pub population: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Members trained at once.
    pub slots: usize,
    /// How the first hyperparameters are chosen.
    #[serde(default)]
    pub initial: InitialKind,
    /// The experiment directory (absolute).
    pub directory: PathBuf,
    /// The policy.
    pub policy: Policy,
    /// The search space.
    pub space: Space,
    /// When the experiment stops.
    pub stop: StopRules,
    /// The trainable and its fault handling.
    pub trainable: TrainableDef,
}

impl ExperimentDef {
    /// The core experiment (for the policy and initial hyperparameters).
    pub fn experiment(&self) -> Experiment {
        Experiment::new(self.space.clone())
            .policy(self.policy.clone())
            .mode(self.mode)
            .population(self.population)
            .steps(self.stop.steps)
            .seed(self.seed)
            .workers(self.slots)
            .initial(match self.initial {
                InitialKind::Prior => Initial::Prior,
                InitialKind::Grid => Initial::Grid,
            })
            .max_failures(self.trainable.max_failures)
            .with_stop_rules(&self.stop)
    }

    /// Whether `other` is the same experiment: compared by structure, so that a definition
    /// stored by an older release (without fields added since, which take their defaults)
    /// still matches.
    pub fn same_as(&self, other: &ExperimentDef) -> bool {
        // The policy may hold a function (a custom explore), which has no equality: compare
        // the serialised structures, field by field.
        match (serde_json::to_value(self), serde_json::to_value(other)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Where `other` differs from this definition: the keys (`policy.interval`,
    /// `trainable.env`, ...) whose values differ, for a message that says what changed.
    pub fn differences(&self, other: &ExperimentDef) -> Vec<String> {
        let (Ok(a), Ok(b)) = (serde_json::to_value(self), serde_json::to_value(other)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        diff_keys("", &a, &b, 2, &mut out);
        out
    }

    /// Whether `other` is the same experiment but for its stop rules (a run may change those
    /// to train a stored experiment for longer).
    pub fn same_but_stop(&self, other: &ExperimentDef) -> bool {
        match (serde_json::to_value(self), serde_json::to_value(other)) {
            (Ok(mut a), Ok(mut b)) => {
                if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object_mut()) {
                    a.remove("stop");
                    b.remove("stop");
                }
                a == b
            }
            _ => false,
        }
    }

    /// Reads a stored definition (JSON); fields added since it was written take their
    /// defaults.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The definition as stored (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// The keys under `prefix` whose values differ between `a` and `b`, looking `depth` levels
/// into objects.
fn diff_keys(
    prefix: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    depth: usize,
    out: &mut Vec<String>,
) {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) if depth > 0 => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                if va != vb {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    diff_keys(&path, va, vb, depth - 1, out);
                }
            }
        }
        _ if a != b => out.push(if prefix.is_empty() {
            "the definition".to_string()
        } else {
            prefix.to_string()
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Param, Space};

    #[test]
    fn differences_name_the_keys_that_changed() {
        let a = Experiment::new(Space::new().with("lr", Param::float(0.1, 1.0)))
            .population(4)
            .definition("e", std::path::Path::new("/x"));
        let mut b = a.clone();
        assert!(a.differences(&b).is_empty());
        b.population = 5;
        b.trainable.env.insert("A".into(), "1".into());
        b.policy.interval = 7;
        assert_eq!(
            a.differences(&b),
            ["policy.interval", "population", "trainable.env"]
        );
        assert!(!a.same_but_stop(&b));
    }
}
