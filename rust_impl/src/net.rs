//! The two-layer net of the book, trained on batches the caller chooses by row index.

use std::fmt;
use std::ops::Range;
use std::sync::RwLock;
use std::time::Instant;

use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::layers::{Affine, GroupInputs, Relu, SoftmaxWithLoss};
use crate::linalg::{Library, Scalar};
use crate::team::{share, SpinBarrier};
use crate::trainset::TrainingSet;

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

/// The labels as class ids, once the parameters chain, the training set fits them and the
/// step settings make sense; else what is wrong. Shared by the tuned net and the plain ports.
pub(crate) fn checked_inputs<T: Scalar>(
    init: &InitParams<T>,
    train_x: &Array2<T>,
    train_y: ArrayView1<i64>,
    lr: f64,
    batch: usize,
) -> Result<Vec<usize>, NetError> {
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
    Ok(train_y)
}

/// The number of steps in `batch_indices`, once each row holds `batch` indices into a training
/// set of `rows` rows; else what is wrong.
pub(crate) fn checked_batches(
    batch_indices: ArrayView2<i32>,
    batch: usize,
    rows: usize,
) -> Result<usize, NetError> {
    let (steps, given) = batch_indices.dim();
    if given != batch {
        return error(format!(
            "batch_indices rows hold {given} indices, but the net was set up for batch {batch}"
        ));
    }
    if let Some(bad) = batch_indices
        .iter()
        .find(|&&i| usize::try_from(i).map_or(true, |i| i >= rows))
    {
        return error(format!(
            "batch index {bad} is outside the training set (0..{rows})"
        ));
    }
    Ok(steps)
}

/// What one thread owns of the first layer's work: its columns of the batch (the inputs of its
/// group of W1, `Affine::group_inputs`), gathered by this thread.
struct InputGroup<T: Scalar> {
    x: GroupInputs<T>,
    /// The small layers' gradients summed over the shards (for the threads that step them).
    db1: Array1<T>,
    dw2: Array2<T>,
    db2: Array1<T>,
}

/// The rows of the batch one thread carries from the first layer's sum to the gradient w.r.t.
/// the hidden layer, with that thread's layer buffers.
struct Shard<T: Scalar> {
    rows: Range<usize>,
    labels: Vec<usize>,
    hidden: Array2<T>,
    relu: Relu<T>,
    scores: Array2<T>,
    last: SoftmaxWithLoss<T>,
    /// The gradient w.r.t. the ReLU's output (Affine 2's input).
    drelu: Array2<T>,
    /// These rows' parameter gradients of the small layers: b1, and W2 and b2.
    db1: Array1<T>,
    dw2: Array2<T>,
    db2: Array1<T>,
}

impl<T: Scalar> Shard<T> {
    fn new(rows: Range<usize>, batch: usize, hidden: usize, classes: usize) -> Self {
        let n = rows.len();
        Shard {
            rows,
            labels: vec![0; n],
            hidden: Array2::zeros((n, hidden)),
            relu: Relu::new(n, hidden),
            scores: Array2::zeros((n, classes)),
            last: SoftmaxWithLoss::new(n, classes, batch),
            drelu: Array2::zeros((n, hidden)),
            db1: Array1::zeros(hidden),
            dw2: Array2::zeros((hidden, classes)),
            db2: Array1::zeros(classes),
        }
    }
}

/// The book's `TwoLayerNet`: Affine → ReLU → Affine → SoftmaxWithLoss, trained by plain SGD.
///
/// With `threads` > 1, each step is split among that many threads (see `train_steps`).
pub struct TwoLayerNet<T: Scalar> {
    affine1: Affine<T>,
    affine2: Affine<T>,
    /// Per thread. Locks, never contended, let the borrow rules be checked at run time: a
    /// thread writes its own entries and reads the others' only after a barrier.
    groups: Vec<RwLock<InputGroup<T>>>,
    terms: Vec<RwLock<Array2<T>>>,
    shards: Vec<RwLock<Shard<T>>>,
    train_x: TrainingSet<T>,
    train_y: Vec<usize>,
    lr: T,
    batch: usize,
    /// Seconds spent in each phase (`PHASES`) by each thread, when profiling is on.
    phase_seconds: Option<Vec<[f64; 5]>>,
    /// The input entries the first layer's products took, summed over every step trained: all
    /// of a batch's on the dense path, only its nonzero ones on the sparse path.
    inputs_multiplied: u64,
}

/// What one thread's step loop adds up (`run_member`).
struct MemberTotals {
    loss: f64,
    inputs: u64,
    seconds: [f64; 5],
}

/// The phases of a training step, in order. `wait` is the time a thread spent at the step's
/// barriers waiting for the others (zero with one thread).
pub const PHASES: [&str; 5] = ["batch", "forward", "backward", "update", "wait"];

impl<T: Scalar> TwoLayerNet<T> {
    /// Takes the training set (kept as byte codes when it allows, see `TrainingSet`) and sizes
    /// every buffer for `batch` rows split among `threads` threads.
    pub fn new(
        init: InitParams<T>,
        train_x: Array2<T>,
        train_y: ArrayView1<i64>,
        lr: f64,
        batch: usize,
        threads: usize,
    ) -> Result<Self, NetError> {
        let train_y = checked_inputs(&init, &train_x, train_y, lr, batch)?;
        let (features, hidden) = init.w1.dim();
        let classes = init.w2.ncols();
        if threads == 0 {
            return error("threads must be ≥ 1".to_string());
        }
        // No thread without rows of its own, nor without inputs of W1 to update.
        let team = threads.min(batch).min(features.max(1));
        let train_x = TrainingSet::new(train_x);
        // The sparse kernels are float32 only.
        let nonzeros = T::HAS_KERNEL
            .then(|| train_x.nonzeros_per_column())
            .flatten();
        let affine1 = match nonzeros {
            Some(nonzeros) => {
                let mut affine1 = Affine::balanced(init.w1, init.b1, team, &nonzeros);
                affine1.use_libraries(Library::Sparse, Library::Sparse);
                affine1
            }
            None => {
                let mut affine1 = Affine::new(init.w1, init.b1, team);
                affine1.tune(batch);
                affine1
            }
        };
        Ok(TwoLayerNet {
            groups: (0..team)
                .map(|t| {
                    let x = affine1.group_inputs_buffer(t, batch);
                    RwLock::new(InputGroup {
                        x,
                        db1: Array1::zeros(hidden),
                        dw2: Array2::zeros((hidden, classes)),
                        db2: Array1::zeros(classes),
                    })
                })
                .collect(),
            terms: (0..team)
                .map(|_| RwLock::new(Array2::zeros((batch, hidden))))
                .collect(),
            shards: (0..team)
                .map(|t| {
                    let rows = share(batch, team, t);
                    RwLock::new(Shard::new(rows, batch, hidden, classes))
                })
                .collect(),
            affine1,
            affine2: Affine::new(init.w2, init.b2, 1),
            train_x,
            train_y,
            lr: T::from(lr).expect("lr is representable"),
            batch,
            phase_seconds: None,
            inputs_multiplied: 0,
        })
    }

    /// Time each phase of every following step, on every thread (costs a few clock reads per
    /// step).
    pub fn enable_profiling(&mut self) {
        self.phase_seconds = Some(vec![[0.0; 5]; self.threads()]);
    }

    /// The first thread's seconds per phase since profiling was enabled, or None if it is off.
    pub fn phase_times(&self) -> Option<Vec<(&'static str, f64)>> {
        self.thread_phase_times()
            .map(|threads| threads.into_iter().next().expect("one thread at least"))
    }

    /// `phase_times` of each thread, in the order of their groups of inputs and rows.
    pub fn thread_phase_times(&self) -> Option<Vec<Vec<(&'static str, f64)>>> {
        self.phase_seconds.as_ref().map(|threads| {
            threads
                .iter()
                .map(|&seconds| PHASES.iter().copied().zip(seconds).collect())
                .collect()
        })
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Threads a step is split among (the budget, capped by the batch size).
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// The crates computing the first layer's forward product and its update (see `linalg`).
    pub fn libraries(&self) -> (&'static str, &'static str) {
        let (forward, update) = self.affine1.libraries();
        (forward.name(), update.name())
    }

    /// The first layer's products by these libraries from now on (see `Affine::use_libraries`).
    ///
    /// # Panics
    /// For the sparse kernels on a training set that is not sparse (`TrainingSet::is_sparse`).
    pub fn use_libraries(&mut self, forward: Library, update: Library) {
        assert!(
            forward != Library::Sparse || self.train_x.is_sparse(),
            "the sparse kernels need a sparse training set"
        );
        self.affine1.use_libraries(forward, update);
        for (t, group) in self.groups.iter_mut().enumerate() {
            group.get_mut().expect("no thread panicked").x =
                self.affine1.group_inputs_buffer(t, self.batch);
        }
    }

    /// How the training images are held, for the run record.
    pub fn inputs_held_as(&self) -> &'static str {
        self.train_x.describe()
    }

    /// One SGD step per row of `batch_indices`; returns the mean loss. Every array is sized in
    /// the constructor; a step allocates only short lists: the lock guards (one per thread) and,
    /// in the own kernels, the slices of the rows and columns each call works on.
    ///
    /// The threads split a step three ways (see `run_member`), chosen so that the big arrays
    /// never move between cores: each thread keeps a group of W1's inputs (its rows of W1 and
    /// its columns of every batch row), and only the 100×50 hidden layer is shared. The helper
    /// threads live for this call (one call covers hundreds of steps) and wait by spinning.
    pub fn train_steps(&mut self, batch_indices: ArrayView2<i32>) -> Result<f64, NetError> {
        let steps = checked_batches(batch_indices, self.batch, self.train_x.rows())?;
        if steps == 0 {
            return Ok(0.0);
        }
        let profiling = self.phase_seconds.is_some();
        let barrier = SpinBarrier::new(self.threads());
        let net = &*self;
        let (loss, seconds, inputs) = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..net.threads())
                .map(|member| {
                    let barrier = &barrier;
                    scope.spawn(move || net.run_member(member, batch_indices, barrier, profiling))
                })
                .collect();
            let first = net.run_member(0, batch_indices, &barrier, profiling);
            let (mut loss, mut inputs) = (first.loss, first.inputs);
            let mut seconds = vec![first.seconds];
            for helper in helpers {
                match helper.join() {
                    Ok(helper) => {
                        loss += helper.loss;
                        inputs += helper.inputs;
                        seconds.push(helper.seconds);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            (loss, seconds, inputs)
        });
        self.inputs_multiplied += inputs;
        if let Some(total) = self.phase_seconds.as_mut() {
            for (thread, seconds) in total.iter_mut().zip(seconds) {
                for (slot, s) in thread.iter_mut().zip(seconds) {
                    *slot += s;
                }
            }
        }
        Ok(loss / steps as f64)
    }

    /// The step loop of thread `member`; returns its rows' share of the summed step losses, the
    /// input entries its group's products took and, when `profiling`, its seconds per phase.
    /// Per step:
    /// 1. gather its columns of the batch rows, and its term `x_g · W1_g` for all rows;
    /// 2. (after a barrier) for its rows: the sum of the terms plus b1, ReLU, Affine 2,
    ///    SoftmaxWithLoss, and back to the gradient w.r.t. the first layer's output;
    /// 3. (after a barrier) the SGD step of its rows of W1 over the whole batch; the first and
    ///    the last thread also step b1, W2 and b2 from the gradients each thread computed in 2.
    ///
    /// Step 3 touches only the thread's own W1 rows and columns of x, and step 1 of the next
    /// step only those, so no barrier is needed between them.
    fn run_member(
        &self,
        member: usize,
        batch_indices: ArrayView2<i32>,
        barrier: &SpinBarrier,
        profiling: bool,
    ) -> MemberTotals {
        let _guard = barrier.guard();
        let mut seconds = [0.0; 5];
        let mut clock = profiling.then(Instant::now);
        let mut lap = |phase: usize| {
            if let Some(started) = clock.as_mut() {
                let now = Instant::now();
                seconds[phase] += (now - *started).as_secs_f64();
                *started = now;
            }
        };
        let locked = "no thread panicked";
        let inputs = self.affine1.group_inputs(member);
        let mut loss = 0.0;
        let mut multiplied = 0u64;
        let steps = batch_indices.nrows();
        for step in 0..steps {
            let indices = batch_indices.row(step);
            {
                let mut group = self.groups[member].write().expect(locked);
                let group = &mut *group;
                // Indices checked non-negative and in range by train_steps.
                match &mut group.x {
                    GroupInputs::Dense { x, .. } => {
                        for (row, &index) in x.view_mut().rows_mut().into_iter().zip(indices) {
                            self.train_x
                                .copy_row_part(index as usize, inputs.clone(), row);
                        }
                        multiplied += (indices.len() * inputs.len()) as u64;
                    }
                    GroupInputs::Sparse { rows, .. } => {
                        rows.clear();
                        for &index in indices {
                            self.train_x.gather_sparse(index as usize, rows);
                        }
                        multiplied += rows.len() as u64;
                    }
                }
                if step + 1 < steps {
                    for &index in batch_indices.row(step + 1) {
                        self.train_x
                            .prefetch_row_part(index as usize, inputs.clone());
                    }
                }
                lap(0);
                let mut term = self.terms[member].write().expect(locked);
                self.affine1
                    .forward_group(member, &group.x, term.view_mut());
                lap(1);
            }
            barrier.wait();
            lap(4);
            {
                let mut shard = self.shards[member].write().expect(locked);
                let shard = &mut *shard;
                let rows = shard.rows.clone();
                for (label, &index) in shard.labels.iter_mut().zip(indices.slice(s![rows.clone()]))
                {
                    *label = self.train_y[index as usize];
                }
                let terms: Vec<_> = self.terms.iter().map(|t| t.read().expect(locked)).collect();
                let my_rows: Vec<_> = terms
                    .iter()
                    .map(|t| t.slice(s![rows.clone(), ..]))
                    .collect();
                self.affine1.sum_groups(&my_rows, shard.hidden.view_mut());
                shard.relu.forward(shard.hidden.view());
                self.affine2
                    .forward(shard.relu.output(), shard.scores.view_mut());
                let step_loss = shard.last.forward(shard.scores.view(), &shard.labels);
                loss += step_loss.to_f64().unwrap_or(f64::NAN);
                lap(1);

                shard.last.backward(&shard.labels);
                self.affine2
                    .backward(shard.last.input_grad(), shard.drelu.view_mut());
                shard.relu.backward(shard.hidden.view(), shard.drelu.view());
                Affine::gradients(
                    shard.relu.output(),
                    shard.last.input_grad(),
                    shard.dw2.view_mut(),
                    shard.db2.view_mut(),
                );
                Affine::bias_gradient(shard.relu.input_grad(), shard.db1.view_mut());
                lap(2);
            }
            barrier.wait();
            lap(4);
            {
                let shards: Vec<_> = self
                    .shards
                    .iter()
                    .map(|s| s.read().expect(locked))
                    .collect();
                let mut group = self.groups[member].write().expect(locked);
                let group = &mut *group;
                // The gradient w.r.t. the first layer's output: each shard's rows.
                let dhidden: Vec<_> = shards.iter().map(|s| s.relu.input_grad()).collect();
                self.affine1.update(member, &mut group.x, &dhidden, self.lr);
                // The small layers' steps, from the gradients each thread computed for its
                // rows: split between the first and the last thread, to balance the work.
                if member == 0 {
                    sum_into(&mut group.db1, shards.iter().map(|s| s.db1.view()));
                    self.affine1.step(None, Some(group.db1.view()), self.lr);
                    sum_into(&mut group.db2, shards.iter().map(|s| s.db2.view()));
                    self.affine2.step(None, Some(group.db2.view()), self.lr);
                }
                if member + 1 == self.threads() {
                    sum_into(&mut group.dw2, shards.iter().map(|s| s.dw2.view()));
                    self.affine2.step(Some(group.dw2.view()), None, self.lr);
                }
            }
            lap(3);
        }
        MemberTotals {
            loss,
            inputs: multiplied,
            seconds,
        }
    }

    /// Class ids for `x`, computed in blocks so memory stays bounded for any number of rows.
    pub fn predict(&self, x: ArrayView2<T>) -> Result<Vec<i64>, NetError> {
        let features = self.affine1.inputs();
        if x.ncols() != features {
            return error(format!(
                "x has {} features per row but the net expects {features}",
                x.ncols()
            ));
        }
        const BLOCK: usize = 8192;
        let mut classes = Vec::with_capacity(x.nrows());
        for block in x.axis_chunks_iter(Axis(0), BLOCK) {
            let mut hidden = Array2::zeros((block.nrows(), self.affine1.units()));
            self.affine1.forward(block, hidden.view_mut());
            hidden.mapv_inplace(|v| if v <= T::zero() { T::zero() } else { v });
            let mut scores = Array2::zeros((block.nrows(), self.affine2.units()));
            self.affine2.forward(hidden.view(), scores.view_mut());
            classes.extend(scores.rows().into_iter().map(|row| argmax(row) as i64));
        }
        Ok(classes)
    }

    /// The input entries the first layer's forward product (and, as many, its weight update)
    /// took over every step trained: `batch × inputs` a step on the dense path, the batch's
    /// nonzero inputs on the sparse one. Times the hidden units, the multiply-adds each product
    /// executed.
    pub fn inputs_multiplied(&self) -> u64 {
        self.inputs_multiplied
    }

    pub fn params(&self) -> InitParams<T> {
        InitParams {
            w1: self.affine1.weights(),
            b1: self.affine1.bias(),
            w2: self.affine2.weights(),
            b2: self.affine2.bias(),
        }
    }
}

/// `out = Σ parts`.
fn sum_into<'a, T: Scalar, D: ndarray::Dimension>(
    out: &mut ndarray::Array<T, D>,
    parts: impl Iterator<Item = ndarray::ArrayView<'a, T, D>>,
) {
    out.fill(T::zero());
    for part in parts {
        out.zip_mut_with(&part, |o, &p| *o = *o + p);
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

    /// 13 inputs, 6 hidden units, batch 7: shares of rows and inputs that do not divide evenly.
    fn odd_net(threads: usize) -> TwoLayerNet<f64> {
        let init = InitParams {
            w1: Array::from_shape_fn((13, 6), |(i, j)| ((i * 6 + j) as f64 * 0.9).sin() * 0.3),
            b1: Array1::from_shape_fn(6, |j| j as f64 * 0.01),
            w2: Array::from_shape_fn((6, 10), |(i, j)| ((i * 10 + j) as f64).cos() * 0.3),
            b2: Array1::zeros(10),
        };
        // 256 distinct values or more, so the set stays dense: both gather paths get tested.
        let x = Array::from_shape_fn((40, 13), |(i, j)| ((i * 13 + j) as f64 * 0.37).sin());
        let y = Array1::from_iter((0..40).map(|i| (i * 7 % 10) as i64));
        TwoLayerNet::new(init, x, y.view(), 0.3, 7, threads).unwrap()
    }

    #[test]
    fn threads_do_not_change_the_result_beyond_rounding() {
        let (mut one, mut two) = (tiny_net(1), tiny_net(2));
        let indices = Array::from_shape_fn((30, 2), |(i, j)| ((i * 3 + j) % 8) as i32);
        one.train_steps(indices.view()).unwrap();
        two.train_steps(indices.view()).unwrap();
        let diff = (&one.params().w1 - &two.params().w1).mapv(f32::abs);
        assert!(diff.iter().all(|&d| d < 1e-6));

        let indices = Array::from_shape_fn((50, 7), |(i, j)| ((i * 11 + j * 5) % 40) as i32);
        assert_threads_agree(odd_net, indices.view(), &[2, 3, 4, 7, 9], 1e-12);
    }

    /// Trains `make(threads)` on `indices` for each of `thread_counts` and checks its loss and
    /// parameters against one thread's, within `tolerance`; and that training moved them.
    fn assert_threads_agree<T: Scalar>(
        make: impl Fn(usize) -> TwoLayerNet<T>,
        indices: ArrayView2<i32>,
        thread_counts: &[usize],
        tolerance: f64,
    ) {
        let worst = |a: &Array2<T>, b: &Array2<T>| {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| (p - q).abs().to_f64().unwrap())
                .fold(0.0, f64::max)
        };
        let mut reference = make(1);
        let loss = reference.train_steps(indices).unwrap();
        let want = reference.params();
        for &threads in thread_counts {
            let mut net = make(threads);
            assert_eq!(net.threads(), threads.min(indices.ncols()));
            let got_loss = net.train_steps(indices).unwrap();
            assert!(
                (got_loss - loss).abs() < tolerance,
                "{threads} threads: loss {got_loss} vs {loss}"
            );
            let got = net.params();
            let b1 = |p: &InitParams<T>| p.b1.clone().insert_axis(Axis(0));
            for (name, a, b) in [
                ("W1", &got.w1, &want.w1),
                ("W2", &got.w2, &want.w2),
                ("b1", &b1(&got), &b1(&want)),
            ] {
                let off = worst(a, b);
                assert!(
                    off < tolerance,
                    "{threads} threads: {name} differs by {off}"
                );
            }
        }
        // A net that ignored its threads' work would fail above only if it also matched the
        // untrained one.
        assert!(worst(&want.w1, &make(1).params().w1) > 1e-3);
    }

    #[test]
    fn the_own_kernels_are_taken_wherever_they_run_without_timing() {
        // (The dense kernels: the sparse ones are for sparse sets, tested below.)
        let kernel = Library::Kernel.name();
        let own = Library::candidates::<f32>().contains(&Library::Kernel);
        let owns = [kernel, Library::Avx2Kernel.name()];
        for threads in [1, 2] {
            let f32_net = tiny_net(threads);
            assert_eq!(f32_net.libraries() == (kernel, kernel), own);
            // Without AVX-512, the forward product by the AVX2 kernel where the CPU has AVX2.
            let forward = f32_net.libraries().0;
            match Library::forward_kernel::<f32>() {
                Some(library) => assert_eq!(forward, library.name()),
                None => assert!(!owns.contains(&forward)),
            }
            let (forward, update) = odd_net(threads).libraries();
            assert!(
                !owns.contains(&forward) && !owns.contains(&update),
                "float64 runs in the crates"
            );
        }
    }

    #[test]
    fn every_library_trains_the_same_net() {
        // MNIST-like: bytes / 255, mostly zeros; 150 inputs (9 vectors and a rest), 12 units
        // (2 tiles and a rest), batch 10.
        let x = Array::from_shape_fn((60, 150), |(i, j)| {
            let byte = (i * 37 + j * 11) % 256;
            if byte % 4 == 0 {
                byte as f32 / 255.0
            } else {
                0.0
            }
        });
        let y = Array1::from_iter((0..60).map(|i| (i % 10) as i64));
        let indices = Array::from_shape_fn((25, 10), |(i, j)| ((i * 7 + j * 13) % 60) as i32);
        let w1 = Array::from_shape_fn((150, 12), |(i, j)| ((i * 12 + j) as f32).sin() * 0.1);
        for threads in [1, 2] {
            let trained = |forward: Library, update: Library| {
                let init = InitParams {
                    w1: w1.clone(),
                    b1: Array1::zeros(12),
                    w2: Array::from_shape_fn((12, 10), |(i, j)| ((i * 10 + j) as f32).cos() * 0.1),
                    b2: Array1::zeros(10),
                };
                let mut net =
                    TwoLayerNet::new(init, x.clone(), y.view(), 0.5, 10, threads).unwrap();
                net.use_libraries(forward, update);
                net.train_steps(indices.view()).unwrap();
                assert_eq!(net.libraries(), (forward.name(), update.name()));
                net.params()
            };
            let want = trained(Library::Gemm, Library::Gemm);
            // The weights moved, so agreeing is not agreeing on the untrained net.
            assert!((&want.w1 - &w1).mapv(f32::abs).sum() > 1e-2);
            let mut pairs: Vec<_> = Library::candidates::<f32>()
                .into_iter()
                .map(|library| (library, library))
                .collect();
            if crate::kernel::available_avx2() {
                pairs.push((Library::Avx2Kernel, Library::Matrixmultiply));
            }
            if TrainingSet::new(x.clone()).is_sparse() {
                pairs.push((Library::Sparse, Library::Sparse));
            }
            for (forward, update) in pairs {
                let got = trained(forward, update);
                let library = (forward, update);
                for (name, a, b) in [("W1", &got.w1, &want.w1), ("W2", &got.w2, &want.w2)] {
                    let worst = (a - b).mapv(f32::abs).fold(0.0f32, |m, &d| m.max(d));
                    assert!(
                        worst < 1e-5,
                        "{library:?}, {threads} threads: {name} off by {worst}"
                    );
                }
            }
        }
    }

    /// MNIST-like (bytes / 255, four in five zero), 70 inputs, 7 units, batch 9: held as sparse
    /// rows where the CPU packs them.
    fn sparse_net(threads: usize) -> TwoLayerNet<f32> {
        let init = InitParams {
            w1: Array::from_shape_fn((70, 7), |(i, j)| ((i * 7 + j) as f32 * 0.9).sin() * 0.3),
            b1: Array1::from_shape_fn(7, |j| j as f32 * 0.01),
            w2: Array::from_shape_fn((7, 10), |(i, j)| ((i * 10 + j) as f32).cos() * 0.3),
            b2: Array1::zeros(10),
        };
        let x = Array::from_shape_fn((40, 70), |(i, j)| {
            let byte = (i * 53 + j * 29) % 256;
            if byte.is_multiple_of(5) {
                byte as f32 / 255.0
            } else {
                0.0
            }
        });
        let y = Array1::from_iter((0..40).map(|i| (i * 7 % 10) as i64));
        TwoLayerNet::new(init, x, y.view(), 0.3, 9, threads).unwrap()
    }

    #[test]
    fn the_inputs_multiplied_are_counted_on_both_paths() {
        let indices = Array::from_shape_fn((40, 9), |(i, j)| ((i * 11 + j * 5) % 40) as i32);
        // As sparse_net builds its pixels: nonzero where the byte is a nonzero multiple of 5.
        let nonzero_pixel = |i: usize, j: usize| {
            let byte = (i * 53 + j * 29) % 256;
            byte.is_multiple_of(5) && byte != 0
        };
        let nonzero: u64 = indices
            .iter()
            .map(|&i| (0..70).filter(|&j| nonzero_pixel(i as usize, j)).count() as u64)
            .sum();
        for threads in [1, 2, 3] {
            let mut net = sparse_net(threads);
            if net.train_x.is_sparse() {
                net.use_libraries(Library::Sparse, Library::Sparse);
                net.train_steps(indices.view()).unwrap();
                assert_eq!(net.inputs_multiplied(), nonzero);
            }
            let mut dense = sparse_net(threads);
            dense.use_libraries(Library::Matrixmultiply, Library::Matrixmultiply);
            dense.train_steps(indices.view()).unwrap();
            dense.train_steps(indices.view()).unwrap();
            assert_eq!(dense.inputs_multiplied(), 2 * 40 * 9 * 70);
        }
        assert!(
            nonzero < 40 * 9 * 70 / 3,
            "the data must be sparse for this test to tell"
        );
    }

    #[test]
    fn sparse_sets_take_the_sparse_kernels_at_any_thread_count() {
        let indices = Array::from_shape_fn((40, 9), |(i, j)| ((i * 11 + j * 5) % 40) as i32);
        let reference = sparse_net(1);
        let sparse = reference.libraries() == (Library::Sparse.name(), Library::Sparse.name());
        assert_eq!(sparse, reference.train_x.is_sparse());
        for threads in [2, 9] {
            assert_eq!(sparse_net(threads).libraries(), reference.libraries());
        }
        // The groups split the 70 inputs by their nonzeros, inside 64-column blocks.
        assert_threads_agree(sparse_net, indices.view(), &[2, 3, 4, 9], 1e-5);
        // And against the dense products.
        if sparse {
            let (mut one, mut dense) = (sparse_net(1), sparse_net(2));
            dense.use_libraries(Library::Gemm, Library::Gemm);
            one.train_steps(indices.view()).unwrap();
            dense.train_steps(indices.view()).unwrap();
            let worst = (&dense.params().w1 - &one.params().w1)
                .mapv(f32::abs)
                .fold(0.0f32, |m, &d| m.max(d));
            assert!(worst < 1e-5, "dense W1 differs by {worst}");
        }
    }

    #[test]
    #[should_panic(expected = "the sparse kernels need a sparse training set")]
    fn the_sparse_kernels_are_refused_for_a_dense_set() {
        tiny_net(1).use_libraries(Library::Sparse, Library::Sparse);
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
        assert!(phases.iter().take(4).all(|&(_, s)| s > 0.0), "{phases:?}");
        assert_eq!(net.thread_phase_times().unwrap(), vec![phases]);
    }

    #[test]
    fn profiling_times_each_thread() {
        let mut net = tiny_net(2);
        net.enable_profiling();
        let indices = Array::from_shape_fn((20, 2), |(i, j)| ((i + j) % 8) as i32);
        net.train_steps(indices.view()).unwrap();
        let threads = net.thread_phase_times().unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(net.phase_times().unwrap(), threads[0]);
        for phases in &threads {
            assert_eq!(phases.iter().map(|p| p.0).collect::<Vec<_>>(), PHASES);
            // Every thread gathers, runs forward and backward, and updates its part.
            assert!(phases.iter().take(4).all(|&(_, s)| s > 0.0), "{threads:?}");
        }
        // Each thread's time at the barriers, the last to arrive's too (it still takes part).
        assert!(
            threads.iter().all(|phases| phases[4].1 > 0.0),
            "{threads:?}"
        );
        // A later call adds to the same totals.
        net.train_steps(indices.view()).unwrap();
        let again = net.thread_phase_times().unwrap();
        assert!((0..2).all(|t| again[t][1].1 > threads[t][1].1), "{again:?}");
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
        let err = TwoLayerNet::new(init(), x.clone(), array![0, 1].view(), 0.1, 1, 0);
        assert_eq!(err.err().unwrap().0, "threads must be ≥ 1");
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
