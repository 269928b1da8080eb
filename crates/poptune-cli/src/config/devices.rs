//! `[trainable]` `gpus_per_slot` and `devices`: which GPUs each slot's process sees
//! (`poptune_run::devices` assigns them).

use toml::de::DeValue;

use super::read::{integer, Table};
use super::ConfigError;
use poptune::TrainableDef;

/// The GPUs each slot gets and the devices they come from, as `[trainable]` gives them.
pub(super) struct Devices {
    pub(super) gpus_per_slot: f64,
    pub(super) devices: Option<Vec<String>>,
}

/// Reads `gpus_per_slot` (0 or absent: no GPUs assigned) and `devices` (ids as strings or
/// whole numbers) from `[trainable]`.
pub(super) fn read(t: &Table<'_>) -> Result<Devices, ConfigError> {
    let gpus_per_slot = match t.float("gpus_per_slot")? {
        Some(g) => {
            poptune_run::devices::check_gpus_per_slot(g.value).map_err(|why| {
                t.bad(
                    "gpus_per_slot",
                    &g.span,
                    format!("it {why}; e.g. gpus_per_slot = 1, or 0.5 for two slots on each GPU"),
                )
            })?;
            g.value
        }
        None => 0.0,
    };
    let example = "devices = [\"0\", \"1\"] or devices = [0, 1]";
    let devices = match t.array("devices")? {
        None => None,
        Some(list) => {
            let mut ids: Vec<String> = Vec::new();
            for (i, e) in list.value.iter().enumerate() {
                let id = match (e.get_ref(), integer(e.get_ref())) {
                    (DeValue::String(s), _) => s.trim().to_string(),
                    (_, Some(Ok(n))) if n >= 0 => n.to_string(),
                    _ => {
                        return Err(t.bad_element(
                            "devices",
                            i,
                            e,
                            format!("is not a device id: give each as a string or a whole number 0 or more, e.g. {example}"),
                        ))
                    }
                };
                if id.is_empty() || id.contains([',', '\0']) {
                    return Err(t.bad_element(
                        "devices",
                        i,
                        e,
                        format!("cannot name a device (not empty, no ',' or NUL); e.g. {example}"),
                    ));
                }
                if ids.contains(&id) {
                    return Err(t.bad_element(
                        "devices",
                        i,
                        e,
                        format!("is listed twice: list each device once (a fractional gpus_per_slot, e.g. 0.5, puts several slots on one device); e.g. {example}"),
                    ));
                }
                ids.push(id);
            }
            Some(ids)
        }
    };
    Ok(Devices {
        gpus_per_slot,
        devices,
    })
}

/// Checks that this machine (or `devices`) has the GPUs `slots` slots need; the error
/// points at `gpus_per_slot`.
pub(super) fn check_against(
    root: &Table<'_>,
    trainable: &TrainableDef,
    slots: usize,
) -> Result<(), ConfigError> {
    if trainable.gpus_per_slot == 0.0 {
        return Ok(());
    }
    let Err(why) = poptune_run::devices::plan_text(trainable, slots) else {
        return Ok(());
    };
    let span = root
        .raw("trainable")
        .and_then(|v| match v.get_ref() {
            DeValue::Table(t) => t.get("gpus_per_slot").map(|g| g.span()),
            _ => None,
        })
        .unwrap_or(0..0);
    Err(root.err(span, format!("[trainable] `gpus_per_slot`: {why}")))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, ConfigError, ExperimentDef};

    fn file(slots: usize, trainable: &str) -> String {
        format!(
            "name = \"demo\"\npopulation = 4\nslots = {slots}\n\n[space.lr]\ntype = \"float\"\n\
             low = 0.1\nhigh = 1.0\n\n[stop]\nsteps = 10\n\n[trainable]\n\
             command = [\"python3\", \"train.py\"]\n{trainable}\n"
        )
    }

    fn ok(slots: usize, trainable: &str) -> ExperimentDef {
        parse(Path::new("exp.toml"), &file(slots, trainable)).unwrap()
    }

    fn err(slots: usize, trainable: &str) -> ConfigError {
        parse(Path::new("exp.toml"), &file(slots, trainable)).unwrap_err()
    }

    #[test]
    fn gpus_per_slot_and_devices_are_read() {
        let d = ok(4, "gpus_per_slot = 0.5\ndevices = [\"a\", \"b\"]");
        assert_eq!(d.trainable.gpus_per_slot, 0.5);
        assert_eq!(d.trainable.devices, Some(vec!["a".into(), "b".into()]));
        let d = ok(2, "gpus_per_slot = 1\ndevices = [0, 1]");
        assert_eq!(d.trainable.gpus_per_slot, 1.0);
        assert_eq!(d.trainable.devices, Some(vec!["0".into(), "1".into()]));
        // Absent: no GPUs assigned, and the stored definition has neither key (so one stored
        // by an older release compares equal).
        let d = ok(2, "");
        assert_eq!(d.trainable.gpus_per_slot, 0.0);
        assert_eq!(d.trainable.devices, None);
        let json = d.to_json();
        assert!(
            !json.contains("gpus_per_slot") && !json.contains("devices"),
            "{json}"
        );
        let back = ExperimentDef::from_json(&json).unwrap();
        assert!(back.same_as(&d));
        let d = ok(2, "gpus_per_slot = 0");
        assert!(!d.to_json().contains("gpus_per_slot"));
    }

    #[test]
    fn too_many_gpus_are_refused_at_gpus_per_slot() {
        let e = err(4, "gpus_per_slot = 1\ndevices = [\"0\", \"1\"]");
        assert_eq!((e.line, e.column), (15, 17), "{e}");
        assert!(
            e.message.contains(
                "4 slots × 1 GPU need 4 GPUs; 2 are available ([trainable] devices): lower \
                 slots or gpus_per_slot, or list devices"
            ),
            "{e}"
        );
        // Only the slots that can train at once count: population 4.
        let e = err(8, "gpus_per_slot = 0.5\ndevices = [\"0\"]");
        assert!(e.message.contains("4 slots × 0.5 GPU need 2 GPUs"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        for (text, says) in [
            ("gpus_per_slot = 1.5", "whole number"),
            ("gpus_per_slot = 0.3", "divide one GPU evenly"),
            (
                "gpus_per_slot = -1",
                "0 (no GPUs assigned) or a positive number",
            ),
            ("gpus_per_slot = \"1\"", "remove the quotes"),
            ("devices = \"0,1\"", "must be a list of device ids"),
            ("devices = [0, 0]", "listed twice"),
            ("devices = [true]", "is not a device id"),
            ("devices = [-1]", "is not a device id"),
            ("devices = [\"0,1\"]", "cannot name a device"),
            ("devices = [\"\"]", "cannot name a device"),
        ] {
            let e = err(1, text);
            assert_eq!(e.line, 15, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn near_misses_and_misplaced_keys_are_told() {
        let e = err(1, "gpu_per_slot = 1");
        assert!(e.message.contains("did you mean `gpus_per_slot`"), "{e}");
        let e = err(1, "device = [\"0\"]");
        assert!(e.message.contains("did you mean `devices`"), "{e}");
        let text = file(1, "").replace("slots = 1\n", "slots = 1\ngpus_per_slot = 1\n");
        let e = parse(Path::new("exp.toml"), &text).unwrap_err();
        assert!(e.message.contains("it belongs to [trainable]"), "{e}");
    }
}
