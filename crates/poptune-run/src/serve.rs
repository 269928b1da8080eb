//! The other side of `docs/protocol.md`, for Rust trainables: [`serve`] answers poptune's
//! `train` requests on stdin/stdout, so that an in-process trainable can also run as an
//! external process (`poptune run`, `poptune resume` and `poptune replay` start it that way).

use std::io::{BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use poptune::Hyperparams;
use serde::Deserialize;
use serde_json::json;

use crate::inprocess::{panic_message, Persist};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Request {
    Train {
        member: usize,
        start_step: u64,
        steps: u64,
        hyperparameters: Hyperparams,
        restore: Option<PathBuf>,
        restore_id: Option<String>,
        checkpoint: PathBuf,
        checkpoint_id: String,
    },
    Exit,
}

/// Serves the protocol on `input` and `output` until an `exit` request or the end of input;
/// `factory(member)` makes a member's fresh trainable. Failures of the trainable are answered
/// with `error` messages; only a broken pipe ends the loop with an error.
pub fn serve<T, F>(factory: F, input: impl BufRead, mut output: impl Write) -> std::io::Result<()>
where
    T: Persist,
    F: Fn(usize) -> T,
{
    // The trainable in memory, and the checkpoint id its state equals.
    let mut current: Option<(T, String)> = None;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("cannot read the request: {e}");
                writeln!(output, "{}", json!({"type": "error", "message": msg}))?;
                output.flush()?;
                continue;
            }
        };
        let Request::Train {
            member,
            start_step,
            steps,
            hyperparameters: h,
            restore,
            restore_id,
            checkpoint,
            checkpoint_id,
        } = req
        else {
            break;
        };
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let mut t = match (&restore, current.take()) {
                (None, _) => factory(member),
                (Some(_), Some((t, id))) if restore_id.as_deref() == Some(id.as_str()) => t,
                (Some(dir), held) => {
                    let mut t = match held {
                        Some((t, _)) => t,
                        None => factory(member),
                    };
                    let state = t
                        .load_state(dir)
                        .map_err(|e| format!("cannot load {}: {e}", dir.display()))?;
                    t.restore(&state);
                    t
                }
            };
            for i in 0..steps {
                let m = t.step(&h).map_err(|e| e.to_string())?;
                let score = if m.score.is_finite() {
                    json!(m.score)
                } else {
                    json!(null)
                };
                let metrics: serde_json::Map<String, serde_json::Value> = m
                    .values
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                let msg = json!({"type": "step", "step": start_step + i + 1, "score": score,
                                 "metrics": metrics});
                writeln!(output, "{msg}").map_err(|e| e.to_string())?;
                output.flush().map_err(|e| e.to_string())?;
            }
            T::save_state(&t.save(), &checkpoint)
                .map_err(|e| format!("cannot write {}: {e}", checkpoint.display()))?;
            current = Some((t, checkpoint_id));
            Ok(())
        }));
        let answer = match result {
            Ok(Ok(())) => json!({"type": "saved"}),
            Ok(Err(msg)) => json!({"type": "error", "message": msg}),
            Err(p) => {
                json!({"type": "error", "message": format!("panicked: {}", panic_message(&*p))})
            }
        };
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}

/// [`serve`] on the process's stdin and stdout.
pub fn serve_stdio<T, F>(factory: F) -> std::io::Result<()>
where
    T: Persist,
    F: Fn(usize) -> T,
{
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(factory, stdin.lock(), stdout.lock())
}

#[cfg(test)]
mod tests {
    use super::*;
    use poptune::{Metrics, Trainable, TrainableError};
    use std::path::Path;

    #[derive(Clone)]
    struct X(f64);
    impl Persist for T1 {
        fn save_state(state: &X, dir: &Path) -> std::io::Result<()> {
            std::fs::write(dir.join("x"), state.0.to_string())
        }
        fn load_state(&self, dir: &Path) -> std::io::Result<X> {
            let s = std::fs::read_to_string(dir.join("x"))?;
            s.parse()
                .map(X)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }
    }
    struct T1(f64);
    impl Trainable for T1 {
        type State = X;
        fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
            self.0 += h.f64("lr").ok_or_else(|| TrainableError::new("no lr"))?;
            Ok(Metrics::new(self.0).with("twice", 2.0 * self.0))
        }
        fn save(&self) -> X {
            X(self.0)
        }
        fn restore(&mut self, s: &X) {
            self.0 = s.0;
        }
    }

    #[test]
    fn answers_train_requests() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(tmp.path().join("x"), "10").unwrap();
        let input = format!(
            "{}\nnot json\n{}\n{}\n{{\"type\":\"exit\"}}\n",
            json!({"type":"train","protocol":1,"member":2,"start_step":0,"steps":2,
                   "hyperparameters":{"lr":1.0},"restore":null,"restore_id":null,
                   "checkpoint":a,"checkpoint_id":"a"}),
            json!({"type":"train","protocol":1,"member":2,"start_step":0,"steps":1,
                   "hyperparameters":{"lr":0.5},"restore":tmp.path(),"restore_id":"other",
                   "checkpoint":b,"checkpoint_id":"b"}),
            json!({"type":"train","protocol":1,"member":2,"start_step":0,"steps":1,
                   "hyperparameters":{},"restore":null,"restore_id":null,
                   "checkpoint":b,"checkpoint_id":"b"}),
        );
        let mut out = Vec::new();
        serve(|_| T1(0.0), input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["step"], 1);
        assert_eq!(lines[1]["score"], 2.0);
        assert_eq!(lines[1]["metrics"]["twice"], 4.0);
        assert_eq!(lines[2]["type"], "saved");
        assert_eq!(std::fs::read_to_string(a.join("x")).unwrap(), "2");
        assert_eq!(lines[3]["type"], "error");
        assert_eq!(lines[4]["score"], 10.5);
        assert_eq!(lines[5]["type"], "saved");
        assert_eq!(lines[6]["type"], "error");
        assert!(lines[6]["message"].as_str().unwrap().contains("no lr"));
        assert_eq!(lines.len(), 7);
    }
}
