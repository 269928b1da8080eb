//! `algorithm` in `[policy]`, and `[policy.fire]`: FIRE-PBT's sub-populations and evaluators.

use poptune::fire::Fire;
use poptune::Algorithm;

use super::keys;
use super::read::{integer, Table};
use super::ConfigError;

/// `algorithm` (PBT by default) and, for FIRE-PBT, `[policy.fire]` checked against the
/// population.
pub(super) fn read(t: &Table<'_>, population: usize) -> Result<Algorithm, ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Name {
        Pbt,
        Pb2,
        Pb2Mix,
        Fire,
    }
    let names = [
        ("pbt", Name::Pbt),
        ("pb2", Name::Pb2),
        ("pb2-mix", Name::Pb2Mix),
        ("fire", Name::Fire),
    ];
    let name = t.word("algorithm", &names)?;
    let table = t.table("fire", keys::FIRE)?;
    let is_fire = name.as_ref().is_some_and(|n| n.value == Name::Fire);
    if let (Some(f), false) = (&table, is_fire) {
        return Err(f.err(
            t.key_span("fire"),
            "[policy.fire] only applies to algorithm = \"fire\"; add algorithm = \"fire\" to [policy] or remove [policy.fire]",
        ));
    }
    Ok(match name.map(|n| n.value) {
        None | Some(Name::Pbt) => Algorithm::Pbt,
        Some(Name::Pb2) => Algorithm::Pb2,
        Some(Name::Pb2Mix) => Algorithm::Pb2Mix,
        Some(Name::Fire) => Algorithm::Fire(read_fire(t, table.as_ref(), population)?),
    })
}

fn read_fire(
    policy: &Table<'_>,
    t: Option<&Table<'_>>,
    population: usize,
) -> Result<Fire, ConfigError> {
    let Some(t) = t else {
        return Fire::for_population(population).ok_or_else(|| {
            policy.err(
                policy.key_span("algorithm"),
                format!(
                    "FIRE-PBT needs two sub-populations of at least 2 members and an evaluator: \
                     population = {population} is too small; give population = 5 or more"
                ),
            )
        });
    };
    let mut fire = Fire::for_population(population).unwrap_or_else(|| Fire::new(vec![2, 2], 1));
    if let Some(list) = t.array("sub_populations")? {
        let mut sizes = Vec::new();
        for (i, e) in list.value.iter().enumerate() {
            match integer(e.get_ref()) {
                Some(Ok(n)) if (2..=keys::MAX_POPULATION).contains(&n) => sizes.push(n as usize),
                _ => {
                    return Err(t.bad_element(
                        "sub_populations",
                        i,
                        e,
                        "is not a size of 2 or more members, e.g. sub_populations = [4, 4]",
                    ))
                }
            }
        }
        if sizes.len() < 2 {
            return Err(t.bad(
                "sub_populations",
                &list.span,
                "FIRE-PBT needs at least two sub-populations (P1 ranked by score, the others by improvement rate), e.g. sub_populations = [4, 4]",
            ));
        }
        fire.sub_populations = sizes;
    }
    if let Some(e) = t.int("evaluators")? {
        if !(1..=keys::MAX_POPULATION).contains(&e.value) {
            return Err(t.bad(
                "evaluators",
                &e.span,
                "give 1 or more evaluators, e.g. evaluators = 2",
            ));
        }
        fire.evaluators = e.value as usize;
    }
    if let Some(p) = t.float("p_value")? {
        if !(p.value > 0.0 && p.value < 1.0) {
            return Err(t.bad(
                "p_value",
                &p.span,
                "the test's level lies between 0 and 1, e.g. p_value = 0.01",
            ));
        }
        fire.p_value = p.value;
    }
    if let Some(m) = t.int("max_eval_steps")? {
        if !(1..=keys::MAX_STEPS).contains(&m.value) {
            return Err(t.bad(
                "max_eval_steps",
                &m.span,
                "give a number of steps, 1 or more, e.g. max_eval_steps = 50",
            ));
        }
        fire.max_eval_steps = m.value as u64;
    }
    if let Some(s) = t.int("smoothing")? {
        if !(1..=1000).contains(&s.value) {
            return Err(t.bad(
                "smoothing",
                &s.span,
                "give a number of points from 1 to 1000, e.g. smoothing = 5",
            ));
        }
        fire.smoothing = s.value as usize;
    }
    if fire.members() != population {
        let span = t.key_span("sub_populations");
        return Err(t.err(
            span,
            format!(
                "[policy.fire] sub_populations = {:?} and evaluators = {} make {} members, but \
                 population = {population}; make them add up (e.g. population = {})",
                fire.sub_populations,
                fire.evaluators,
                fire.members(),
                fire.members()
            ),
        ));
    }
    Ok(fire)
}
