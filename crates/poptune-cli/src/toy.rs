//! `poptune toy`: the paper's toy example, PBT against its ablations and grid search.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use poptune::toy::{ToyConfig, TOY_VARIANTS};
use poptune::{Algorithm, Baseline, Inherit, Outcome};
use serde::Serialize;

use crate::CliError;

/// What an exploiting member inherits (command-line spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InheritArg {
    /// Weights only (the paper's toy).
    #[value(name = "weights")]
    Weights,
    /// Weights and hyperparameters.
    #[value(name = "weights+hyperparameters")]
    WeightsAndHyperparameters,
}

#[derive(Args, Debug)]
pub struct ToyArgs {
    /// Number of seeds to run each variant with (seeds 0, 1, ..., N-1).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Gradient-ascent step size η (the paper gives none; 0.05 lets PBT come close to 1.2 in
    /// 40 steps, as in its figure).
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    eta: f64,
    /// Steps per member.
    #[arg(long, default_value_t = 40)]
    steps: u64,
    /// Steps between ready points.
    #[arg(long, default_value_t = 5)]
    interval: u64,
    /// Standard deviation of the Gaussian explore noise on h.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    noise: f64,
    /// What an exploiting member inherits from the winner.
    #[arg(long, value_enum, default_value = "weights")]
    inherit: InheritArg,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the four-panel figure (toy.png and toy.svg) into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The seed whose runs the figure shows.
    #[arg(long, default_value_t = 0)]
    plot_seed: u64,
    /// "pbt" (the paper's Gaussian explore) or "pb2" (a GP bandit chooses the new h).
    #[arg(long, value_enum, default_value = "pbt")]
    algorithm: AlgorithmArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AlgorithmArg {
    Pbt,
    Pb2,
}

/// The best member's final Q over the seeds, for one variant.
#[derive(Debug, Serialize)]
pub struct VariantSummary {
    pub variant: &'static str,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// Seeds whose best final Q reached 1.17.
    pub reached_1_17: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    eta: f64,
    steps: u64,
    interval: u64,
    noise: f64,
    inherit: &'static str,
    algorithm: &'static str,
    seeds: u64,
    grid_closed_form: f64,
    variants: Vec<VariantSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    figures: Vec<PathBuf>,
}

impl ToyArgs {
    fn config(&self) -> Result<ToyConfig, CliError> {
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(CliError::usage(anyhow!(
                "--eta {} is not a positive number; try --eta 0.05",
                self.eta
            )));
        }
        if self.eta >= 1.0 {
            return Err(CliError::usage(anyhow!(
                "--eta {} makes gradient ascent diverge for h near 1 (it needs η < 1/(2h)); try --eta 0.05",
                self.eta
            )));
        }
        if self.seeds == 0 {
            return Err(CliError::usage(anyhow!("--seeds must be at least 1")));
        }
        if self.steps == 0 || self.interval == 0 {
            return Err(CliError::usage(anyhow!(
                "--steps and --interval must be at least 1"
            )));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(CliError::usage(anyhow!(
                "--noise {} must be a finite number >= 0",
                self.noise
            )));
        }
        Ok(ToyConfig {
            eta: self.eta,
            steps: self.steps,
            interval: self.interval,
            noise: self.noise,
            inherit: match self.inherit {
                InheritArg::Weights => Inherit::WeightsOnly,
                InheritArg::WeightsAndHyperparameters => Inherit::WeightsAndHyperparameters,
            },
            workers: 1,
            algorithm: match self.algorithm {
                AlgorithmArg::Pbt => Algorithm::Pbt,
                AlgorithmArg::Pb2 => Algorithm::Pb2,
            },
        })
    }
}

fn summarize(variant: Baseline, scores: &[f64]) -> VariantSummary {
    let n = scores.len() as f64;
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Offsets from the minimum: equal scores give a mean equal to them, not a rounding away.
    let mean = (min + scores.iter().map(|s| s - min).sum::<f64>() / n).clamp(min, max);
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
    VariantSummary {
        variant: variant.name(),
        mean,
        std: var.sqrt(),
        min,
        max,
        reached_1_17: scores.iter().filter(|&&s| s >= 1.17).count(),
    }
}

/// Runs every variant over every seed.
pub fn run(args: &ToyArgs) -> Result<(), CliError> {
    let cfg = args.config()?;
    let mut variants = Vec::new();
    for variant in TOY_VARIANTS {
        let mut scores = Vec::with_capacity(args.seeds as usize);
        for seed in 0..args.seeds {
            let out = poptune_run::toy::run(&cfg, variant, seed)
                .with_context(|| format!("{} with seed {seed}", variant.name()))?;
            scores.push(out.best_score().unwrap_or(f64::NAN));
        }
        variants.push(summarize(variant, &scores));
    }
    let mut figures = Vec::new();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
        let runs: Vec<(Baseline, Outcome<[f64; 2]>)> = TOY_VARIANTS
            .iter()
            .map(|&v| poptune_run::toy::run(&cfg, v, args.plot_seed).map(|o| (v, o)))
            .collect::<Result<_, _>>()?;
        figures = crate::plot::toy_figure(dir, &cfg, &runs, args.plot_seed)?;
    }
    let report = Report {
        eta: cfg.eta,
        steps: cfg.steps,
        interval: cfg.interval,
        noise: cfg.noise,
        inherit: match cfg.inherit {
            Inherit::WeightsOnly => "weights",
            Inherit::WeightsAndHyperparameters => "weights+hyperparameters",
        },
        algorithm: cfg.algorithm.name(),
        seeds: args.seeds,
        grid_closed_form: cfg.grid_closed_form(),
        variants,
        figures,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "PBT toy (Jaderberg et al. 2017, Fig. 2): maximise Q = 1.2 - (θ0² + θ1²), best member's final Q"
    );
    let explore = if r.algorithm == "pb2" {
        "explore by PB2 (a GP bandit chooses h)".to_string()
    } else {
        format!("explore noise {}", r.noise)
    };
    println!(
        "η = {}, {} steps, ready every {}, {explore}, inherit {}, {} seeds",
        r.eta, r.steps, r.interval, r.inherit, r.seeds
    );
    println!();
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "variant", "mean", "std", "min", "max", "Q >= 1.17"
    );
    for v in &r.variants {
        println!(
            "{:<14} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>6}/{:<3}",
            v.variant, v.mean, v.std, v.min, v.max, v.reached_1_17, r.seeds
        );
    }
    println!();
    println!(
        "grid search in closed form: Q = 1.2 - 0.81·(1-2η)^(2T) - 0.81 = {:.6}",
        r.grid_closed_form
    );
    for f in &r.figures {
        println!("figure: {}", f.display());
    }
}
