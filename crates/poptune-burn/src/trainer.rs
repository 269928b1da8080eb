//! A burn classifier and its optimiser as a poptune [`Trainable`].
//!
//! The full training state (weights, the optimiser's momentum buffers, the data generator, the
//! step count) is a [`TrainState`]: cloned in memory for in-process exploits, written to three
//! files for the store. The optimiser's hyperparameters may change between any two steps:
//! the learning rate is passed at every update, and a new momentum or weight decay rebuilds
//! the optimiser around its old state, so no momentum is lost.

use std::path::Path;
use std::sync::{Arc, Mutex};

use burn::nn::loss::CrossEntropyLoss;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::store::ModuleRecord;
use poptune::{Hyperparams, Metrics, Trainable, TrainableError};
use poptune_run::inprocess::Persist;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::model::{Classifier, Dropout};

/// The complete state of a member's training.
#[derive(Clone)]
pub struct TrainState<M> {
    /// The network.
    pub model: M,
    optim: ModuleOptimizer,
    momentum: f64,
    weight_decay: f64,
    rng: Pcg64Mcg,
    /// Steps trained.
    pub steps: u64,
}

/// What `meta.json` holds beside the weights and the optimiser state.
#[derive(Serialize, Deserialize)]
struct Meta {
    momentum: f64,
    weight_decay: f64,
    rng: Pcg64Mcg,
    steps: u64,
}

/// The optimiser's settings that a hyperparameter change can touch (besides the learning
/// rate, which every update takes).
fn sgd(momentum: f64, weight_decay: f64) -> ModuleOptimizer {
    let mut config = SgdConfig::new();
    if momentum > 0.0 {
        config = config.with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(momentum)
                .with_dampening(0.0),
        ));
    }
    if weight_decay > 0.0 {
        config = config.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)));
    }
    config.init()
}

/// Serialises model initialisation: burn seeds one generator for the whole backend.
static INIT: Mutex<()> = Mutex::new(());

/// Builds a model from `seed` alone, whatever other threads are doing. burn initialises
/// parameters lazily, on first use; reading them all here makes them take their values now,
/// under the lock, from this seed.
pub fn seeded<M: Module>(seed: u64, device: &Device, make: impl FnOnce(&Device) -> M) -> M {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let model = make(device);
    drop(model.clone().into_record());
    model
}

/// How a trainer trains.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Training examples per step (a step is `examples_per_step / batch_size` updates), then
    /// one evaluation on the validation split.
    pub examples_per_step: usize,
    /// Defaults for hyperparameters the search space leaves out.
    pub defaults: Hyperparams,
}

/// A classifier with SGD (momentum, weight decay), trained on a dataset; the score of each
/// step is the validation accuracy. Hyperparameters: `lr`, `momentum`, `weight_decay`,
/// `dropout`, `batch_size`.
pub struct BurnTrainer<M: Classifier> {
    state: TrainState<M>,
    data: Arc<Dataset>,
    config: TrainerConfig,
    device: Device,
    loss: CrossEntropyLoss,
    valid_x: Tensor<2>,
    valid_y: Vec<i64>,
}

impl<M: Classifier> BurnTrainer<M> {
    /// A fresh trainer: `model` is made on the training (autodiff) device, seeded by `seed`.
    pub fn new(
        data: Arc<Dataset>,
        config: TrainerConfig,
        seed: u64,
        model: impl FnOnce(&Device) -> M,
    ) -> Self {
        let device = Device::flex().autodiff();
        let model = seeded(seed, &device, model);
        let plain = Device::flex();
        let valid_x = features(&data.valid, 0..data.valid.n, &plain);
        let valid_y = data.valid.y.clone();
        BurnTrainer {
            state: TrainState {
                model,
                optim: sgd(0.0, 0.0),
                momentum: 0.0,
                weight_decay: 0.0,
                rng: Pcg64Mcg::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
                steps: 0,
            },
            loss: CrossEntropyLoss::new(None, &device),
            data,
            config,
            device,
            valid_x,
            valid_y,
        }
    }

    fn get(&self, h: &Hyperparams, name: &str) -> Result<f64, TrainableError> {
        h.f64(name)
            .or_else(|| self.config.defaults.f64(name))
            .ok_or_else(|| {
                TrainableError::new(format!(
                    "hyperparameter {name:?} is missing: add it to the search space"
                ))
            })
    }

    /// The network as trained so far.
    pub fn model(&self) -> &M {
        &self.state.model
    }

    /// Accuracy of the current model on `split`.
    pub fn accuracy(&self, split: &Split) -> f64 {
        let plain = Device::flex();
        let x = features(split, 0..split.n, &plain);
        accuracy(&self.state.model, x, &split.y)
    }
}

/// Loads the weights of a checkpoint (a checkpoint directory, or the folder `poptune export`
/// wrote) into `model`, a model of the same architecture made on any device: the trained
/// network, ready for inference. (`optimizer.bpk` and `meta.json` beside it hold the rest of
/// the training state, which only training on needs.)
///
/// ```no_run
/// # use poptune_burn::{model::Mlp, trainer::load_model};
/// # use burn::prelude::*;
/// let device = Device::flex();
/// let model = load_model(std::path::Path::new("best"), Mlp::new(64, 128, 10, &device))?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn load_model<M: Module>(dir: &Path, model: M) -> std::io::Result<M> {
    let path = dir.join("model.bpk");
    let record = ModuleRecord::load(&path)
        .map_err(|e| std::io::Error::other(format!("cannot read {}: {e}", path.display())))?;
    model
        .try_load_record(record)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
}

/// Rows `rows` of `split` as a `[rows, d]` tensor on `device`.
fn features(split: &Split, rows: std::ops::Range<usize>, device: &Device) -> Tensor<2> {
    let n = rows.len();
    let x = split.x[rows.start * split.d..rows.end * split.d].to_vec();
    Tensor::<2>::from_data(TensorData::new(x, [n, split.d]), device)
}

fn accuracy<M: Classifier>(model: &M, x: Tensor<2>, y: &[i64]) -> f64 {
    let predicted = model.valid().logits(x, None).argmax(1);
    let predicted: Vec<i64> = predicted
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default();
    let right = predicted.iter().zip(y).filter(|(p, y)| p == y).count();
    right as f64 / y.len().max(1) as f64
}

impl<M: Classifier> Trainable for BurnTrainer<M> {
    type State = TrainState<M>;

    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let lr = self.get(h, "lr")?;
        let momentum = self.get(h, "momentum")?;
        let weight_decay = self.get(h, "weight_decay")?;
        let p = self.get(h, "dropout")?;
        let batch = self.get(h, "batch_size")? as usize;
        if !(0.0..1.0).contains(&p) || batch == 0 || lr.is_nan() || lr <= 0.0 {
            return Err(TrainableError::new(format!(
                "bad hyperparameters: lr {lr} must be > 0, dropout {p} in [0, 1), batch_size {batch} >= 1"
            )));
        }
        let st = &mut self.state;
        if momentum != st.momentum || weight_decay != st.weight_decay {
            let old = std::mem::replace(&mut st.optim, sgd(0.0, 0.0));
            st.optim = sgd(momentum, weight_decay).load_record(old.to_record());
            st.momentum = momentum;
            st.weight_decay = weight_decay;
        }
        let train = &self.data.train;
        let updates = (self.config.examples_per_step / batch).max(1);
        let mut loss_sum = 0.0;
        for _ in 0..updates {
            let rows = rand::seq::index::sample(&mut st.rng, train.n, batch.min(train.n));
            let mut xs = Vec::with_capacity(rows.len() * train.d);
            let mut ys = Vec::with_capacity(rows.len());
            for r in rows.iter() {
                xs.extend_from_slice(&train.x[r * train.d..(r + 1) * train.d]);
                ys.push(train.y[r]);
            }
            let n = ys.len();
            let x = Tensor::<2>::from_data(TensorData::new(xs, [n, train.d]), &self.device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(ys, [n]), &self.device);
            let mut drop = Dropout {
                p,
                rng: &mut st.rng,
            };
            let logits = st.model.logits(x, Some(&mut drop));
            let loss = self.loss.forward(logits, y);
            loss_sum += loss
                .clone()
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(f64::NAN);
            let grads = GradientsParams::from_grads(loss.backward(), &st.model);
            st.model = st.optim.step(lr, st.model.clone(), grads);
        }
        st.steps += 1;
        let acc = accuracy(&st.model, self.valid_x.clone(), &self.valid_y);
        // A diverged model (NaN loss) scores what its predictions are worth (chance), so
        // PBT replaces it by exploit instead of counting faults.
        Ok(Metrics::new(acc).with("train_loss", loss_sum / updates as f64))
    }

    fn save(&self) -> TrainState<M> {
        self.state.clone()
    }

    fn restore(&mut self, state: &TrainState<M>) {
        self.state = state.clone();
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl<M: Classifier> Persist for BurnTrainer<M> {
    fn save_state(state: &TrainState<M>, dir: &Path) -> std::io::Result<()> {
        state
            .model
            .clone()
            .into_record()
            .save(dir.join("model.bpk"))
            .map_err(io_err)?;
        state
            .optim
            .save(dir.join("optimizer.bpk"))
            .map_err(io_err)?;
        let meta = Meta {
            momentum: state.momentum,
            weight_decay: state.weight_decay,
            rng: state.rng.clone(),
            steps: state.steps,
        };
        std::fs::write(
            dir.join("meta.json"),
            serde_json::to_vec(&meta).map_err(io_err)?,
        )
    }

    fn load_state(&self, dir: &Path) -> std::io::Result<TrainState<M>> {
        let meta: Meta =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?).map_err(io_err)?;
        let record = ModuleRecord::load(dir.join("model.bpk")).map_err(io_err)?;
        let model = self
            .state
            .model
            .clone()
            .try_load_record(record)
            .map_err(io_err)?;
        let optim = sgd(meta.momentum, meta.weight_decay)
            .load(dir.join("optimizer.bpk"))
            .map_err(io_err)?;
        Ok(TrainState {
            model,
            optim,
            momentum: meta.momentum,
            weight_decay: meta.weight_decay,
            rng: meta.rng,
            steps: meta.steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Which;
    use crate::model::Mlp;

    fn trainer(seed: u64) -> BurnTrainer<Mlp> {
        let data = Which::Digits.load().unwrap();
        let config = TrainerConfig {
            examples_per_step: 128,
            defaults: Hyperparams::new(),
        };
        BurnTrainer::new(data, config, seed, |d| Mlp::new(64, 32, 10, d))
    }

    fn h(momentum: f64) -> Hyperparams {
        Hyperparams::new()
            .with("lr", 0.05)
            .with("momentum", momentum)
            .with("weight_decay", 1e-4)
            .with("dropout", 0.2)
            .with("batch_size", 16i64)
    }

    #[test]
    fn the_same_seed_trains_identically_and_another_does_not() {
        let (mut a, mut b, mut c) = (trainer(3), trainer(3), trainer(4));
        for _ in 0..3 {
            let (ma, mb, mc) = (
                a.step(&h(0.9)).unwrap(),
                b.step(&h(0.9)).unwrap(),
                c.step(&h(0.9)).unwrap(),
            );
            assert_eq!(ma, mb);
            assert_ne!(ma.values, mc.values);
        }
    }

    #[test]
    fn a_state_written_to_disk_trains_on_exactly_like_the_one_in_memory() {
        let mut a = trainer(1);
        for _ in 0..3 {
            a.step(&h(0.9)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        BurnTrainer::save_state(&a.save(), dir.path()).unwrap();
        let mut b = trainer(2);
        let state = b.load_state(dir.path()).unwrap();
        b.restore(&state);
        assert_eq!(b.state.steps, 3);
        for m in [0.9, 0.5, 0.7] {
            assert_eq!(a.step(&h(m)).unwrap(), b.step(&h(m)).unwrap());
        }
        // An in-memory copy (an exploit) too.
        let mut c = trainer(5);
        c.restore(&a.save());
        assert_eq!(a.step(&h(0.6)).unwrap(), c.step(&h(0.6)).unwrap());
        // A damaged checkpoint is an error, not a panic.
        std::fs::write(dir.path().join("model.bpk"), b"garbage").unwrap();
        assert!(b.load_state(dir.path()).is_err());
    }

    #[test]
    fn a_new_momentum_keeps_the_optimiser_state() {
        let mut a = trainer(1);
        for _ in 0..2 {
            a.step(&h(0.9)).unwrap();
        }
        // Rebuilding the optimiser around its record loses nothing: with the same settings
        // the next step is exactly the one the original optimiser takes.
        let mut b = trainer(9);
        b.restore(&a.save());
        b.state.optim = sgd(0.9, 1e-4).load_record(b.state.optim.to_record());
        let mut c = trainer(9);
        c.restore(&a.save());
        assert_eq!(a.step(&h(0.9)).unwrap(), b.step(&h(0.9)).unwrap());
        // A new momentum (the trainer rebuilds the optimiser around the old record) trains
        // differently from the same momentum with the state dropped: the buffers were kept.
        let mut d = trainer(9);
        d.restore(&c.save());
        d.state.optim = sgd(0.5, 1e-4);
        d.state.momentum = 0.5;
        assert_ne!(c.step(&h(0.5)).unwrap(), d.step(&h(0.5)).unwrap());
    }

    #[test]
    fn an_exported_checkpoint_loads_into_a_fresh_network_for_inference() {
        let mut a = trainer(1);
        for _ in 0..3 {
            a.step(&h(0.9)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        BurnTrainer::save_state(&a.save(), dir.path()).unwrap();
        let data = Which::Digits.load().unwrap();
        let device = Device::flex();
        let net = load_model(dir.path(), Mlp::new(64, 32, 10, &device)).unwrap();
        let x = features(&data.test, 0..data.test.n, &device);
        assert_eq!(accuracy(&net, x, &data.test.y), a.accuracy(&data.test));
        // A network of another shape, or no checkpoint, is an error that names the file.
        assert!(load_model(dir.path(), Mlp::new(64, 16, 10, &device)).is_err());
        let missing = load_model(&dir.path().join("nothing"), Mlp::new(64, 32, 10, &device));
        assert!(missing.is_err_and(|e| e.to_string().contains("model.bpk")));
    }
}
