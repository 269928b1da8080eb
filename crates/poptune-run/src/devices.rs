//! Devices per slot: which GPUs each slot's trainable process sees.
//!
//! With `gpus_per_slot` = g > 0 in the trainable's definition, slot k's process gets a
//! contiguous share of the devices: for g >= 1 (a whole number), devices `k*g .. (k+1)*g`;
//! for g < 1 (1/g a whole number: 0.5, 0.25, 1/3), device `floor(k*g)`, shared by 1/g slots.
//! The devices are those the definition lists, else this machine's: the parent's
//! `CUDA_VISIBLE_DEVICES` when it is set, else the GPUs `nvidia-smi -L` lists (none without
//! nvidia-smi). Each process gets `CUDA_VISIBLE_DEVICES` and `POPTUNE_DEVICES` set to its
//! devices, comma-separated; with g = 0 (the default) poptune assigns none, leaves
//! `CUDA_VISIBLE_DEVICES` as it is and sets `POPTUNE_DEVICES=cpu`.
//!
//! [`assign`] is the pure assignment; [`plan`] applies it to a definition on this machine;
//! [`slot_env`] is what [`crate::protocol::Process::spawn`] sets.

use std::sync::OnceLock;

use poptune::TrainableDef;

use crate::RunError;

/// The variable every trainable process gets: its devices, comma-separated, or `cpu`.
pub const POPTUNE_DEVICES: &str = "POPTUNE_DEVICES";
/// The variable CUDA (and the frameworks on it) reads.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";
/// What `POPTUNE_DEVICES` says when poptune assigns no GPU.
pub const NO_GPU: &str = "cpu";

/// How close to a whole number `gpus_per_slot` (or its inverse) must be.
const EPS: f64 = 1e-9;

/// Whether `g` is a usable `gpus_per_slot`: 0 (no assignment), a whole number, or a fraction
/// whose inverse is a whole number; otherwise why not, in words that fit after "it".
pub fn check_gpus_per_slot(g: f64) -> Result<(), String> {
    if !g.is_finite() || g < 0.0 {
        return Err("must be 0 (no GPUs assigned) or a positive number".into());
    }
    if g == 0.0 {
        return Ok(());
    }
    if g >= 1.0 {
        if (g - g.round()).abs() > EPS {
            return Err(
                "must be a whole number when it is 1 or more (a slot gets whole GPUs)".into(),
            );
        }
    } else if (1.0 / g - (1.0 / g).round()).abs() > EPS * (1.0 / g) {
        return Err(
            "below 1 must divide one GPU evenly (0.5, 0.25, 1/3: 1/gpus_per_slot slots share a GPU)"
                .into(),
        );
    }
    Ok(())
}

/// How many devices `slots` slots of `g` GPUs each need.
pub fn needed(slots: usize, g: f64) -> usize {
    if g <= 0.0 || slots == 0 {
        return 0;
    }
    if g >= 1.0 {
        slots * g.round() as usize
    } else {
        share(slots - 1, g) + 1
    }
}

/// The device index slot `k` gets when `1/g` slots share one device.
fn share(k: usize, g: f64) -> usize {
    // floor(k*g), robust to g = 1/3 written as 0.333333333333.
    let per = (1.0 / g).round() as usize;
    k / per.max(1)
}

/// The devices of slots `0..slots`, each with `g` GPUs, from `devices`; an error (in words)
/// when `g` is not usable or there are too few devices.
///
/// ```
/// use poptune_run::devices::assign;
/// let d: Vec<String> = ["0", "1"].map(String::from).to_vec();
/// assert_eq!(assign(2, 1.0, &d).unwrap(), [vec!["0"], vec!["1"]]);
/// assert_eq!(assign(4, 0.5, &d).unwrap(), [vec!["0"], vec!["0"], vec!["1"], vec!["1"]]);
/// assert!(assign(4, 1.0, &d).is_err());
/// ```
pub fn assign(slots: usize, g: f64, devices: &[String]) -> Result<Vec<Vec<String>>, String> {
    check_gpus_per_slot(g).map_err(|why| format!("gpus_per_slot = {g}: it {why}"))?;
    if g == 0.0 {
        return Ok(vec![Vec::new(); slots]);
    }
    let need = needed(slots, g);
    if need > devices.len() {
        return Err(format!(
            "{slots} slot{} × {g} GPU need{} {need} GPU{}; {} {} available",
            if slots == 1 { "" } else { "s" },
            if slots == 1 { "s" } else { "" },
            if need == 1 { "" } else { "s" },
            devices.len(),
            if devices.len() == 1 { "is" } else { "are" },
        ));
    }
    Ok((0..slots).map(|k| slot_devices(k, g, devices)).collect())
}

/// Slot `k`'s devices (`g` checked, `devices` long enough).
fn slot_devices(k: usize, g: f64, devices: &[String]) -> Vec<String> {
    if g >= 1.0 {
        let n = g.round() as usize;
        devices.iter().skip(k * n).take(n).cloned().collect()
    } else {
        devices.get(share(k, g)).cloned().into_iter().collect()
    }
}

/// Where the devices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `devices` in the experiment's `[trainable]` table.
    Listed,
    /// The parent's `CUDA_VISIBLE_DEVICES`, as it was set.
    Visible(String),
    /// What `nvidia-smi -L` listed.
    NvidiaSmi,
    /// No `CUDA_VISIBLE_DEVICES`, and no nvidia-smi to ask.
    Nothing,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Listed => f.write_str("[trainable] devices"),
            Origin::Visible(v) => write!(f, "{CUDA_VISIBLE_DEVICES}={v}"),
            Origin::NvidiaSmi => f.write_str("as `nvidia-smi -L` lists them"),
            Origin::Nothing => write!(
                f,
                "{CUDA_VISIBLE_DEVICES} is not set and nvidia-smi was not found"
            ),
        }
    }
}

/// The ids in a `CUDA_VISIBLE_DEVICES` value: comma-separated, blanks dropped.
pub fn parse_visible(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The GPU indices in `nvidia-smi -L` output: lines `GPU 0: NVIDIA H200 (UUID: ...)`.
pub fn parse_nvidia_smi(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("GPU ")?;
            let (id, _) = rest.split_once(':')?;
            (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
        })
        .collect()
}

/// What `nvidia-smi -L` lists on this machine (asked once per process); `None` when it
/// cannot be run.
fn nvidia_smi() -> Option<Vec<String>> {
    static FOUND: OnceLock<Option<Vec<String>>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let out = std::process::Command::new("nvidia-smi")
                .arg("-L")
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
        })
        .clone()
}

/// The devices `def` assigns from on this machine, and where they come from.
pub fn available(def: &TrainableDef) -> (Vec<String>, Origin) {
    if let Some(listed) = &def.devices {
        return (listed.clone(), Origin::Listed);
    }
    if let Ok(v) = std::env::var(CUDA_VISIBLE_DEVICES) {
        return (parse_visible(&v), Origin::Visible(v));
    }
    match nvidia_smi() {
        Some(found) => (found, Origin::NvidiaSmi),
        None => (Vec::new(), Origin::Nothing),
    }
}

/// The devices of `def`'s slots `0..slots` on this machine; a usage error that says what to
/// change when there are too few.
pub fn plan(def: &TrainableDef, slots: usize) -> Result<Vec<Vec<String>>, RunError> {
    plan_text(def, slots).map_err(RunError::usage)
}

/// [`plan`], its error in words.
pub fn plan_text(def: &TrainableDef, slots: usize) -> Result<Vec<Vec<String>>, String> {
    if def.gpus_per_slot == 0.0 {
        return Ok(vec![Vec::new(); slots]);
    }
    let (devices, origin) = available(def);
    assign(slots, def.gpus_per_slot, &devices).map_err(|why| {
        if why.starts_with("gpus_per_slot") {
            why
        } else {
            format!(
                "{why} ({origin}): lower slots or gpus_per_slot, or list devices \
                 (devices = [\"0\", \"1\"] in [trainable])"
            )
        }
    })
}

/// The variables slot `slot`'s process gets: `POPTUNE_DEVICES` always, and
/// `CUDA_VISIBLE_DEVICES` when GPUs are assigned.
pub fn slot_env(def: &TrainableDef, slot: usize) -> Result<Vec<(&'static str, String)>, String> {
    if def.gpus_per_slot == 0.0 {
        return Ok(vec![(POPTUNE_DEVICES, NO_GPU.to_string())]);
    }
    let (devices, origin) = available(def);
    check_gpus_per_slot(def.gpus_per_slot)
        .map_err(|why| format!("gpus_per_slot = {}: it {why}", def.gpus_per_slot))?;
    if needed(slot + 1, def.gpus_per_slot) > devices.len() {
        return Err(format!(
            "slot {slot} has no GPU: {} {} available ({origin})",
            devices.len(),
            if devices.len() == 1 { "is" } else { "are" }
        ));
    }
    let ids = slot_devices(slot, def.gpus_per_slot, &devices).join(",");
    Ok(vec![
        (CUDA_VISIBLE_DEVICES, ids.clone()),
        (POPTUNE_DEVICES, ids),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    fn flat(a: &[Vec<String>]) -> Vec<String> {
        a.iter().map(|d| d.join(",")).collect()
    }

    #[test]
    fn whole_gpus_go_to_slots_in_contiguous_blocks() {
        assert_eq!(
            flat(&assign(4, 1.0, &ids(4)).unwrap()),
            ["0", "1", "2", "3"]
        );
        assert_eq!(flat(&assign(2, 2.0, &ids(4)).unwrap()), ["0,1", "2,3"]);
        // More devices than needed: the first ones.
        assert_eq!(flat(&assign(1, 2.0, &ids(8)).unwrap()), ["0,1"]);
        assert_eq!(assign(0, 1.0, &[]).unwrap(), Vec::<Vec<String>>::new());
    }

    #[test]
    fn fractions_share_a_gpu() {
        let d: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert_eq!(flat(&assign(4, 0.5, &d).unwrap()), ["a", "a", "b", "b"]);
        assert_eq!(flat(&assign(3, 0.5, &d).unwrap()), ["a", "a", "b"]);
        assert_eq!(
            flat(&assign(5, 0.25, &ids(2)).unwrap()),
            ["0", "0", "0", "0", "1"]
        );
        assert_eq!(
            flat(&assign(6, 1.0 / 3.0, &ids(2)).unwrap()),
            ["0", "0", "0", "1", "1", "1"]
        );
        assert_eq!(
            flat(&assign(4, 0.333333333333, &ids(2)).unwrap()),
            ["0", "0", "0", "1"]
        );
        assert_eq!(needed(4, 0.5), 2);
        assert_eq!(needed(3, 0.5), 2);
        assert_eq!(needed(1, 0.25), 1);
    }

    #[test]
    fn no_gpus_per_slot_assigns_nothing() {
        assert_eq!(assign(3, 0.0, &[]).unwrap(), vec![Vec::<String>::new(); 3]);
    }

    #[test]
    fn too_few_devices_and_unusable_amounts_are_refused() {
        let e = assign(4, 1.0, &ids(2)).unwrap_err();
        assert_eq!(e, "4 slots × 1 GPU need 4 GPUs; 2 are available");
        let e = assign(5, 0.5, &ids(2)).unwrap_err();
        assert!(e.contains("need 3 GPUs"), "{e}");
        for g in [1.5, 0.3, 0.4, -1.0, f64::NAN, f64::INFINITY] {
            assert!(assign(1, g, &ids(8)).is_err(), "{g}");
        }
        for g in [0.5, 0.25, 0.2, 1.0 / 3.0, 1.0, 2.0, 3.0] {
            assert!(check_gpus_per_slot(g).is_ok(), "{g}");
        }
    }

    #[test]
    fn the_environment_and_nvidia_smi_are_read() {
        assert_eq!(parse_visible("0,1"), ["0", "1"]);
        assert_eq!(parse_visible(" 2 , 3,"), ["2", "3"]);
        assert!(parse_visible("").is_empty());
        assert_eq!(parse_visible("GPU-5a1b,GPU-77c"), ["GPU-5a1b", "GPU-77c"]);
        let smi = "GPU 0: NVIDIA H200 (UUID: GPU-1234)\n\
                   GPU 1: NVIDIA H200 (UUID: GPU-5678)\n  \
                   MIG 1g.18gb     Device  0: (UUID: MIG-abcd)\n\
                   No devices were found\n";
        assert_eq!(parse_nvidia_smi(smi), ["0", "1"]);
        assert!(parse_nvidia_smi("").is_empty());
    }

    #[test]
    fn listed_devices_make_each_slots_environment() {
        let def = TrainableDef {
            gpus_per_slot: 0.5,
            devices: Some(vec!["a".into(), "b".into()]),
            ..TrainableDef::default()
        };
        let env = slot_env(&def, 3).unwrap();
        assert_eq!(
            env,
            [
                (CUDA_VISIBLE_DEVICES, "b".to_string()),
                (POPTUNE_DEVICES, "b".to_string())
            ]
        );
        assert!(slot_env(&def, 4).unwrap_err().contains("slot 4 has no GPU"));
        let e = plan_text(&def, 5).unwrap_err();
        assert!(e.starts_with("5 slots × 0.5 GPU need 3 GPUs; 2 are available ([trainable] devices): lower slots or gpus_per_slot, or list devices"), "{e}");
        assert_eq!(plan_text(&def, 4).unwrap().len(), 4);
        let cpu = TrainableDef::default();
        assert_eq!(
            slot_env(&cpu, 7).unwrap(),
            [(POPTUNE_DEVICES, "cpu".into())]
        );
    }
}
