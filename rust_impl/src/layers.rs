//! The book's layers (ch05), mirroring `impls/numpy_scratch.py`: `Affine`, `Relu` and
//! `SoftmaxWithLoss`, each with `forward` and `backward`.
//!
//! Two things differ from the book so that several threads can train one net (see net.rs):
//! - The rows of a batch are split among the threads, each with its own `Relu` and
//!   `SoftmaxWithLoss` (buffers sized once, nothing allocated per step). `Affine` holds only the
//!   parameters, which all threads share: its `forward` and `backward` write into the caller's
//!   buffers.
//! - `Affine::update` is the SGD step with the weight-gradient product folded in,
//!   `W -= lr · xᵀ·dout`, instead of storing dW and applying it in a second pass. W is kept in
//!   groups of input rows, each updated by one thread. The groups sit behind `RwLock`s: the
//!   threads take turns at the barriers of a step, so the locks are never contended, and they
//!   let the compiler check what a thread may write without `unsafe`.

use std::ops::Range;
use std::sync::RwLock;

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};

use crate::aligned::{per_line, Aligned2};
use crate::linalg::{matmul_into, matmul_with, Library, Scalar};
use crate::sparse::SparseRows;
use crate::team::share;

/// A thread's columns of the batch (its group's inputs) as the first layer's products take
/// them, with the buffers their update needs: a matrix, and the whole batch's `dout` in one
/// array (one product over all rows: a product per part of the batch measured slower in
/// development runs); or only the nonzero entries, for the sparse kernels (`Library::Sparse`),
/// which read `dout` where it is, and the buffer their update sums a block's gradient in.
pub enum GroupInputs<T> {
    Dense {
        x: Aligned2<T>,
        dout: Array2<T>,
    },
    Sparse {
        rows: SparseRows<T>,
        scratch: Vec<T>,
    },
}

/// `x · W + b`, with W (inputs × units) kept as `groups` blocks of consecutive input rows.
pub struct Affine<T: Scalar> {
    groups: Vec<RwLock<Aligned2<T>>>,
    group_rows: Vec<Range<usize>>,
    b: RwLock<Array1<T>>,
    /// Which crate computes `forward_group` and `update` (see `tune`).
    forward_library: Library,
    update_library: Library,
}

impl<T: Scalar> Affine<T> {
    /// W column-major (each unit's weights contiguous, each column on a cache-line boundary), as
    /// the own dense kernels need it (the sparse ones need it row-major: `use_libraries`); gemm
    /// and matrixmultiply take any layout. The groups split W's
    /// inputs in whole 64-byte lines where there are enough of them, so that every group's
    /// columns fill whole vectors.
    pub fn new(w: Array2<T>, b: Array1<T>, groups: usize) -> Self {
        let inputs = w.nrows();
        let groups = groups.clamp(1, inputs.max(1));
        let group_rows = (0..groups).map(|g| split::<T>(inputs, groups, g)).collect();
        Self::with_groups(w, b, group_rows)
    }

    /// `new`, with the groups splitting the work of the sparse products evenly: `nonzeros[i]`
    /// is how often input `i` is nonzero (`TrainingSet::nonzeros_per_column`), and each group
    /// takes about an equal share of the nonzeros. (Split in whole lines as `new` splits them,
    /// MNIST's 400 and 384 inputs hold 72 and 78 nonzero pixels per image.)
    pub fn balanced(w: Array2<T>, b: Array1<T>, groups: usize, nonzeros: &[usize]) -> Self {
        let inputs = w.nrows();
        assert_eq!(nonzeros.len(), inputs, "a count per input");
        let groups = groups.clamp(1, inputs.max(1));
        let group_rows = split_weighted(nonzeros, groups);
        Self::with_groups(w, b, group_rows)
    }

    fn with_groups(w: Array2<T>, b: Array1<T>, group_rows: Vec<Range<usize>>) -> Self {
        Affine {
            groups: group_rows
                .iter()
                .map(|rows| RwLock::new(Aligned2::from_view(w.slice(s![rows.clone(), ..]), true)))
                .collect(),
            group_rows,
            b: RwLock::new(b),
            forward_library: Library::Gemm,
            update_library: Library::Gemm,
        }
    }

    /// Picks the code for `forward_group` and `update`: the own kernels wherever they run (both
    /// products on AVX-512, the forward one on AVX2: `Library::forward_kernel`); for the others
    /// it times the crates on group 0's shapes for `rows` batch rows and keeps the faster (a
    /// few ms; see `linalg`; scratch copies only, the parameters are left as they were).
    ///
    /// The own kernels are not timed against the crates: at 2 threads (400 inputs a group) the
    /// AVX-512 forward product is close to gemm's, the timing chose gemm in some runs of a
    /// session, and their rounding, and test accuracy, differed from the others'. The `kernels`
    /// example times each own kernel against a crate on the same buffers at 784 inputs and at
    /// 400; in every development run the kernels were the faster.
    pub fn tune(&mut self, rows: usize) {
        if Library::candidates::<T>().contains(&Library::Kernel) {
            self.use_libraries(Library::Kernel, Library::Kernel);
            return;
        }
        // W column-major, as the AVX2 kernel and the timing below take it.
        self.use_libraries(Library::Gemm, Library::Gemm);
        let w = self.groups[0].read().expect("no thread panicked").clone();
        let (inputs, units) = w.dim();
        // Laid out as the net lays out its buffers (`Affine::input_buffer`).
        let mut x = Self::input_buffer(rows, inputs);
        x.view_mut().fill(T::one());
        let dout = Array2::from_elem((rows, units), T::one());
        let mut out = Array2::zeros((rows, units));
        let forward = Library::forward_kernel::<T>().unwrap_or_else(|| {
            Library::fastest(&Library::CRATES, |library| {
                matmul_with(library, x.view(), w.view(), out.view_mut(), false, T::one());
            })
        });
        let mut scratch = w.clone();
        let tiny = T::from(1e-30).expect("representable");
        let update = Library::fastest(&Library::CRATES, |library| {
            matmul_with(
                library,
                x.view().t(),
                dout.view(),
                scratch.view_mut(),
                true,
                -tiny,
            );
        });
        self.use_libraries(forward, update);
    }

    /// A buffer for `rows` rows of a group's `inputs` inputs, laid out as the own kernels need
    /// it (each row on a cache-line boundary).
    pub fn input_buffer(rows: usize, inputs: usize) -> Aligned2<T> {
        Aligned2::zeros((rows, inputs), false)
    }

    /// Computes `forward_group` and `update` by these libraries from now on, instead of those
    /// `tune` picked: the sparse kernels (both products or neither), or for tests that compare
    /// them. W is laid out again as they need it (row-major for the sparse kernels, else
    /// column-major); the groups' inputs must then be gathered as `group_inputs_buffer` gives.
    ///
    /// # Panics
    /// When only one of the two is `Library::Sparse`.
    pub fn use_libraries(&mut self, forward: Library, update: Library) {
        let sparse = forward == Library::Sparse;
        assert_eq!(
            sparse,
            update == Library::Sparse,
            "the sparse kernels take both products or neither"
        );
        for group in &mut self.groups {
            let w = group.get_mut().expect("no thread panicked");
            if w.is_column_major() == sparse {
                *w = Aligned2::from_view(w.view(), !sparse);
            }
        }
        (self.forward_library, self.update_library) = (forward, update);
    }

    /// A buffer for `rows` rows of `group`'s inputs as the libraries in use take them.
    pub fn group_inputs_buffer(&self, group: usize, rows: usize) -> GroupInputs<T> {
        let inputs = self.group_inputs(group);
        if self.forward_library == Library::Sparse {
            GroupInputs::Sparse {
                rows: SparseRows::new(inputs, rows),
                scratch: Vec::new(),
            }
        } else {
            GroupInputs::Dense {
                x: Self::input_buffer(rows, inputs.len()),
                dout: Array2::zeros((rows, self.units())),
            }
        }
    }

    /// The crates that compute `forward_group` and `update`.
    pub fn libraries(&self) -> (Library, Library) {
        (self.forward_library, self.update_library)
    }

    pub fn units(&self) -> usize {
        self.b.read().expect("no thread panicked").len()
    }

    pub fn inputs(&self) -> usize {
        self.group_rows.last().map_or(0, |rows| rows.end)
    }

    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// `out = x · W + b`.
    pub fn forward(&self, x: ArrayView2<T>, mut out: ArrayViewMut2<T>) {
        // Start from the bias rows and let gemm add the product: one pass over `out` fewer.
        let b = self.b.read().expect("no thread panicked");
        let dim = out.dim();
        out.assign(
            &b.broadcast(dim)
                .expect("bias length equals the output width"),
        );
        for (group, rows) in self.groups.iter().zip(&self.group_rows) {
            let w = group.read().expect("no thread panicked");
            matmul_into(
                x.slice(s![.., rows.clone()]),
                w.view(),
                out.view_mut(),
                true,
                T::one(),
            );
        }
    }

    /// The inputs of `group` (columns of x, as `group_inputs` gives them) times that group's
    /// weights: one term of `x · W = Σ_g x_g · W_g`.
    ///
    /// # Panics
    /// When `x_group` is not what the library in use takes (`group_inputs_buffer`).
    pub fn forward_group(&self, group: usize, x_group: &GroupInputs<T>, out: ArrayViewMut2<T>) {
        let w = self.groups[group].read().expect("no thread panicked");
        match x_group {
            GroupInputs::Sparse { rows, .. } if self.forward_library == Library::Sparse => {
                T::sparse_forward(rows, &w, out);
            }
            GroupInputs::Dense { x, .. } if self.forward_library != Library::Sparse => matmul_with(
                self.forward_library,
                x.view(),
                w.view(),
                out,
                false,
                T::one(),
            ),
            _ => panic!("inputs gathered for another library than the forward product's"),
        }
    }

    /// `out = b + Σ_g terms[g]`: the forward pass from the terms of `forward_group`.
    pub fn sum_groups(&self, terms: &[ArrayView2<T>], mut out: ArrayViewMut2<T>) {
        let b = self.b.read().expect("no thread panicked");
        let dim = out.dim();
        out.assign(
            &b.broadcast(dim)
                .expect("bias length equals the output width"),
        );
        for term in terms {
            out.zip_mut_with(term, |o, &t| *o = *o + t);
        }
    }

    /// Which inputs (rows of W) `group` holds.
    pub fn group_inputs(&self, group: usize) -> Range<usize> {
        self.group_rows[group].clone()
    }

    /// `dx = dout · Wᵀ`, the gradient w.r.t. the input.
    pub fn backward(&self, dout: ArrayView2<T>, mut dx: ArrayViewMut2<T>) {
        for (group, rows) in self.groups.iter().zip(&self.group_rows) {
            let w = group.read().expect("no thread panicked");
            matmul_into(
                dout,
                w.view().t(),
                dx.slice_mut(s![.., rows.clone()]),
                false,
                T::one(),
            );
        }
    }

    /// SGD on the weights of `group`: `W_g -= lr · x_gᵀ · dout`, with `x_group` the group's
    /// inputs (`group_inputs` columns of the layer input) and `dout` the gradient w.r.t. the
    /// layer output for the same rows, in parts of consecutive rows.
    ///
    /// # Panics
    /// As `forward_group`, or when the parts' rows do not add up to x's.
    pub fn update(
        &self,
        group: usize,
        x_group: &mut GroupInputs<T>,
        dout: &[ArrayView2<T>],
        lr: T,
    ) {
        let mut w = self.groups[group].write().expect("no thread panicked");
        match x_group {
            GroupInputs::Sparse { rows, scratch } if self.update_library == Library::Sparse => {
                T::sparse_update(rows, dout, &mut w, -lr, scratch);
            }
            GroupInputs::Dense { x, dout: whole } if self.update_library != Library::Sparse => {
                let dout = match dout {
                    [only] => *only,
                    parts => {
                        let mut first = 0;
                        for part in parts {
                            let rows = first..first + part.nrows();
                            whole.slice_mut(s![rows.clone(), ..]).assign(part);
                            first = rows.end;
                        }
                        assert_eq!(first, whole.nrows(), "dout's parts cover the batch");
                        whole.view()
                    }
                };
                matmul_with(
                    self.update_library,
                    x.view().t(),
                    dout,
                    w.view_mut(),
                    true,
                    -lr,
                );
            }
            _ => panic!("inputs gathered for another library than the update's"),
        }
    }

    /// The book's parameter gradients for some rows of a batch: `dw = xᵀ · dout`,
    /// `db = Σ dout` over the rows. For the small second layer, whose gradients each thread
    /// computes for its own rows and `step` sums.
    pub fn gradients(
        x: ArrayView2<T>,
        dout: ArrayView2<T>,
        dw: ArrayViewMut2<T>,
        db: ArrayViewMut1<T>,
    ) {
        matmul_into(x.t(), dout, dw, false, T::one());
        Self::bias_gradient(dout, db);
    }

    /// `db = Σ dout` over the rows.
    pub fn bias_gradient(dout: ArrayView2<T>, mut db: ArrayViewMut1<T>) {
        db.fill(T::zero());
        // Row by row: the rows are contiguous, the columns are not.
        for row in dout.rows() {
            Zip::from(&mut db).and(row).for_each(|d, &g| *d = *d + g);
        }
    }

    /// Plain SGD from gradients computed elsewhere: `W -= lr · dw` and `b -= lr · db`, either
    /// left out when `None`.
    pub fn step(&self, dw: Option<ArrayView2<T>>, db: Option<ArrayView1<T>>, lr: T) {
        if let Some(dw) = dw {
            for (group, rows) in self.groups.iter().zip(&self.group_rows) {
                let mut w = group.write().expect("no thread panicked");
                Zip::from(w.view_mut())
                    .and(dw.slice(s![rows.clone(), ..]))
                    .for_each(|w, &g| *w = *w - lr * g);
            }
        }
        if let Some(db) = db {
            let mut b = self.b.write().expect("no thread panicked");
            Zip::from(&mut *b)
                .and(db)
                .for_each(|b, &g| *b = *b - lr * g);
        }
    }

    /// W joined from its groups.
    pub fn weights(&self) -> Array2<T> {
        let parts: Vec<_> = self
            .groups
            .iter()
            .map(|g| g.read().expect("no thread panicked").view().to_owned())
            .collect();
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).expect("groups share the unit count")
    }

    pub fn bias(&self) -> Array1<T> {
        self.b.read().expect("no thread panicked").clone()
    }
}

/// Group `part` of `parts` of `0..len`: whole cache lines of `T` each where there are at least
/// as many lines as groups (so the own kernels load whole vectors), else as `share`.
fn split<T>(len: usize, parts: usize, part: usize) -> Range<usize> {
    let line = per_line::<T>();
    let lines = len.div_ceil(line);
    if lines < parts {
        return share(len, parts, part);
    }
    let whole = share(lines, parts, part);
    whole.start * line..(whole.end * line).min(len)
}

/// `parts` consecutive groups of `weights`' indices, at least one each, with about an equal
/// share of the total weight each (each index also weighs 1, so that weights of 0 split evenly).
/// The groups are not cut at cache lines: the sparse kernels, their only user, take any.
fn split_weighted(weights: &[usize], parts: usize) -> Vec<Range<usize>> {
    let len = weights.len();
    assert!((1..=len).contains(&parts), "{parts} groups of {len} inputs");
    let total = weights.iter().map(|&w| w + 1).sum::<usize>() as f64;
    let mut ends = Vec::with_capacity(parts);
    let (mut end, mut below) = (0, 0.0);
    for part in 1..parts {
        let target = total * part as f64 / parts as f64;
        // An index goes to this group when more than half of its weight is below the target;
        // each group gets one at least, and leaves one for each group after it.
        let first_allowed = ends.last().map_or(0, |&e| e) + 1;
        while end < len - (parts - part)
            && (end < first_allowed || below + (weights[end] + 1) as f64 / 2.0 < target)
        {
            below += (weights[end] + 1) as f64;
            end += 1;
        }
        ends.push(end);
    }
    ends.push(len);
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

/// `max(x, 0)`; its backward passes the gradient where the input was positive.
pub struct Relu<T: Scalar> {
    out: Array2<T>,
    dx: Array2<T>,
}

impl<T: Scalar> Relu<T> {
    pub fn new(rows: usize, width: usize) -> Self {
        Relu {
            out: Array2::zeros((rows, width)),
            dx: Array2::zeros((rows, width)),
        }
    }

    pub fn forward(&mut self, input: ArrayView2<T>) {
        Zip::from(&mut self.out)
            .and(input)
            .for_each(|out, &x| *out = if x <= T::zero() { T::zero() } else { x });
    }

    pub fn output(&self) -> ArrayView2<'_, T> {
        self.out.view()
    }

    /// `input` is what `forward` last saw.
    pub fn backward(&mut self, input: ArrayView2<T>, dout: ArrayView2<T>) {
        Zip::from(&mut self.dx)
            .and(input)
            .and(dout)
            .for_each(|dx, &x, &d| *dx = if x <= T::zero() { T::zero() } else { d });
    }

    pub fn input_grad(&self) -> ArrayView2<'_, T> {
        self.dx.view()
    }
}

/// Softmax followed by the cross-entropy loss on integer labels (the book's last layer), for
/// some rows of a batch: the loss and its gradient are averaged over the whole batch.
pub struct SoftmaxWithLoss<T: Scalar> {
    y: Array2<T>,
    dx: Array2<T>,
    batch: T,
}

/// The book adds 1e-7 inside the log so a zero probability gives a large loss, not infinity.
const LOG_EPSILON: f64 = 1e-7;

impl<T: Scalar> SoftmaxWithLoss<T> {
    /// For `rows` rows of a batch of `batch` rows.
    pub fn new(rows: usize, classes: usize, batch: usize) -> Self {
        SoftmaxWithLoss {
            y: Array2::zeros((rows, classes)),
            dx: Array2::zeros((rows, classes)),
            batch: T::from(batch).expect("batch size is representable"),
        }
    }

    /// These rows' share of the batch's mean cross-entropy; keeps the probabilities.
    pub fn forward(&mut self, scores: ArrayView2<T>, labels: &[usize]) -> T {
        softmax_into(scores, &mut self.y);
        let epsilon = T::from(LOG_EPSILON).expect("1e-7 is representable");
        let total = labels
            .iter()
            .enumerate()
            .fold(T::zero(), |sum, (row, &label)| {
                sum - (self.y[[row, label]] + epsilon).ln()
            });
        total / self.batch
    }

    /// `(y - onehot(labels)) / batch`.
    pub fn backward(&mut self, labels: &[usize]) {
        self.dx.assign(&self.y);
        for (row, &label) in labels.iter().enumerate() {
            self.dx[[row, label]] = self.dx[[row, label]] - T::one();
        }
        let batch = self.batch;
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

    /// A small two-layer net's loss as a function of all its parameters, in f64, with the
    /// batch's rows split into two parts as two threads would hold them.
    struct Tiny {
        a1: Affine<f64>,
        a2: Affine<f64>,
        parts: Vec<Part>,
    }

    struct Part {
        x: Array2<f64>,
        t: Vec<usize>,
        hidden: Array2<f64>,
        relu: Relu<f64>,
        scores: Array2<f64>,
        last: SoftmaxWithLoss<f64>,
        dhidden: Array2<f64>,
    }

    impl Tiny {
        fn new(groups: usize) -> Self {
            let w1 =
                Array2::from_shape_fn((4, 5), |(i, j)| ((i * 5 + j) as f64 * 0.37).sin() * 0.3);
            let w2 =
                Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f64 * 0.71).cos() * 0.3);
            let b1 = Array1::from_shape_fn(5, |i| i as f64 * 0.01 - 0.02);
            let b2 = Array1::from_shape_fn(3, |i| i as f64 * -0.03);
            let x = Array2::from_shape_fn((6, 4), |(i, j)| ((i * 4 + j) as f64 * 1.3).sin());
            let t = [0, 2, 1, 1, 0, 2];
            let parts = [0..4, 4..6]
                .into_iter()
                .map(|rows| Part {
                    x: x.slice(s![rows.clone(), ..]).to_owned(),
                    t: t[rows.clone()].to_vec(),
                    hidden: Array2::zeros((rows.len(), 5)),
                    relu: Relu::new(rows.len(), 5),
                    scores: Array2::zeros((rows.len(), 3)),
                    last: SoftmaxWithLoss::new(rows.len(), 3, 6),
                    dhidden: Array2::zeros((rows.len(), 5)),
                })
                .collect();
            Tiny {
                a1: Affine::new(w1, b1, groups),
                a2: Affine::new(w2, b2, 1),
                parts,
            }
        }

        fn loss(&mut self) -> f64 {
            let mut total = 0.0;
            for p in &mut self.parts {
                self.a1.forward(p.x.view(), p.hidden.view_mut());
                p.relu.forward(p.hidden.view());
                self.a2.forward(p.relu.output(), p.scores.view_mut());
                total += p.last.forward(p.scores.view(), &p.t);
            }
            total
        }

        fn backward(&mut self) {
            for p in &mut self.parts {
                p.last.backward(&p.t);
                self.a2.backward(p.last.input_grad(), p.dhidden.view_mut());
                p.relu.backward(p.hidden.view(), p.dhidden.view());
            }
        }

        /// The gradients, read off an SGD step with lr 1: (W1, b1, W2, b2) before minus after.
        fn gradients(&mut self) -> [Vec<f64>; 4] {
            let before = [
                self.a1.weights(),
                self.a1.bias().insert_axis(Axis(0)),
                self.a2.weights(),
                self.a2.bias().insert_axis(Axis(0)),
            ];
            for g in 0..self.a1.groups() {
                let inputs = self.a1.group_inputs(g);
                let xs: Vec<_> = self
                    .parts
                    .iter()
                    .map(|p| p.x.slice(s![.., inputs.clone()]))
                    .collect();
                let x = ndarray::concatenate(Axis(0), &xs).expect("parts share the columns");
                let mut x_group = self.a1.group_inputs_buffer(g, x.nrows());
                let GroupInputs::Dense { x: buffer, .. } = &mut x_group else {
                    unreachable!("float64 is dense")
                };
                buffer.view_mut().assign(&x);
                let douts: Vec<_> = self.parts.iter().map(|p| p.relu.input_grad()).collect();
                self.a1.update(g, &mut x_group, &douts, 1.0);
            }
            let mut db1 = Array1::zeros(5);
            let (mut dw2, mut db2) = (Array2::zeros((5, 3)), Array1::zeros(3));
            for p in &self.parts {
                let mut part_db1 = Array1::zeros(5);
                Affine::bias_gradient(p.relu.input_grad(), part_db1.view_mut());
                db1 += &part_db1;
                let (mut part_dw2, mut part_db2) = (Array2::zeros((5, 3)), Array1::zeros(3));
                Affine::gradients(
                    p.relu.output(),
                    p.last.input_grad(),
                    part_dw2.view_mut(),
                    part_db2.view_mut(),
                );
                dw2 += &part_dw2;
                db2 += &part_db2;
            }
            self.a1.step(None, Some(db1.view()), 1.0);
            self.a2.step(Some(dw2.view()), Some(db2.view()), 1.0);
            let after = [
                self.a1.weights(),
                self.a1.bias().insert_axis(Axis(0)),
                self.a2.weights(),
                self.a2.bias().insert_axis(Axis(0)),
            ];
            std::array::from_fn(|i| (&before[i] - &after[i]).iter().copied().collect())
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

    /// Central differences of the loss w.r.t. every parameter of one tensor.
    fn numeric(groups: usize, which: usize) -> Vec<f64> {
        let h = 1e-6;
        let count = Tiny::new(groups).gradients()[which].len();
        (0..count)
            .map(|i| {
                let loss_at = |delta: f64| {
                    let fresh = Tiny::new(groups);
                    let mut params = [
                        fresh.a1.weights(),
                        fresh.a1.bias().insert_axis(Axis(0)),
                        fresh.a2.weights(),
                        fresh.a2.bias().insert_axis(Axis(0)),
                    ];
                    *params[which].iter_mut().nth(i).unwrap() += delta;
                    let [w1, b1, w2, b2] = params;
                    let mut net = Tiny {
                        a1: Affine::new(w1, b1.row(0).to_owned(), groups),
                        a2: Affine::new(w2, b2.row(0).to_owned(), 1),
                        parts: fresh.parts,
                    };
                    net.loss()
                };
                (loss_at(h) - loss_at(-h)) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn folded_updates_step_along_the_finite_difference_gradients() {
        for groups in [1, 2, 3] {
            let mut net = Tiny::new(groups);
            net.loss();
            net.backward();
            let analytic = net.gradients();
            for (which, name) in ["dW1", "db1", "dW2", "db2"].iter().enumerate() {
                check(
                    &analytic[which],
                    &numeric(groups, which),
                    &format!("{name}, {groups} groups"),
                );
            }
        }
    }

    #[test]
    fn hidden_input_gradient_matches_finite_differences() {
        let mut net = Tiny::new(1);
        net.loss();
        net.backward();
        let part = &net.parts[0];
        let analytic: Vec<f64> = part.dhidden.iter().copied().collect();
        let relu_out = part.relu.output().to_owned();
        let h = 1e-6;
        let mut numeric = Vec::new();
        for i in 0..relu_out.len() {
            let mut loss_at = |delta: f64| {
                let mut shifted = relu_out.clone();
                *shifted.iter_mut().nth(i).unwrap() += delta;
                let p = &mut net.parts[0];
                net.a2.forward(shifted.view(), p.scores.view_mut());
                p.last.forward(p.scores.view(), &p.t)
            };
            numeric.push((loss_at(h) - loss_at(-h)) / (2.0 * h));
        }
        check(&analytic, &numeric, "dA");
    }

    #[test]
    fn weighted_groups_hold_equal_shares_of_the_weight() {
        let ranges = |weights: &[usize], parts| split_weighted(weights, parts);
        // Each index weighs its weight plus 1: 1, 1, 11, 11, 1, 1 splits after the third.
        assert_eq!(ranges(&[0, 0, 10, 10, 0, 0], 2), [0..3, 3..6]);
        assert_eq!(ranges(&[0; 6], 3), [0..2, 2..4, 4..6]);
        // One heavy index does not leave a group empty.
        assert_eq!(ranges(&[100, 0, 0], 3), [0..1, 1..2, 2..3]);
        assert_eq!(ranges(&[0, 0, 100], 2), [0..2, 2..3]);
    }

    #[test]
    fn grouped_weights_give_the_same_forward_pass() {
        let w = Array2::from_shape_fn((7, 3), |(i, j)| (i * 3 + j) as f64 * 0.1);
        let b = array![0.5, -0.5, 1.0];
        let x = Array2::from_shape_fn((2, 7), |(i, j)| (i + j) as f64);
        let want = x.dot(&w) + &b;
        for groups in [1, 2, 3, 7, 9] {
            let layer = Affine::new(w.clone(), b.clone(), groups);
            assert_eq!(layer.weights(), w);
            let mut out = Array2::zeros((2, 3));
            layer.forward(x.view(), out.view_mut());
            assert!(
                (&out - &want).iter().all(|d| d.abs() < 1e-12),
                "{groups} groups: {out}"
            );
            let terms: Vec<Array2<f64>> = (0..layer.groups())
                .map(|g| {
                    let mut term = Array2::zeros((2, 3));
                    let inputs = layer.group_inputs(g);
                    let mut x_group = layer.group_inputs_buffer(g, 2);
                    let GroupInputs::Dense { x: buffer, .. } = &mut x_group else {
                        unreachable!("float64 is dense")
                    };
                    buffer.view_mut().assign(&x.slice(s![.., inputs]));
                    layer.forward_group(g, &x_group, term.view_mut());
                    term
                })
                .collect();
            let views: Vec<_> = terms.iter().map(|t| t.view()).collect();
            let mut summed = Array2::zeros((2, 3));
            layer.sum_groups(&views, summed.view_mut());
            assert!(
                (&summed - &want).iter().all(|d| d.abs() < 1e-12),
                "{groups} groups: {summed}"
            );
        }
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
        let mut last = SoftmaxWithLoss::<f32>::new(3, 3, 3);
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
