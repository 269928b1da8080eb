//! A segment's fault, as the trainables report it and the settle path records it.

pub use poptune_store::FaultKind;

/// Why a segment failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What kind of fault.
    pub kind: FaultKind,
    /// What happened.
    pub message: String,
    /// The step that failed, when known (else the member's step before the segment is
    /// recorded).
    pub step: Option<u64>,
}

impl Fault {
    /// A fault of `kind`.
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        Fault {
            kind,
            message: message.into(),
            step: None,
        }
    }

    /// The same fault, at step `step`.
    pub fn at(mut self, step: u64) -> Self {
        self.step = Some(step);
        self
    }
}

/// A fault, and what the trainable said on stderr during its segment.
pub type Failure = (Fault, String);
