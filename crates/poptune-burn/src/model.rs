//! The two networks: an MLP for digits and a 1D CNN for MNIST-1D.

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d, Relu};
use burn::prelude::*;
use rand::Rng;
use rand_pcg::Pcg64Mcg;

/// Train-time dropout with poptune's own seeded generator (so that a member's training is a
/// function of its state alone, whatever other threads do).
pub struct Dropout<'a> {
    /// The probability of dropping a unit, in [0, 1).
    pub p: f64,
    /// The member's generator (part of its saved state).
    pub rng: &'a mut Pcg64Mcg,
}

impl Dropout<'_> {
    /// Drops units of `x` with probability `p` and scales the rest by 1 / (1 - p).
    pub fn apply<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        if self.p <= 0.0 {
            return x;
        }
        let dims = x.dims();
        let n: usize = dims.iter().product();
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.random::<f64>() < self.p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// A classifier poptune can train: logits for a batch of feature rows.
pub trait Classifier: Module + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The logits (`[batch, classes]`) for `x` (`[batch, features]`), with dropout while
    /// training.
    fn logits(&self, x: Tensor<2>, dropout: Option<&mut Dropout<'_>>) -> Tensor<2>;
}

/// Two hidden layers of ReLU units.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden1: Linear,
    hidden2: Linear,
    output: Linear,
    relu: Relu,
}

impl Mlp {
    /// `inputs` → `hidden` → `hidden` → `classes`.
    pub fn new(inputs: usize, hidden: usize, classes: usize, device: &Device) -> Self {
        Mlp {
            hidden1: LinearConfig::new(inputs, hidden).init(device),
            hidden2: LinearConfig::new(hidden, hidden).init(device),
            output: LinearConfig::new(hidden, classes).init(device),
            relu: Relu::new(),
        }
    }
}

impl Classifier for Mlp {
    fn logits(&self, x: Tensor<2>, mut dropout: Option<&mut Dropout<'_>>) -> Tensor<2> {
        let mut h = self.relu.forward(self.hidden1.forward(x));
        if let Some(d) = dropout.as_deref_mut() {
            h = d.apply(h);
        }
        let mut h = self.relu.forward(self.hidden2.forward(h));
        if let Some(d) = dropout {
            h = d.apply(h);
        }
        self.output.forward(h)
    }
}

/// The MNIST-1D paper's CNN: three strided convolutions of `channels` channels, then a linear
/// layer.
#[derive(Module, Debug)]
pub struct Cnn1d {
    conv1: Conv1d,
    conv2: Conv1d,
    conv3: Conv1d,
    output: Linear,
    relu: Relu,
}

impl Cnn1d {
    /// For sequences of `length` (one channel).
    pub fn new(length: usize, channels: usize, classes: usize, device: &Device) -> Self {
        let conv = |i, k| {
            Conv1dConfig::new(i, channels, k)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device)
        };
        let out_len = |l: usize, k: usize| (l + 2 - k) / 2 + 1;
        let l = out_len(out_len(out_len(length, 5), 3), 3);
        Cnn1d {
            conv1: conv(1, 5),
            conv2: conv(channels, 3),
            conv3: conv(channels, 3),
            output: LinearConfig::new(channels * l, classes).init(device),
            relu: Relu::new(),
        }
    }
}

impl Classifier for Cnn1d {
    fn logits(&self, x: Tensor<2>, dropout: Option<&mut Dropout<'_>>) -> Tensor<2> {
        let [b, l] = x.dims();
        let x = x.reshape([b, 1, l]);
        let h = self.relu.forward(self.conv1.forward(x));
        let h = self.relu.forward(self.conv2.forward(h));
        let h = self.relu.forward(self.conv3.forward(h));
        let [b, c, l] = h.dims();
        let mut h = h.reshape([b, c * l]);
        if let Some(d) = dropout {
            h = d.apply(h);
        }
        self.output.forward(h)
    }
}
