//! The book's layers (ch05) as a plain ndarray port, the way a published Rust port of this
//! network wrote them: `Affine`, `Relu` and `SoftmaxWithLoss` holding owned arrays, products
//! through ndarray's own `dot`, a new array for every intermediate, no kernels of our own, no
//! sparsity, no threads of our own. It is the baseline the tuned net (net.rs) is measured
//! against: what a straightforward port gets from the language and ndarray alone.
//!
//! The layers are generic over the array dimension `D` they pass between them:
//! - `Ix2` (`rust-ndarray`): `Array2` throughout, as the port's second version had it;
//! - `IxDyn` (`rust-ndarray-dyn`): `ArrayD` between the layers, each layer converting with
//!   `into_dimensionality` where it needs two axes, as the port's first version did.
//!
//! Threads: ndarray's `dot` is matrixmultiply's GEMM, and the only thread control ndarray offers
//! for it is matrixmultiply's `threading` feature (enabled here through ndarray's
//! `matrixmultiply-threading`), which reads `MATMUL_NUM_THREADS` once per process (at most 4
//! threads; by default the physical cores) and splits a product only when it is large enough.
//! The harness sets that variable to the thread budget before the worker starts.
//!
//! As in `impls/numpy_scratch.py`, the first layer does not compute the gradient with respect to
//! the input images, which nothing uses; every parameter update is the book's.

use std::time::Instant;

use ndarray::{Array, Array1, Array2, ArrayView1, ArrayView2, Axis, Dimension, Ix2};

use crate::linalg::Scalar;
use crate::net::{checked_batches, checked_inputs, InitParams, NetError};

fn two_axes<T, D: Dimension>(x: Array<T, D>) -> Array2<T> {
    x.into_dimensionality::<Ix2>()
        .expect("the layers pass two-axis arrays")
}

fn back_to<T, D: Dimension>(x: Array2<T>) -> Array<T, D> {
    x.into_dimensionality::<D>()
        .expect("a two-axis array fits D (Ix2 or IxDyn)")
}

/// `x · W + b`, keeping `x` for the weight gradient.
pub struct Affine<T: Scalar> {
    pub w: Array2<T>,
    pub b: Array1<T>,
    x: Option<Array2<T>>,
    pub dw: Array2<T>,
    pub db: Array1<T>,
    needs_input_grad: bool,
}

impl<T: Scalar> Affine<T> {
    pub fn new(w: Array2<T>, b: Array1<T>, needs_input_grad: bool) -> Self {
        let (dw, db) = (Array2::zeros(w.raw_dim()), Array1::zeros(b.raw_dim()));
        Affine {
            w,
            b,
            x: None,
            dw,
            db,
            needs_input_grad,
        }
    }

    pub fn forward<D: Dimension>(&mut self, x: Array<T, D>) -> Array<T, D> {
        let x = two_axes(x);
        let out = x.dot(&self.w) + &self.b;
        self.x = Some(x);
        back_to(out)
    }

    /// The gradient w.r.t. the input (None for a layer that does not need it); stores dW, db.
    pub fn backward<D: Dimension>(&mut self, dout: Array<T, D>) -> Option<Array<T, D>> {
        let dout = two_axes(dout);
        let x = self.x.as_ref().expect("forward runs before backward");
        self.dw = x.t().dot(&dout);
        self.db = dout.sum_axis(Axis(0));
        self.needs_input_grad
            .then(|| back_to(dout.dot(&self.w.t())))
    }

    /// The book's SGD step: `W -= lr · dW`, `b -= lr · db`.
    pub fn update(&mut self, lr: T) {
        self.w.scaled_add(-lr, &self.dw);
        self.b.scaled_add(-lr, &self.db);
    }
}

/// `max(0, x)`, keeping where `x <= 0` for the backward pass.
pub struct Relu<D: Dimension> {
    mask: Option<Array<bool, D>>,
}

impl<D: Dimension> Relu<D> {
    pub fn new() -> Self {
        Relu { mask: None }
    }

    pub fn forward<T: Scalar>(&mut self, x: Array<T, D>) -> Array<T, D> {
        let mask = x.mapv(|v| v <= T::zero());
        let mut out = x;
        out.zip_mut_with(&mask, |v, &off| {
            if off {
                *v = T::zero();
            }
        });
        self.mask = Some(mask);
        out
    }

    pub fn backward<T: Scalar>(&mut self, dout: Array<T, D>) -> Array<T, D> {
        let mask = self.mask.as_ref().expect("forward runs before backward");
        let mut dx = dout;
        dx.zip_mut_with(mask, |v, &off| {
            if off {
                *v = T::zero();
            }
        });
        dx
    }
}

impl<D: Dimension> Default for Relu<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// Softmax (with the row maximum subtracted, to keep `exp` finite) over each row.
pub fn softmax<T: Scalar>(x: &Array2<T>) -> Array2<T> {
    let mut y = x.clone();
    for mut row in y.rows_mut() {
        let max = row.fold(T::neg_infinity(), |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
    y
}

/// Softmax + cross-entropy on integer labels, `-Σ log(y[t] + 1e-7) / batch`.
pub struct SoftmaxWithLoss<T: Scalar> {
    y: Array2<T>,
    t: Vec<usize>,
}

impl<T: Scalar> SoftmaxWithLoss<T> {
    pub fn new() -> Self {
        SoftmaxWithLoss {
            y: Array2::zeros((0, 0)),
            t: Vec::new(),
        }
    }

    pub fn forward<D: Dimension>(&mut self, x: Array<T, D>, t: Vec<usize>) -> T {
        self.y = softmax(&two_axes(x));
        let delta = T::from(1e-7).expect("1e-7 is a float");
        let sum = t.iter().enumerate().fold(T::zero(), |acc, (row, &class)| {
            acc + (self.y[[row, class]] + delta).ln()
        });
        self.t = t;
        -sum / T::from(self.t.len()).expect("a batch size is a float")
    }

    /// `(y − onehot(t)) / batch`.
    pub fn backward<D: Dimension>(&self) -> Array<T, D> {
        let batch = T::from(self.t.len()).expect("a batch size is a float");
        let mut dx = self.y.clone();
        for (row, &class) in self.t.iter().enumerate() {
            dx[[row, class]] = dx[[row, class]] - T::one();
        }
        back_to(dx / batch)
    }
}

impl<T: Scalar> Default for SoftmaxWithLoss<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds per phase of a step, summed over the steps since profiling was enabled.
#[derive(Default, Clone, Copy)]
struct Phases {
    batch: f64,
    forward: f64,
    backward: f64,
    update: f64,
}

/// The two-layer net of the book, built from the layers above, trained on the caller's batches.
pub struct PlainNet<T: Scalar, D: Dimension> {
    affine1: Affine<T>,
    relu: Relu<D>,
    affine2: Affine<T>,
    last: SoftmaxWithLoss<T>,
    train_x: Array2<T>,
    train_y: Vec<usize>,
    lr: T,
    batch: usize,
    phases: Option<Phases>,
}

impl<T: Scalar, D: Dimension> PlainNet<T, D> {
    pub fn new(
        init: InitParams<T>,
        train_x: Array2<T>,
        train_y: ArrayView1<i64>,
        lr: f64,
        batch: usize,
    ) -> Result<Self, NetError> {
        let train_y = checked_inputs(&init, &train_x, train_y, lr, batch)?;
        Ok(PlainNet {
            affine1: Affine::new(init.w1, init.b1, false),
            relu: Relu::new(),
            affine2: Affine::new(init.w2, init.b2, true),
            last: SoftmaxWithLoss::new(),
            train_x,
            train_y,
            lr: T::from(lr).expect("a learning rate is a float"),
            batch,
            phases: None,
        })
    }

    pub fn enable_profiling(&mut self) {
        self.phases = Some(Phases::default());
    }

    pub fn phase_times(&self) -> Option<Vec<(&'static str, f64)>> {
        self.phases.map(|p| {
            vec![
                ("batch", p.batch),
                ("forward", p.forward),
                ("backward", p.backward),
                ("update", p.update),
            ]
        })
    }

    /// One SGD step per row of `batch_indices`; the mean of the steps' losses.
    pub fn train_steps(&mut self, batch_indices: ArrayView2<i32>) -> Result<f64, NetError> {
        let steps = checked_batches(batch_indices, self.batch, self.train_x.nrows())?;
        if steps == 0 {
            return Ok(0.0);
        }
        // Checked above: every index is in range and not negative.
        let indices: Vec<usize> = batch_indices.iter().map(|&i| i as usize).collect();
        let mut total = 0.0;
        for step in indices.chunks(self.batch) {
            total += self.step(step).to_f64().expect("a loss is a float");
        }
        Ok(total / steps as f64)
    }

    fn step(&mut self, indices: &[usize]) -> T {
        let start = Instant::now();
        let x: Array<T, D> = back_to(self.train_x.select(Axis(0), indices));
        let t = indices.iter().map(|&i| self.train_y[i]).collect();
        let gathered = Instant::now();

        let hidden = self.affine1.forward(x);
        let hidden = self.relu.forward(hidden);
        let scores = self.affine2.forward(hidden);
        let loss = self.last.forward(scores, t);
        let forward = Instant::now();

        let dout: Array<T, D> = self.last.backward();
        let dout = self
            .affine2
            .backward(dout)
            .expect("Affine 2 passes its gradient on");
        let dout = self.relu.backward(dout);
        self.affine1.backward(dout);
        let backward = Instant::now();

        self.affine1.update(self.lr);
        self.affine2.update(self.lr);
        if let Some(phases) = &mut self.phases {
            let end = Instant::now();
            phases.batch += (gathered - start).as_secs_f64();
            phases.forward += (forward - gathered).as_secs_f64();
            phases.backward += (backward - forward).as_secs_f64();
            phases.update += (end - backward).as_secs_f64();
        }
        loss
    }

    /// Class ids for `x` (the argmax of the logits; the first maximum, as NumPy's).
    pub fn predict(&self, x: ArrayView2<T>) -> Result<Vec<i64>, NetError> {
        let features = self.affine1.w.nrows();
        if x.ncols() != features {
            return Err(NetError(format!(
                "x has {} features per row but the net expects {features}",
                x.ncols()
            )));
        }
        let hidden = (x.dot(&self.affine1.w) + &self.affine1.b).mapv(|v| v.max(T::zero()));
        let scores = hidden.dot(&self.affine2.w) + &self.affine2.b;
        Ok(scores
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as i64
            })
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TwoLayerNet;
    use ndarray::{Array, IxDyn};

    /// 13 inputs, 6 hidden units, batch 7, 40 rows; dense values, so the tuned net runs dense.
    fn init() -> InitParams<f64> {
        InitParams {
            w1: Array::from_shape_fn((13, 6), |(i, j)| ((i * 6 + j) as f64 * 0.9).sin() * 0.3),
            b1: Array1::from_shape_fn(6, |j| j as f64 * 0.01),
            w2: Array::from_shape_fn((6, 10), |(i, j)| ((i * 10 + j) as f64).cos() * 0.3),
            b2: Array1::zeros(10),
        }
    }

    fn data() -> (Array2<f64>, Array1<i64>) {
        let x = Array::from_shape_fn((40, 13), |(i, j)| ((i * 13 + j) as f64 * 0.37).sin());
        let y = Array1::from_iter((0..40).map(|i| (i * 7 % 10) as i64));
        (x, y)
    }

    fn plain<D: Dimension>() -> PlainNet<f64, D> {
        let (x, y) = data();
        PlainNet::new(init(), x, y.view(), 0.3, 7).unwrap()
    }

    fn batches() -> Array2<i32> {
        Array::from_shape_fn((50, 7), |(i, j)| ((i * 11 + j * 5) % 40) as i32)
    }

    #[test]
    fn array2_and_arrayd_layers_compute_the_same_bits() {
        let (mut fixed, mut dynamic) = (plain::<Ix2>(), plain::<IxDyn>());
        let loss_fixed = fixed.train_steps(batches().view()).unwrap();
        let loss_dynamic = dynamic.train_steps(batches().view()).unwrap();
        assert_eq!(loss_fixed.to_bits(), loss_dynamic.to_bits());
        let (a, b) = (fixed.params(), dynamic.params());
        assert!(a
            .w1
            .iter()
            .zip(&b.w1)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a
            .w2
            .iter()
            .zip(&b.w2)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a
            .b1
            .iter()
            .zip(&b.b1)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a
            .b2
            .iter()
            .zip(&b.b2)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    #[test]
    fn the_plain_port_trains_as_the_tuned_net_does() {
        let (x, y) = data();
        let mut tuned = TwoLayerNet::new(init(), x, y.view(), 0.3, 7, 1).unwrap();
        let mut port = plain::<Ix2>();
        let tuned_loss = tuned.train_steps(batches().view()).unwrap();
        let port_loss = port.train_steps(batches().view()).unwrap();
        assert!(
            (tuned_loss - port_loss).abs() < 1e-12,
            "{tuned_loss} vs {port_loss}"
        );
        let (a, b) = (tuned.params(), port.params());
        let moved = (&b.w1 - &init().w1).mapv(f64::abs).sum();
        assert!(moved > 1e-3, "training moved W1 by {moved} only");
        for (name, p, q) in [("W1", &a.w1, &b.w1), ("W2", &a.w2, &b.w2)] {
            let worst = (p - q).mapv(f64::abs).fold(0.0, |m: f64, &d| m.max(d));
            assert!(worst < 1e-12, "{name} differs by {worst}");
        }
        let (x, _) = data();
        assert_eq!(
            tuned.predict(x.view()).unwrap(),
            port.predict(x.view()).unwrap()
        );
    }

    #[test]
    fn profiling_times_every_phase() {
        let mut net = plain::<Ix2>();
        assert!(net.phase_times().is_none());
        net.enable_profiling();
        net.train_steps(batches().view()).unwrap();
        let phases = net.phase_times().unwrap();
        let names: Vec<_> = phases.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["batch", "forward", "backward", "update"]);
        assert!(phases.iter().all(|&(_, seconds)| seconds > 0.0));
    }
}
