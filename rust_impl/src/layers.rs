//! The book's layers (ch05), mirroring `impls/numpy_scratch.py` one for one.
//!
//! Each layer owns its output and gradient buffers, sized once for the batch; forward and backward
//! write into them and allocate nothing. Inputs are passed to `backward` again rather than kept
//! as copies (the NumPy layers keep a reference instead).

use ndarray::{Array1, Array2, ArrayView2, Axis, ShapeBuilder, Zip};

use crate::linalg::{matmul_into_banded, Scalar};

/// A layer with parameters updated by plain SGD (the parameter-free ones keep the defaults).
pub trait Layer<T: Scalar> {
    /// Computes this layer's output from `input` into its own buffer.
    fn forward(&mut self, input: ArrayView2<T>);
    fn output(&self) -> ArrayView2<'_, T>;
    /// From the gradient of the loss w.r.t. the output, the gradients w.r.t. the parameters and,
    /// if this layer needs it, w.r.t. the input. `input` is what `forward` last saw.
    fn backward(&mut self, input: ArrayView2<T>, dout: ArrayView2<T>);
    /// The gradient w.r.t. the input from the last `backward`.
    fn input_grad(&self) -> ArrayView2<'_, T>;
    /// Plain SGD: `param -= lr * grad`.
    fn update(&mut self, _lr: T) {}
}

/// `x · W + b`.
pub struct Affine<T: Scalar> {
    pub w: Array2<T>,
    pub b: Array1<T>,
    pub dw: Array2<T>,
    pub db: Array1<T>,
    out: Array2<T>,
    /// None for the first layer: nothing uses the gradient w.r.t. the images.
    dx: Option<Array2<T>>,
    /// Thread budget of this layer's matrix products.
    threads: usize,
}

impl<T: Scalar> Affine<T> {
    pub fn new(
        w: Array2<T>,
        b: Array1<T>,
        batch: usize,
        needs_input_grad: bool,
        threads: usize,
    ) -> Self {
        let (inputs, outputs) = w.dim();
        // Weights and their gradient are kept column-major (each output's weights contiguous):
        // measured with gemm on the 784×50 layer, x·W costs about the same either way, but
        // xᵀ·dout into a column-major dW is ~15 % faster than into a row-major one, and the
        // update then runs over two arrays of the same order.
        let mut w_col_major = Array2::zeros((inputs, outputs).f());
        w_col_major.assign(&w);
        Affine {
            dw: Array2::zeros((inputs, outputs).f()),
            db: Array1::zeros(outputs),
            out: Array2::zeros((batch, outputs)),
            dx: needs_input_grad.then(|| Array2::zeros((batch, inputs))),
            w: w_col_major,
            b,
            threads,
        }
    }
}

/// `out = input · w + b`, shared by training (into a layer's buffer) and prediction.
pub fn affine_into<T: Scalar>(
    input: ArrayView2<T>,
    w: ArrayView2<T>,
    b: &Array1<T>,
    mut out: ndarray::ArrayViewMut2<T>,
    threads: usize,
) {
    // Start from the bias rows and let gemm add the product: one pass over `out` fewer, and the
    // same single rounding per element as NumPy's `x @ W + b`.
    let dim = out.dim();
    out.assign(
        &b.broadcast(dim)
            .expect("bias length equals the output width"),
    );
    matmul_into_banded(input, w, out, true, threads);
}

impl<T: Scalar> Layer<T> for Affine<T> {
    fn forward(&mut self, input: ArrayView2<T>) {
        affine_into(
            input,
            self.w.view(),
            &self.b,
            self.out.view_mut(),
            self.threads,
        );
    }

    fn output(&self) -> ArrayView2<'_, T> {
        self.out.view()
    }

    fn backward(&mut self, input: ArrayView2<T>, dout: ArrayView2<T>) {
        matmul_into_banded(input.t(), dout, self.dw.view_mut(), false, self.threads);
        Zip::from(&mut self.db)
            .and(dout.axis_iter(Axis(1)))
            .for_each(|db, column| *db = column.sum());
        if let Some(dx) = self.dx.as_mut() {
            matmul_into_banded(dout, self.w.t(), dx.view_mut(), false, self.threads);
        }
    }

    fn input_grad(&self) -> ArrayView2<'_, T> {
        self.dx
            .as_ref()
            .expect("input_grad of a layer built without needs_input_grad")
            .view()
    }

    fn update(&mut self, lr: T) {
        Zip::from(&mut self.w)
            .and(&self.dw)
            .for_each(|w, &dw| *w = *w - lr * dw);
        Zip::from(&mut self.b)
            .and(&self.db)
            .for_each(|b, &db| *b = *b - lr * db);
    }
}

/// `max(x, 0)`; its backward passes the gradient where the input was positive.
pub struct Relu<T: Scalar> {
    out: Array2<T>,
    dx: Array2<T>,
}

impl<T: Scalar> Relu<T> {
    pub fn new(batch: usize, width: usize) -> Self {
        Relu {
            out: Array2::zeros((batch, width)),
            dx: Array2::zeros((batch, width)),
        }
    }
}

impl<T: Scalar> Layer<T> for Relu<T> {
    fn forward(&mut self, input: ArrayView2<T>) {
        Zip::from(&mut self.out)
            .and(input)
            .for_each(|out, &x| *out = if x <= T::zero() { T::zero() } else { x });
    }

    fn output(&self) -> ArrayView2<'_, T> {
        self.out.view()
    }

    fn backward(&mut self, input: ArrayView2<T>, dout: ArrayView2<T>) {
        Zip::from(&mut self.dx)
            .and(input)
            .and(dout)
            .for_each(|dx, &x, &d| *dx = if x <= T::zero() { T::zero() } else { d });
    }

    fn input_grad(&self) -> ArrayView2<'_, T> {
        self.dx.view()
    }
}

/// Softmax followed by the cross-entropy loss on integer labels (the book's last layer).
pub struct SoftmaxWithLoss<T: Scalar> {
    y: Array2<T>,
    dx: Array2<T>,
}

/// The book adds 1e-7 inside the log so a zero probability gives a large loss, not infinity.
const LOG_EPSILON: f64 = 1e-7;

impl<T: Scalar> SoftmaxWithLoss<T> {
    pub fn new(batch: usize, classes: usize) -> Self {
        SoftmaxWithLoss {
            y: Array2::zeros((batch, classes)),
            dx: Array2::zeros((batch, classes)),
        }
    }

    /// Mean cross-entropy of softmax(`scores`) against `labels`; keeps the probabilities.
    pub fn forward(&mut self, scores: ArrayView2<T>, labels: &[usize]) -> T {
        softmax_into(scores, &mut self.y);
        let epsilon = T::from(LOG_EPSILON).expect("1e-7 is representable");
        let total = labels
            .iter()
            .enumerate()
            .fold(T::zero(), |sum, (row, &label)| {
                sum - (self.y[[row, label]] + epsilon).ln()
            });
        total / T::from(labels.len()).expect("batch size is representable")
    }

    /// `(y - onehot(labels)) / batch`.
    pub fn backward(&mut self, labels: &[usize]) {
        let batch = T::from(labels.len()).expect("batch size is representable");
        self.dx.assign(&self.y);
        for (row, &label) in labels.iter().enumerate() {
            self.dx[[row, label]] = self.dx[[row, label]] - T::one();
        }
        self.dx.mapv_inplace(|v| v / batch);
    }

    pub fn input_grad(&self) -> ArrayView2<'_, T> {
        self.dx.view()
    }
}

/// Row-wise softmax; subtracting each row's maximum keeps `exp` finite for large scores.
pub fn softmax_into<T: Scalar>(scores: ArrayView2<T>, y: &mut Array2<T>) {
    Zip::from(y.rows_mut())
        .and(scores.rows())
        .for_each(|mut y_row, s_row| {
            let max = s_row.fold(T::neg_infinity(), |m, &v| m.max(v));
            y_row.zip_mut_with(&s_row, |y, &s| *y = (s - max).exp());
            let sum = y_row.sum();
            y_row.mapv_inplace(|v| v / sum);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A small two-layer net's loss as a function of all its parameters, in f64.
    struct Tiny {
        a1: Affine<f64>,
        relu: Relu<f64>,
        a2: Affine<f64>,
        last: SoftmaxWithLoss<f64>,
        x: Array2<f64>,
        t: Vec<usize>,
    }

    impl Tiny {
        fn new() -> Self {
            let w1 =
                Array2::from_shape_fn((4, 5), |(i, j)| ((i * 5 + j) as f64 * 0.37).sin() * 0.3);
            let w2 =
                Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f64 * 0.71).cos() * 0.3);
            let b1 = Array1::from_shape_fn(5, |i| i as f64 * 0.01 - 0.02);
            let b2 = Array1::from_shape_fn(3, |i| i as f64 * -0.03);
            let x = Array2::from_shape_fn((6, 4), |(i, j)| ((i * 4 + j) as f64 * 1.3).sin());
            Tiny {
                a1: Affine::new(w1, b1, 6, false, 1),
                relu: Relu::new(6, 5),
                a2: Affine::new(w2, b2, 6, true, 1),
                last: SoftmaxWithLoss::new(6, 3),
                x,
                t: vec![0, 2, 1, 1, 0, 2],
            }
        }

        fn loss(&mut self) -> f64 {
            self.a1.forward(self.x.view());
            self.relu.forward(self.a1.output());
            self.a2.forward(self.relu.output());
            self.last.forward(self.a2.output(), &self.t)
        }

        fn backward(&mut self) {
            self.last.backward(&self.t);
            self.a2.backward(self.relu.output(), self.last.input_grad());
            self.relu.backward(self.a1.output(), self.a2.input_grad());
            self.a1.backward(self.x.view(), self.relu.input_grad());
        }
    }

    fn check(analytic: &[f64], numeric: &[f64], what: &str) {
        for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
            assert!(
                (a - n).abs() <= 1e-6 + 1e-5 * n.abs(),
                "{what}[{i}]: analytic {a} vs numerical {n}"
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut net = Tiny::new();
        net.loss();
        net.backward();
        let h = 1e-6;
        let grads = [
            net.a1.dw.iter().copied().collect::<Vec<_>>(),
            net.a1.db.to_vec(),
            net.a2.dw.iter().copied().collect(),
            net.a2.db.to_vec(),
        ];
        for (which, analytic) in grads.iter().enumerate() {
            let mut numeric = Vec::new();
            for i in 0..analytic.len() {
                let nudge = |net: &mut Tiny, delta: f64| {
                    let slot = match which {
                        0 => net.a1.w.iter_mut().nth(i),
                        1 => net.a1.b.iter_mut().nth(i),
                        2 => net.a2.w.iter_mut().nth(i),
                        _ => net.a2.b.iter_mut().nth(i),
                    };
                    *slot.unwrap() += delta;
                };
                nudge(&mut net, h);
                let plus = net.loss();
                nudge(&mut net, -2.0 * h);
                let minus = net.loss();
                nudge(&mut net, h);
                numeric.push((plus - minus) / (2.0 * h));
            }
            check(analytic, &numeric, ["dW1", "db1", "dW2", "db2"][which]);
        }
    }

    #[test]
    fn hidden_input_gradient_matches_finite_differences() {
        let mut net = Tiny::new();
        net.loss();
        net.backward();
        let analytic: Vec<f64> = net.a2.input_grad().iter().copied().collect();
        let relu_out = net.relu.output().to_owned();
        let h = 1e-6;
        let mut numeric = Vec::new();
        for i in 0..relu_out.len() {
            let mut loss_at = |delta: f64| {
                let mut shifted = relu_out.clone();
                *shifted.iter_mut().nth(i).unwrap() += delta;
                net.a2.forward(shifted.view());
                net.last.forward(net.a2.output(), &net.t)
            };
            numeric.push((loss_at(h) - loss_at(-h)) / (2.0 * h));
        }
        check(&analytic, &numeric, "dA");
    }

    #[test]
    fn softmax_of_large_scores_is_finite() {
        let scores = array![
            [1000.0f32, 0.0, -1000.0],
            [3e38, 3e38, 0.0],
            [-3e38, 0.0, 1.0]
        ];
        let mut y = Array2::zeros((3, 3));
        softmax_into(scores.view(), &mut y);
        assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
        for row in y.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
        }
        let mut last = SoftmaxWithLoss::<f32>::new(3, 3);
        let loss = last.forward(scores.view(), &[2, 0, 1]);
        assert!(loss.is_finite());
    }

    #[test]
    fn relu_blocks_gradient_where_input_was_not_positive() {
        let x = array![[-1.0f64, 0.0, 2.0]];
        let mut relu = Relu::new(1, 3);
        relu.forward(x.view());
        assert_eq!(relu.output(), array![[0.0, 0.0, 2.0]]);
        relu.backward(x.view(), array![[5.0, 6.0, 7.0]].view());
        assert_eq!(relu.input_grad(), array![[0.0, 0.0, 7.0]]);
    }
}
