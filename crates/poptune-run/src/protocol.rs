//! Trainables in any language: an external process spoken to in JSON lines over
//! stdin/stdout (`docs/protocol.md`). A process stays alive across segments and members.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use poptune::Hyperparams;
use serde::Serialize;
use serde_json::Value as Json;

use poptune::TrainableDef;

use crate::fault::{Fault, FaultKind};

/// The protocol version poptune speaks.
pub const PROTOCOL: u32 = 1;

/// One step reported by the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The member's step after it.
    pub step: u64,
    /// The score.
    pub score: f64,
    /// Other metrics.
    pub metrics: Vec<(String, f64)>,
}

#[derive(Serialize)]
struct TrainRequest<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    protocol: u32,
    member: usize,
    start_step: u64,
    steps: u64,
    hyperparameters: &'a Hyperparams,
    restore: Option<&'a Path>,
    restore_id: Option<&'a str>,
    checkpoint: &'a Path,
    checkpoint_id: &'a str,
}

/// A running trainable process.
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: LineReader,
    log: PathBuf,
    /// The log's length when the current segment began (the process's start, for its first).
    segment_log_start: u64,
    /// Segments it has trained.
    pub segments: u64,
}

impl Process {
    /// Starts the trainable for slot `slot`, its stderr appended to `log`; it gets
    /// `POPTUNE_SLOT` and the slot's devices ([`crate::devices::slot_env`]).
    pub fn spawn(def: &TrainableDef, slot: usize, log: &Path) -> Result<Process, Fault> {
        let err_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| {
                Fault::new(
                    FaultKind::Spawn,
                    format!("cannot open {}: {e}", log.display()),
                )
            })?;
        let log_start = err_file.metadata().map_or(0, |m| m.len());
        let Some((program, args)) = def.command.split_first() else {
            return Err(Fault::new(
                FaultKind::Spawn,
                "the experiment has no trainable command: it was run in process (by the Rust \
                 library), and continues the same way",
            ));
        };
        // The slot's devices on this machine (docs/experiment-file.md, `gpus_per_slot`).
        let devices =
            crate::devices::slot_env(def, slot).map_err(|why| Fault::new(FaultKind::Spawn, why))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&def.cwd)
            .envs(&def.env)
            .envs(devices)
            .env("POPTUNE_SLOT", slot.to_string())
            .env("POPTUNE_PROTOCOL", PROTOCOL.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err_file));
        // Its own process group: a Ctrl-C on the terminal reaches poptune only, which stops
        // the trainables itself (no KeyboardInterrupt traceback from each one).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            Fault::new(
                FaultKind::Spawn,
                format!(
                    "cannot start {:?} in {}: {e}",
                    def.command,
                    def.cwd.display()
                ),
            )
        })?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Fault::new(FaultKind::Spawn, "the process has no stdout"))?;
        Ok(Process {
            child,
            stdin,
            lines: LineReader {
                out: stdout,
                buf: Vec::with_capacity(1 << 16),
                start: 0,
                scanned: 0,
            },
            log: log.to_path_buf(),
            segment_log_start: log_start,
            segments: 0,
        })
    }

    /// Whether the process is still running (one that exited after answering a segment in
    /// full is simply replaced).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of what the process wrote to stderr during its current (or last) segment; for
    /// its first segment, since it started. Earlier output in the shared log (other segments,
    /// an earlier run's) is not part of it.
    pub fn stderr_tail(&self) -> String {
        tail_from(&self.log, self.segment_log_start, 4000)
    }

    /// Trains one segment: `steps` steps from `start_step`, restoring `restore` first (or
    /// starting fresh), then writing a checkpoint into `checkpoint`. Each reported step is
    /// passed to `on_step` as it arrives.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        &mut self,
        member: usize,
        start_step: u64,
        steps: u64,
        h: &Hyperparams,
        restore: Option<(&Path, &str)>,
        checkpoint: (&Path, &str),
        timeout: Duration,
        cancel: Option<&crate::pool::Cancel<'_>>,
        mut on_step: impl FnMut(&Step),
    ) -> Result<Vec<Step>, Fault> {
        if self.segments > 0 {
            self.segment_log_start = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        }
        let req = TrainRequest {
            kind: "train",
            protocol: PROTOCOL,
            member,
            start_step,
            steps,
            hyperparameters: h,
            restore: restore.map(|r| r.0),
            restore_id: restore.map(|r| r.1),
            checkpoint: checkpoint.0,
            checkpoint_id: checkpoint.1,
        };
        let mut line = serde_json::to_vec(&req).map_err(|e| {
            Fault::new(
                FaultKind::Protocol,
                format!("cannot encode the request: {e}"),
            )
        })?;
        line.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Fault::new(FaultKind::Crash, "the process's stdin is closed"))?;
        // One write for the whole line: the process wakes up once, to a complete request.
        if let Err(e) = stdin.write_all(&line).and_then(|_| stdin.flush()) {
            return Err(self.dead(format!("cannot write to the process: {e}"), 0));
        }
        let mut out = Vec::with_capacity(steps as usize);
        let answer = self.read_answer(start_step, steps, timeout, cancel, &mut out, &mut on_step);
        answer.map(|()| out)
    }

    /// Reads the answer to a `train` request into `out`: every step, then `saved`. A fault
    /// names the step that failed: the one after those answered.
    fn read_answer(
        &mut self,
        start_step: u64,
        steps: u64,
        timeout: Duration,
        cancel: Option<&crate::pool::Cancel<'_>>,
        out: &mut Vec<Step>,
        on_step: &mut impl FnMut(&Step),
    ) -> Result<(), Fault> {
        loop {
            let at = start_step + out.len() as u64 + 1;
            let (msg, raw) = self
                .next_message(timeout, cancel, out.len(), steps)
                .map_err(|f| f.at(at))?;
            match msg.get("type").and_then(Json::as_str) {
                Some("step") => {
                    let s = parse_step(&msg, at).map_err(|f| f.at(at))?;
                    if out.len() as u64 >= steps {
                        return Err(Fault::new(
                            FaultKind::Protocol,
                            format!("reported more than the {steps} steps asked for"),
                        ));
                    }
                    on_step(&s);
                    out.push(s);
                }
                Some("saved") => {
                    if (out.len() as u64) < steps {
                        return Err(Fault::new(
                            FaultKind::Protocol,
                            format!(
                                "said \"saved\" after {} of the {steps} steps asked for",
                                out.len()
                            ),
                        )
                        .at(at));
                    }
                    self.segments += 1;
                    return Ok(());
                }
                Some("error") => {
                    let m = msg
                        .get("message")
                        .and_then(Json::as_str)
                        .unwrap_or("(no message)");
                    return Err(Fault::new(
                        FaultKind::Error,
                        format!("the trainable reported: {m}"),
                    )
                    .at(at));
                }
                _ => {
                    return Err(Fault::new(
                            FaultKind::Protocol,
                            format!(
                                "unexpected message {:?}; expected {{\"type\": \"step\", ...}} or {{\"type\": \"saved\"}}",
                                shorten(&raw)
                            ),
                        )
                        .at(at));
                }
            }
        }
    }

    /// The next non-empty line of the process's stdout, as JSON; `done` steps of `steps` are
    /// answered so far (for messages).
    fn next_message(
        &mut self,
        timeout: Duration,
        cancel: Option<&crate::pool::Cancel<'_>>,
        done: usize,
        steps: u64,
    ) -> Result<(Json, String), Fault> {
        loop {
            let line = match self.lines.read_line(timeout, cancel) {
                ReadLine::Line(l) => l,
                ReadLine::Cancelled => {
                    return Err(Fault::new(
                        FaultKind::Cancelled,
                        format!("stopped after {done} of {steps} steps"),
                    ))
                }
                ReadLine::Failed(e) => {
                    return Err(self.dead(format!("reading its output failed: {e}"), done))
                }
                ReadLine::Timeout => {
                    return Err(Fault::new(
                        FaultKind::Timeout,
                        format!(
                            "no answer within {:.1} s (step_timeout) after {done} of {steps} steps",
                            timeout.as_secs_f64(),
                        ),
                    ))
                }
                ReadLine::TooLong => {
                    return Err(Fault::new(
                        FaultKind::Protocol,
                        format!(
                            "wrote a stdout line longer than {} MiB after {done} of {steps} steps \
                             (print logs to stderr, not stdout)",
                            MAX_LINE >> 20
                        ),
                    ))
                }
                ReadLine::Eof => {
                    return Err(self.dead(
                        format!("the process ended after {done} of {steps} steps"),
                        done,
                    ));
                }
            };
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let msg = serde_json::from_str(trimmed).map_err(|e| not_json(trimmed, &e))?;
            return Ok((msg, trimmed.to_string()));
        }
    }

    /// The fault for a process that went away after answering `done` steps of this segment.
    /// One that had answered earlier segments in full and left with exit code 0 before this
    /// one began simply exited between segments: kind `exited`, which is not a fault.
    fn dead(&mut self, what: String, done: usize) -> Fault {
        let exit = self.child.wait_timeout_ms(200);
        let status = match exit {
            Some(s) => format!(" ({s})"), // "exit status: 3", "signal: 9 (SIGKILL)"
            None => String::new(),
        };
        // A process may end after a segment (cleanly, before its next request): then a new
        // one takes over. One that fails or dies of a signal crashed, even before its first
        // line for this segment.
        let kind = if done == 0 && self.segments > 0 && exit.is_some_and(|s| s.success()) {
            FaultKind::Exited
        } else {
            FaultKind::Crash
        };
        Fault::new(kind, format!("{what}{status}"))
    }

    /// Asks the process to exit, and kills it if it does not within a second.
    pub fn shutdown(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{{\"type\": \"exit\"}}");
            let _ = stdin.flush();
        }
        if self.child.wait_timeout_ms(1000).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Kills the process at once.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

enum ReadLine {
    Line(String),
    Eof,
    Timeout,
    Failed(std::io::Error),
    /// `cancel` said stop.
    Cancelled,
    /// A line longer than [`MAX_LINE`] bytes.
    TooLong,
}

/// The longest stdout line a trainable may write (a protocol message is a few hundred bytes; a
/// process that writes megabytes without a newline is not speaking the protocol).
pub const MAX_LINE: usize = 16 << 20;

/// Lines from the process's stdout, read in the calling thread with a timeout (poll), so a
/// line costs no hand-over between threads.
struct LineReader {
    out: ChildStdout,
    buf: Vec<u8>,
    start: usize,
    /// Bytes after `start` known to hold no newline.
    scanned: usize,
}

impl LineReader {
    /// The next line, waiting at most `timeout`; with `cancel`, it is asked every 50 ms.
    fn read_line(
        &mut self,
        timeout: Duration,
        cancel: Option<&crate::pool::Cancel<'_>>,
    ) -> ReadLine {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 1 << 15];
        loop {
            let from = self.start + self.scanned;
            if let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
                let end = from + i;
                let line = String::from_utf8_lossy(&self.buf[self.start..end]).into_owned();
                self.start = end + 1;
                self.scanned = 0;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return ReadLine::Line(line);
            }
            self.scanned = self.buf.len() - self.start;
            if self.scanned > MAX_LINE {
                return ReadLine::TooLong;
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if cancel.is_some_and(|c| c()) {
                return ReadLine::Cancelled;
            }
            let mut left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ReadLine::Timeout;
            }
            if cancel.is_some() {
                left = left.min(Duration::from_millis(50));
            }
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for an open descriptor owned by `self.out`.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return ReadLine::Failed(e);
            }
            if rc == 0 {
                continue;
            }
            match self.out.read(&mut chunk) {
                Ok(0) => return ReadLine::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return ReadLine::Failed(e),
            }
        }
    }
}

trait WaitTimeout {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        // A process that was asked to exit usually does within a few milliseconds: look
        // often at first, then every 5 ms.
        let mut pause = Duration::from_micros(250);
        loop {
            match self.try_wait() {
                Ok(Some(s)) => return Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                _ => return None,
            }
        }
    }
}

/// The fault for a stdout line that does not parse. A number JSON cannot hold (Python's
/// `json.dumps` writes `NaN` and `Infinity`; `1e999` overflows a double) is a non-finite
/// score or metric, not a protocol error.
fn not_json(line: &str, e: &serde_json::Error) -> Fault {
    let overflow = e.to_string().contains("number out of range");
    let token = ["NaN", "Infinity"].into_iter().find(|t| line.contains(t));
    if overflow || token.is_some() {
        return Fault::new(
            FaultKind::NonFinite,
            format!(
                "stdout line {:?} holds {} — scores and metrics must be finite numbers (the \
                 helper writes a NaN metric as null)",
                shorten(line),
                token.map_or("a number beyond a double's range", |t| t)
            ),
        );
    }
    Fault::new(
        FaultKind::Protocol,
        format!(
            "stdout line is not JSON: {:?} (print logs to stderr, not stdout)",
            shorten(line)
        ),
    )
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s.to_string()
    }
}

fn parse_step(msg: &Json, expected: u64) -> Result<Step, Fault> {
    let step = msg.get("step").and_then(Json::as_u64).ok_or_else(|| {
        Fault::new(
            FaultKind::Protocol,
            format!("a step message needs \"step\": {expected} (an integer)"),
        )
    })?;
    if step != expected {
        return Err(Fault::new(
            FaultKind::Protocol,
            format!("reported step {step}; expected step {expected}"),
        ));
    }
    let score = match msg.get("score") {
        Some(Json::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Json::Null) | Some(Json::String(_)) => f64::NAN,
        _ => {
            return Err(Fault::new(
                FaultKind::Protocol,
                format!("step {step}: a step message needs \"score\": a number"),
            ))
        }
    };
    if !score.is_finite() {
        return Err(Fault::new(
            FaultKind::NonFinite,
            format!(
                "step {step}: score is {} — the score must be a finite number",
                msg.get("score").map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let mut metrics = Vec::new();
    if let Some(m) = msg.get("metrics") {
        let obj = m.as_object().ok_or_else(|| {
            Fault::new(
                FaultKind::Protocol,
                format!("step {step}: \"metrics\" must be an object of numbers"),
            )
        })?;
        for (k, v) in obj {
            match v.as_f64() {
                Some(x) => metrics.push((k.clone(), x)),
                None if v.is_null() => metrics.push((k.clone(), f64::NAN)),
                None => {
                    return Err(Fault::new(
                        FaultKind::Protocol,
                        format!("step {step}: metric {k:?} is {v}, not a number"),
                    ))
                }
            }
        }
    }
    Ok(Step {
        step,
        score,
        metrics,
    })
}

/// The last `n` bytes of a file, as text.
pub fn tail(path: &Path, n: u64) -> String {
    tail_from(path, 0, n)
}

/// The last `n` bytes of a file after its first `from`, as text.
pub fn tail_from(path: &Path, from: u64, n: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n).max(from.min(len))));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
