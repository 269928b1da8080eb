//! The benchmark's data, shared by `benches/decision.rs` and `examples/profile.rs`.

use poptune::{Param, Space};
use poptune_pb2::Pb2Data;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Three continuous hyperparameters.
pub fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-4, 1e-1))
        .with("momentum", Param::float(0.0, 0.99))
        .with("layers", Param::int(1, 8))
}

/// The benchmark's data: `rows` intervals of a population of 20, and the best reward.
pub fn data(rows: usize) -> (Pb2Data, f64) {
    let s = space();
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    let mut d = Pb2Data::new();
    let members = 20;
    let mut reward = vec![0.0; members];
    let mut t = 0;
    for m in 0..members {
        d.observe(m, 0.0, 0.0, &s.sample(&mut rng)).unwrap_or(false);
    }
    while d.len() < rows {
        t += 1;
        for (m, r) in reward.iter_mut().enumerate() {
            let h = s.sample(&mut rng);
            let lr = h.f64("lr").unwrap_or(1e-3).log10();
            *r += 1.0 / t as f64 - 0.1 * (lr + 2.0).powi(2) + 0.05 * rng.random::<f64>();
            d.observe(m, t as f64, *r, &h).unwrap_or(false);
            if d.len() == rows {
                break;
            }
        }
    }
    (d, reward.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}
