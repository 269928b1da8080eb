//! The two datasets, compiled into the binary (see `data/README.md` for their provenance),
//! with fixed train / validation / test splits.

use std::io::Read;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

const DIGITS: &[u8] = include_bytes!("../data/digits.csv.gz");
const MNIST1D: &[u8] = include_bytes!("../data/mnist1d.csv.gz");

/// Samples of one split: `n` rows of `d` features (row-major) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub x: Vec<f32>,
    pub y: Vec<i64>,
    pub n: usize,
    pub d: usize,
}

impl Split {
    /// A split of `n = y.len()` rows from row-major features `x` (`n × d` values) and labels
    /// `y` (class indices from 0); `None` if the sizes disagree.
    pub fn new(x: Vec<f32>, y: Vec<i64>, d: usize) -> Option<Split> {
        let n = y.len();
        (d > 0 && x.len() == n * d && y.iter().all(|&c| c >= 0)).then_some(Split { x, y, n, d })
    }

    fn take(x: &[f32], y: &[i64], d: usize, rows: &[usize]) -> Split {
        let mut xs = Vec::with_capacity(rows.len() * d);
        let mut ys = Vec::with_capacity(rows.len());
        for &r in rows {
            xs.extend_from_slice(&x[r * d..(r + 1) * d]);
            ys.push(y[r]);
        }
        Split {
            x: xs,
            y: ys,
            n: rows.len(),
            d,
        }
    }
}

/// A dataset with its fixed splits.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: &'static str,
    pub train: Split,
    pub valid: Split,
    pub test: Split,
    pub classes: usize,
}

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// UCI handwritten digits, 8×8 images (64 features).
    Digits,
    /// MNIST-1D, sequences of 40.
    Mnist1d,
}

impl Which {
    /// Loads it.
    pub fn load(self) -> Result<Arc<Dataset>, DataError> {
        Ok(Arc::new(match self {
            Which::Digits => digits()?,
            Which::Mnist1d => mnist1d()?,
        }))
    }
}

/// A compiled-in dataset that cannot be read (a damaged build).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct DataError {
    /// The dataset's file.
    pub file: &'static str,
    /// What is wrong.
    pub what: String,
}

fn parse(gz: &[u8], file: &'static str) -> Result<(Vec<f32>, Vec<i64>, usize), DataError> {
    let fail = |what: String| DataError { file, what };
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot decompress: {e}")))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| fail("empty".into()))?;
    let d = header.split(',').count() - 1;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != d + 1 {
            return Err(fail(format!(
                "line {} has {} fields, expected {}",
                i + 2,
                fields.len(),
                d + 1
            )));
        }
        for f in &fields[..d] {
            x.push(
                f.parse::<f32>()
                    .map_err(|e| fail(format!("line {}: {e}", i + 2)))?,
            );
        }
        y.push(
            fields[d]
                .parse::<i64>()
                .map_err(|e| fail(format!("line {}: {e}", i + 2)))?,
        );
    }
    Ok((x, y, d))
}

fn shuffled(n: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut Pcg64Mcg::seed_from_u64(0));
    rows
}

/// UCI digits: features scaled to [0, 1]; 1,197 train, 300 validation, 300 test.
pub fn digits() -> Result<Dataset, DataError> {
    let (mut x, y, d) = parse(DIGITS, "digits.csv.gz")?;
    for v in &mut x {
        *v /= 16.0;
    }
    let rows = shuffled(y.len());
    Ok(Dataset {
        name: "digits",
        train: Split::take(&x, &y, d, &rows[..1197]),
        valid: Split::take(&x, &y, d, &rows[1197..1497]),
        test: Split::take(&x, &y, d, &rows[1497..]),
        classes: 10,
    })
}

/// MNIST-1D: 3,500 train and 500 validation rows from the package's training split; its
/// 1,000 test rows are the test set.
pub fn mnist1d() -> Result<Dataset, DataError> {
    let (x, y, d) = parse(MNIST1D, "mnist1d.csv.gz")?;
    let rows = shuffled(4000);
    let test: Vec<usize> = (4000..y.len()).collect();
    Ok(Dataset {
        name: "mnist1d",
        train: Split::take(&x, &y, d, &rows[..3500]),
        valid: Split::take(&x, &y, d, &rows[3500..]),
        test: Split::take(&x, &y, d, &test),
        classes: 10,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_have_the_documented_sizes_and_do_not_overlap() {
        let d = digits().unwrap();
        assert_eq!(
            (d.train.n, d.valid.n, d.test.n, d.train.d),
            (1197, 300, 300, 64)
        );
        assert!(d.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
        let m = mnist1d().unwrap();
        assert_eq!(
            (m.train.n, m.valid.n, m.test.n, m.train.d),
            (3500, 500, 1000, 40)
        );
        assert!(m
            .train
            .y
            .iter()
            .chain(&m.test.y)
            .all(|&c| (0..10).contains(&c)));
        // No validation row is also a training row.
        let rows: std::collections::HashSet<Vec<u32>> = m
            .train
            .x
            .chunks(40)
            .map(|r| r.iter().map(|v| v.to_bits()).collect())
            .collect();
        assert!(m
            .valid
            .x
            .chunks(40)
            .all(|r| !rows.contains(&r.iter().map(|v| v.to_bits()).collect::<Vec<_>>())));
        // The splits are fixed: loading twice gives the same rows.
        assert_eq!(m, mnist1d().unwrap());
    }
}
