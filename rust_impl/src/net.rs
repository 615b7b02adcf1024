//! The two-layer net of the book, trained on batches the caller chooses by row index.

use std::fmt;
use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::layers::{affine_into, Affine, Layer, Relu, SoftmaxWithLoss};
use crate::linalg::Scalar;

/// What the caller got wrong; the bindings turn it into a Python `ValueError`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetError(pub String);

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NetError {}

fn error<T>(message: String) -> Result<T, NetError> {
    Err(NetError(message))
}

/// Initial parameters as the harness hands them over.
pub struct InitParams<T> {
    pub w1: Array2<T>,
    pub b1: Array1<T>,
    pub w2: Array2<T>,
    pub b2: Array1<T>,
}

pub struct TwoLayerNet<T: Scalar> {
    affine1: Affine<T>,
    relu1: Relu<T>,
    affine2: Affine<T>,
    last: SoftmaxWithLoss<T>,
    train_x: Array2<T>,
    train_y: Vec<usize>,
    x_batch: Array2<T>,
    t_batch: Vec<usize>,
    lr: T,
    threads: usize,
    /// Seconds spent in each phase (`PHASES`), when profiling is on.
    phase_seconds: Option<[f64; 4]>,
}

/// The published article's phases of a training step, in order.
pub const PHASES: [&str; 4] = ["batch", "forward", "backward", "update"];

impl<T: Scalar> TwoLayerNet<T> {
    /// Copies the training set in once and sizes every buffer for `batch` rows.
    pub fn new(
        init: InitParams<T>,
        train_x: Array2<T>,
        train_y: ArrayView1<i64>,
        lr: f64,
        batch: usize,
        threads: usize,
    ) -> Result<Self, NetError> {
        let (features, hidden) = init.w1.dim();
        let classes = init.w2.ncols();
        if init.b1.len() != hidden || init.w2.nrows() != hidden || init.b2.len() != classes {
            return error(format!(
                "parameter shapes do not chain: W1 {:?}, b1 ({},), W2 {:?}, b2 ({},)",
                init.w1.dim(),
                init.b1.len(),
                init.w2.dim(),
                init.b2.len()
            ));
        }
        if train_x.ncols() != features {
            return error(format!(
                "train_x has {} features per row but W1 expects {features}",
                train_x.ncols()
            ));
        }
        if train_y.len() != train_x.nrows() {
            return error(format!(
                "train_y has {} labels for {} rows of train_x",
                train_y.len(),
                train_x.nrows()
            ));
        }
        let train_y = train_y
            .iter()
            .map(|&label| usize::try_from(label).ok().filter(|&l| l < classes))
            .collect::<Option<Vec<usize>>>()
            .map_or_else(
                || error(format!("train_y holds a label outside 0..{classes}")),
                Ok,
            )?;
        if batch == 0 || !lr.is_finite() || lr <= 0.0 {
            return error(format!(
                "batch must be ≥ 1 and lr finite and > 0 (got {batch}, {lr})"
            ));
        }
        Ok(TwoLayerNet {
            // Only the first layer's products are big enough to gain from threads.
            affine1: Affine::new(init.w1, init.b1, batch, false, threads),
            relu1: Relu::new(batch, hidden),
            affine2: Affine::new(init.w2, init.b2, batch, true, 1),
            last: SoftmaxWithLoss::new(batch, classes),
            x_batch: Array2::zeros((batch, features)),
            t_batch: vec![0; batch],
            train_x,
            train_y,
            lr: T::from(lr).expect("lr is representable"),
            threads,
            phase_seconds: None,
        })
    }

    /// Time each phase of every following step (costs four clock reads per step).
    pub fn enable_profiling(&mut self) {
        self.phase_seconds = Some([0.0; 4]);
    }

    /// Seconds per phase since profiling was enabled, or None if it is off.
    pub fn phase_times(&self) -> Option<Vec<(&'static str, f64)>> {
        self.phase_seconds
            .map(|seconds| PHASES.iter().copied().zip(seconds).collect())
    }

    pub fn batch(&self) -> usize {
        self.t_batch.len()
    }

    /// One SGD step per row of `batch_indices`; returns the mean loss. Allocates nothing.
    pub fn train_steps(&mut self, batch_indices: ArrayView2<i32>) -> Result<f64, NetError> {
        let (steps, batch) = batch_indices.dim();
        if batch != self.batch() {
            return error(format!(
                "batch_indices rows hold {batch} indices, but the net was set up for batch {}",
                self.batch()
            ));
        }
        let rows = self.train_x.nrows();
        if let Some(bad) = batch_indices
            .iter()
            .find(|&&i| usize::try_from(i).map_or(true, |i| i >= rows))
        {
            return error(format!(
                "batch index {bad} is outside the training set (0..{rows})"
            ));
        }
        if steps == 0 {
            return Ok(0.0);
        }
        let mut total = 0.0;
        for indices in batch_indices.rows() {
            total += self.step(indices).to_f64().unwrap_or(f64::NAN);
        }
        Ok(total / steps as f64)
    }

    fn step(&mut self, indices: ArrayView1<i32>) -> T {
        let profiling = self.phase_seconds.is_some();
        let mut marks = [None; 5];
        let mut mark = |phase: usize| {
            if profiling {
                marks[phase] = Some(Instant::now());
            }
        };
        mark(0);
        for ((mut row, label), &index) in self
            .x_batch
            .rows_mut()
            .into_iter()
            .zip(self.t_batch.iter_mut())
            .zip(indices)
        {
            let index = index as usize; // checked non-negative and in range by train_steps
            row.assign(&self.train_x.row(index));
            *label = self.train_y[index];
        }

        mark(1);
        self.affine1.forward(self.x_batch.view());
        self.relu1.forward(self.affine1.output());
        self.affine2.forward(self.relu1.output());
        let loss = self.last.forward(self.affine2.output(), &self.t_batch);

        mark(2);
        self.last.backward(&self.t_batch);
        self.affine2
            .backward(self.relu1.output(), self.last.input_grad());
        self.relu1
            .backward(self.affine1.output(), self.affine2.input_grad());
        self.affine1
            .backward(self.x_batch.view(), self.relu1.input_grad());

        mark(3);
        self.affine1.update(self.lr);
        self.affine2.update(self.lr);
        mark(4);
        if let (Some(seconds), [Some(t0), Some(t1), Some(t2), Some(t3), Some(t4)]) =
            (self.phase_seconds.as_mut(), marks)
        {
            for (slot, (start, end)) in
                seconds
                    .iter_mut()
                    .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)])
            {
                *slot += (end - start).as_secs_f64();
            }
        }
        loss
    }

    /// Class ids for `x`, computed in blocks so memory stays bounded for any number of rows.
    pub fn predict(&self, x: ArrayView2<T>) -> Result<Vec<i64>, NetError> {
        let features = self.affine1.w.nrows();
        if x.ncols() != features {
            return error(format!(
                "x has {} features per row but the net expects {features}",
                x.ncols()
            ));
        }
        const BLOCK: usize = 8192;
        let mut classes = Vec::with_capacity(x.nrows());
        for block in x.axis_chunks_iter(Axis(0), BLOCK) {
            let mut hidden = Array2::zeros((block.nrows(), self.affine1.w.ncols()));
            affine_into(
                block,
                self.affine1.w.view(),
                &self.affine1.b,
                hidden.view_mut(),
                self.threads,
            );
            hidden.mapv_inplace(|v| if v <= T::zero() { T::zero() } else { v });
            let mut scores = Array2::zeros((block.nrows(), self.affine2.w.ncols()));
            affine_into(
                hidden.view(),
                self.affine2.w.view(),
                &self.affine2.b,
                scores.view_mut(),
                1,
            );
            classes.extend(scores.rows().into_iter().map(|row| argmax(row) as i64));
        }
        Ok(classes)
    }

    pub fn params(&self) -> InitParams<T> {
        InitParams {
            w1: self.affine1.w.clone(),
            b1: self.affine1.b.clone(),
            w2: self.affine2.w.clone(),
            b2: self.affine2.b.clone(),
        }
    }
}

/// Index of the first maximum, as NumPy's argmax.
fn argmax<T: Scalar>(row: ArrayView1<T>) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array};

    fn tiny_net(threads: usize) -> TwoLayerNet<f32> {
        let init = InitParams {
            w1: Array::from_shape_fn((4, 3), |(i, j)| ((i + 2 * j) as f32 * 0.7).sin() * 0.1),
            b1: Array1::zeros(3),
            w2: Array::from_shape_fn((3, 10), |(i, j)| ((i * 10 + j) as f32).cos() * 0.1),
            b2: Array1::zeros(10),
        };
        let x = Array::from_shape_fn((8, 4), |(i, j)| ((i * 4 + j) % 5) as f32 / 4.0);
        let y = Array1::from_iter((0..8).map(|i| (i % 10) as i64));
        TwoLayerNet::new(init, x, y.view(), 0.5, 2, threads).unwrap()
    }

    #[test]
    fn training_lowers_the_loss() {
        let mut net = tiny_net(1);
        let indices = Array::from_shape_fn((50, 2), |(i, j)| ((i * 2 + j) % 8) as i32);
        let first = net
            .train_steps(indices.slice(ndarray::s![..1, ..]))
            .unwrap();
        for _ in 0..20 {
            net.train_steps(indices.view()).unwrap();
        }
        let later = net
            .train_steps(indices.slice(ndarray::s![..1, ..]))
            .unwrap();
        assert!(later < first, "loss went from {first} to {later}");
    }

    #[test]
    fn threads_do_not_change_the_result_beyond_rounding() {
        let (mut one, mut two) = (tiny_net(1), tiny_net(2));
        let indices = Array::from_shape_fn((30, 2), |(i, j)| ((i * 3 + j) % 8) as i32);
        one.train_steps(indices.view()).unwrap();
        two.train_steps(indices.view()).unwrap();
        let diff = (&one.params().w1 - &two.params().w1).mapv(f32::abs);
        assert!(diff.iter().all(|&d| d < 1e-6));
    }

    #[test]
    fn profiling_times_every_phase_only_when_enabled() {
        let mut net = tiny_net(1);
        let indices = Array::from_shape_fn((20, 2), |(i, j)| ((i + j) % 8) as i32);
        net.train_steps(indices.view()).unwrap();
        assert!(net.phase_times().is_none());
        net.enable_profiling();
        net.train_steps(indices.view()).unwrap();
        let phases = net.phase_times().unwrap();
        assert_eq!(phases.iter().map(|p| p.0).collect::<Vec<_>>(), PHASES);
        assert!(phases.iter().all(|&(_, s)| s > 0.0), "{phases:?}");
    }

    #[test]
    fn bad_indices_are_errors_not_panics() {
        let mut net = tiny_net(1);
        let err = net.train_steps(array![[0, 8]].view()).unwrap_err();
        assert_eq!(err.0, "batch index 8 is outside the training set (0..8)");
        assert!(net.train_steps(array![[0, -1]].view()).is_err());
        let err = net.train_steps(array![[0, 1, 2]].view()).unwrap_err();
        assert!(err.0.contains("set up for batch 2"), "{err}");
    }

    #[test]
    fn bad_shapes_and_labels_are_errors() {
        let init = || InitParams {
            w1: Array2::<f32>::zeros((4, 3)),
            b1: Array1::zeros(3),
            w2: Array2::zeros((3, 10)),
            b2: Array1::zeros(10),
        };
        let x = Array2::<f32>::zeros((2, 4));
        let err = TwoLayerNet::new(init(), x.clone(), array![0, 10].view(), 0.1, 1, 1);
        assert!(err.err().unwrap().0.contains("label outside 0..10"));
        let err = TwoLayerNet::new(
            init(),
            Array2::zeros((2, 5)),
            array![0, 1].view(),
            0.1,
            1,
            1,
        );
        assert!(err.err().unwrap().0.contains("5 features"));
        let net = TwoLayerNet::new(init(), x, array![0, 1].view(), 0.1, 1, 1).unwrap();
        assert!(net.predict(Array2::zeros((3, 7)).view()).is_err());
    }

    #[test]
    fn predict_agrees_with_the_training_forward_pass() {
        let mut net = tiny_net(1);
        let indices = Array::from_shape_fn((30, 2), |(i, j)| ((i * 3 + j) % 8) as i32);
        net.train_steps(indices.view()).unwrap(); // weights the test did not choose
                                                  // More rows than one predict block, so the blocking is exercised too.
        let x = Array::from_shape_fn((20_000, 4), |(i, j)| ((i * 5 + j * 3) % 11) as f32 / 10.0);
        let classes = net.predict(x.view()).unwrap();
        // The book's forward pass written out: argmax of relu(x·W1 + b1)·W2 + b2.
        let p = net.params();
        let hidden = (x.dot(&p.w1) + &p.b1).mapv(|v| v.max(0.0));
        let logits = hidden.dot(&p.w2) + &p.b2;
        assert_eq!(classes.len(), logits.nrows());
        for (row, &class) in logits.rows().into_iter().zip(&classes) {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            assert_eq!(class, best.0 as i64, "logits {row}");
        }
        let distinct: std::collections::HashSet<_> = classes.iter().collect();
        assert!(
            distinct.len() > 1,
            "a constant prediction would pass trivially"
        );
    }
}
