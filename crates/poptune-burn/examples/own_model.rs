//! Your own burn `Module` and your own data, tuned by PBT; then the best member's exported
//! checkpoint loaded back for inference. Run it with
//! `cargo run --release -p poptune-burn --example own_model -- results/own-model`
//! (Ctrl-C or a kill stops it; the same command continues it).
//!
//! The data here are two noisy interleaved spirals, made from a seed so that nothing is
//! downloaded; put your own features and labels into `Split::new` instead.

use std::path::PathBuf;
use std::sync::Arc;

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;
use poptune::{Experiment, Hyperparams, Param, Space};
use poptune_burn::data::{Dataset, Split};
use poptune_burn::model::{Classifier, Dropout};
use poptune_burn::trainer::{load_model, BurnTrainer, TrainerConfig};
use poptune_run::{Quiet, Run};
use poptune_store::Store;
use rand::{Rng, SeedableRng};

/// Your network: any burn `Module` that gives logits for a batch of feature rows.
#[derive(Module, Debug)]
struct Net {
    hidden: Linear,
    output: Linear,
    relu: Relu,
}

impl Net {
    fn new(device: &Device) -> Self {
        Net {
            hidden: LinearConfig::new(2, 32).init(device),
            output: LinearConfig::new(32, 2).init(device),
            relu: Relu::new(),
        }
    }
}

impl Classifier for Net {
    fn logits(&self, x: Tensor<2>, dropout: Option<&mut Dropout<'_>>) -> Tensor<2> {
        let mut h = self.relu.forward(self.hidden.forward(x));
        if let Some(d) = dropout {
            h = d.apply(h);
        }
        self.output.forward(h)
    }
}

/// `n` points of two interleaved spirals with noise, labelled by spiral.
fn spirals(n: usize, seed: u64) -> Split {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for i in 0..n {
        let class = (i % 2) as i64;
        let t = rng.random::<f32>() * 3.0 * std::f32::consts::PI;
        let r = t / (3.0 * std::f32::consts::PI);
        let angle = t + class as f32 * std::f32::consts::PI;
        x.push(r * angle.cos() + 0.05 * (rng.random::<f32>() - 0.5));
        x.push(r * angle.sin() + 0.05 * (rng.random::<f32>() - 0.5));
        y.push(class);
    }
    // The sizes agree by construction.
    Split::new(x, y, 2).unwrap_or_else(|| unreachable!())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "results/own-model".into())
        .into();
    let data = Arc::new(Dataset {
        name: "spirals",
        train: spirals(2000, 1),
        valid: spirals(500, 2),
        test: spirals(500, 3),
        classes: 2,
    });
    // The hyperparameters BurnTrainer reads; a name left out of the space takes its default.
    let space = Space::new()
        .with("lr", Param::log_float(0.01, 1.0))
        .with("momentum", Param::float(0.0, 0.95))
        .with("batch_size", Param::ordered([16i64, 32, 64]));
    let config = TrainerConfig {
        examples_per_step: 2000,
        defaults: Hyperparams::new()
            .with("weight_decay", 0.0)
            .with("dropout", 0.0),
    };
    let make = |member: usize| {
        BurnTrainer::new(Arc::clone(&data), config.clone(), member as u64, Net::new)
    };
    let experiment = Experiment::new(space).population(8).steps(30).seed(5);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary = experiment.run_in("own-model", &dir, make, &Quiet, &stop)?;
    println!("{}: {}", dir.display(), summary.status);

    // The best member's checkpoint (what `poptune export DIR --out best` copies), loaded into
    // a fresh network for inference.
    let (store, def) = poptune_run::local::open_dir(&dir)?;
    let members = store.members()?;
    let best = poptune_store::best_member(def.mode, &members)
        .and_then(|b| members.get(b))
        .ok_or("no member has a score yet")?;
    let ckpt = best
        .checkpoint
        .as_ref()
        .ok_or("the best member has no checkpoint")?;
    let ckpt = dir.join(poptune_run::local::CKPT_DIR).join(ckpt);
    let device = Device::flex();
    let net = load_model(&ckpt, Net::new(&device))?;
    let test = &data.test;
    let x = Tensor::<2>::from_data(TensorData::new(test.x.clone(), [test.n, test.d]), &device);
    let predicted: Vec<i64> = net
        .logits(x, None)
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| format!("{e:?}"))?;
    let right = predicted
        .iter()
        .zip(&test.y)
        .filter(|(p, y)| p == y)
        .count();
    println!(
        "best member {}: validation accuracy {:.4}; test accuracy of the loaded checkpoint {:.4}",
        best.id,
        best.score.unwrap_or(f64::NAN),
        right as f64 / test.n as f64
    );
    Ok(())
}
