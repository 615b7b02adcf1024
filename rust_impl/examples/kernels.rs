//! The measurements behind the Rust backend's choices, on this machine:
//! - the first layer's two products with each candidate library and layout, on one thread:
//!   `gemm` with W row-major and column-major (what `Affine` stores), `matrixmultiply` (what
//!   ndarray's `dot` uses), and the own kernels that run on this CPU, on buffers laid out as the
//!   net keeps them; and the sparse kernels on a batch with one input in five nonzero (their
//!   GFLOP/s count the nonzero inputs' multiply-adds only);
//! - the products at two threads (each thread its half), handed out by `rayon::join` on a
//!   two-thread pool against two threads that meet at a spinning barrier (what `net.rs` does).
//!
//! Run:
//!
//!     cargo run --release --example kernels [-- --json]
//!     cargo run --release --example kernels --no-default-features   # gemm without AVX-512
//!
//! Shapes (batch 100, 784 inputs, 50 hidden units): forward `x · W` (100×784·784×50) and the
//! update `W -= lr · xᵀ·dout` (784×100·100×50, the SGD step folded into the product). At two
//! threads each thread takes half of W's 784 input rows, as `net.rs` splits them.

use std::hint::black_box;
use std::time::Instant;

use mlp_bench_rust::team::SpinBarrier;

const INPUTS: usize = 784;
const BATCH: usize = 100;
const UNITS: usize = 50;
const CALLS: usize = 2000;

/// Median µs per call, over 5 rounds of `CALLS / 5` calls.
fn time(mut call: impl FnMut()) -> f64 {
    call();
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CALLS / 5 {
                call();
            }
            started.elapsed().as_secs_f64() / (CALLS / 5) as f64 * 1e6
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// A matrix in a flat buffer: element (i, j) at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
struct Layout {
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl Layout {
    fn row_major(rows: usize, cols: usize) -> Self {
        Layout {
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }
    fn col_major(rows: usize, cols: usize) -> Self {
        Layout {
            rows,
            cols,
            row_stride: 1,
            col_stride: rows as isize,
        }
    }
    fn t(self) -> Self {
        Layout {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
    /// Highest element index addressed, plus one.
    fn extent(self) -> usize {
        ((self.rows - 1) as isize * self.row_stride + (self.cols - 1) as isize * self.col_stride)
            as usize
            + 1
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Library {
    Gemm,
    Matrixmultiply,
}

/// `c += scale · a · b`.
fn product(
    library: Library,
    a: (&[f32], Layout),
    b: (&[f32], Layout),
    c: (&mut [f32], Layout),
    scale: f32,
) {
    let ((a, la), (b, lb), (c, lc)) = (a, b, c);
    assert!(la.cols == lb.rows && lc.rows == la.rows && lc.cols == lb.cols);
    assert!(a.len() >= la.extent() && b.len() >= lb.extent() && c.len() >= lc.extent());
    let (m, k, n) = (la.rows, la.cols, lb.cols);
    // SAFETY: the asserts above check that every index the layouts address lies inside its
    // buffer; `c` is a unique borrow, so it aliases neither `a` nor `b`.
    unsafe {
        match library {
            Library::Gemm => gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                lc.col_stride,
                lc.row_stride,
                true,
                a.as_ptr(),
                la.col_stride,
                la.row_stride,
                b.as_ptr(),
                lb.col_stride,
                lb.row_stride,
                1.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            ),
            Library::Matrixmultiply => matrixmultiply::sgemm(
                m,
                k,
                n,
                scale,
                a.as_ptr(),
                la.row_stride,
                la.col_stride,
                b.as_ptr(),
                lb.row_stride,
                lb.col_stride,
                1.0,
                c.as_mut_ptr(),
                lc.row_stride,
                lc.col_stride,
            ),
        }
    }
}

/// µs per call of a loop of AVX-512 multiply-adds on 24 independent accumulators (no memory
/// traffic: the most a core can do), and its FLOPs per call; None without AVX-512.
fn fma_rate() -> Option<(f64, f64)> {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    {
        const CHAINS: usize = 24;
        const ROUNDS: usize = 2_000;
        let simd = pulp::x86::V4::try_new()?;
        let mut acc = [simd.splat_f32x16(1.0); CHAINS];
        let scale = simd.splat_f32x16(black_box(0.999_999));
        let step = simd.splat_f32x16(black_box(1e-7));
        let us = time(|| {
            simd.vectorize(
                #[inline(always)]
                || {
                    // A local copy, so the accumulators live in registers.
                    let mut chains = acc;
                    for _ in 0..ROUNDS {
                        for a in chains.iter_mut() {
                            *a = simd.mul_add_f32x16(*a, scale, step);
                        }
                    }
                    acc = chains;
                },
            );
            black_box(&acc);
        });
        Some((us, 2.0 * (CHAINS * 16 * ROUNDS) as f64))
    }
    #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
    None
}

/// The rows of one way of computing the two products over `inputs` of W's rows: µs per call of
/// each, and the FLOPs of one call.
fn both_products(
    how: &str,
    forward_us: f64,
    update_us: f64,
    flops: f64,
    inputs: usize,
) -> [Row; 2] {
    [("forward", forward_us), ("update", update_us)]
        .map(|(product, us)| product_row(product, how, us, flops, inputs))
}

/// The row of one product over `inputs` of W's rows.
fn product_row(product: &str, how: &str, us: f64, flops: f64, inputs: usize) -> Row {
    Row {
        product: if inputs == INPUTS {
            product.to_string()
        } else {
            format!("{product}, {inputs} inputs (a group of two threads)")
        },
        how: how.into(),
        us,
        flops,
    }
}

/// The sparse kernels' rows: both products over 100 rows with one input in five nonzero, at
/// scattered places (MNIST keeps ~150 of 784), W row-major as the net keeps it for them. Their
/// FLOPs are the multiply-adds of the nonzero inputs only.
fn sparse_products(rows: &mut Vec<Row>, w0: &[f32], dout: &[f32], lr: f32) {
    use mlp_bench_rust::aligned::Aligned2;
    use mlp_bench_rust::sparse::{self, SparseRows};
    use ndarray::ArrayView2;
    let x: Vec<f32> = (0..BATCH * INPUTS)
        .map(|i| {
            let hash = (i as u64).wrapping_mul(2_654_435_761) >> 7;
            if hash.is_multiple_of(5) {
                (1 + hash % 255) as f32 / 255.0
            } else {
                0.0
            }
        })
        .collect();
    let mut batch = SparseRows::new(0..INPUTS, BATCH);
    for row in x.chunks(INPUTS) {
        batch.push_dense_row(row);
    }
    let mut w = Aligned2::from_view(
        ArrayView2::from_shape((INPUTS, UNITS), w0).expect("sizes agree"),
        false,
    );
    let dout = ArrayView2::from_shape((BATCH, UNITS), dout).expect("sizes agree");
    let mut out = ndarray::Array2::zeros((BATCH, UNITS));
    let mut scratch = Vec::new();
    let forward = time(|| {
        sparse::forward(&batch, &w, out.view_mut());
        black_box(&out);
    });
    let update = time(|| sparse::update(&batch, &[dout], &mut w, -lr, &mut scratch));
    let flops = 2.0 * (batch.len() * UNITS) as f64;
    let how = format!(
        "own sparse kernel, W row-major, {:.0} % of inputs nonzero",
        100.0 * batch.len() as f64 / (BATCH * INPUTS) as f64
    );
    rows.extend(both_products(&how, forward, update, flops, INPUTS));
}

struct Row {
    product: String,
    how: String,
    us: f64,
    /// Multiply-adds of the timed call, counted as 2 FLOP each.
    flops: f64,
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let value = |i: usize| ((i * 7919) % 1000) as f32 / 1000.0;
    let x: Vec<f32> = (0..BATCH * INPUTS).map(value).collect();
    let w0: Vec<f32> = (0..INPUTS * UNITS).map(|i| value(i + 1) * 0.01).collect();
    let dout: Vec<f32> = (0..BATCH * UNITS).map(|i| value(i + 2) * 0.01).collect();
    // Small, so the repeated updates leave the weights (and the timings) alike.
    let lr = 1e-9f32;
    let mut rows: Vec<Row> = Vec::new();
    // One of the two big products: 100×784·784×50 multiply-adds, 2 FLOP each.
    let whole = 2.0 * (BATCH * INPUTS * UNITS) as f64;

    let x_layout = Layout::row_major(BATCH, INPUTS);
    let d_layout = Layout::row_major(BATCH, UNITS);
    let out_layout = Layout::row_major(BATCH, UNITS);
    let candidates = [
        (
            "gemm, W row-major",
            Library::Gemm,
            Layout::row_major(INPUTS, UNITS),
        ),
        (
            "gemm, W column-major",
            Library::Gemm,
            Layout::col_major(INPUTS, UNITS),
        ),
        (
            "matrixmultiply, W row-major",
            Library::Matrixmultiply,
            Layout::row_major(INPUTS, UNITS),
        ),
    ];
    for (how, library, w_layout) in candidates {
        let mut w = w0.clone();
        let mut out = vec![0.0f32; BATCH * UNITS];
        let us = time(|| {
            product(
                library,
                (&x, x_layout),
                (&w, w_layout),
                (&mut out, out_layout),
                1.0,
            );
            black_box(&out);
        });
        let update = time(|| {
            product(
                library,
                (&x, x_layout.t()),
                (&dout, d_layout),
                (&mut w, w_layout),
                -lr,
            );
        });
        rows.extend(both_products(how, us, update, whole, INPUTS));
    }

    let own_avx512 = mlp_bench_rust::kernel::available();
    let own_avx2 = mlp_bench_rust::kernel::available_avx2();
    if own_avx512 || own_avx2 {
        use mlp_bench_rust::aligned::Aligned2;
        use mlp_bench_rust::linalg::{matmul_with, Library};
        use ndarray::{s, ArrayView2};
        fn view(values: &[f32], dim: (usize, usize)) -> ArrayView2<'_, f32> {
            ArrayView2::from_shape(dim, values).expect("sizes agree")
        }
        let dout = view(&dout, (BATCH, UNITS));
        let mut out = ndarray::Array2::zeros((BATCH, UNITS));
        // Laid out as the net keeps them: W column-major, every row of x and column of W on a
        // cache-line boundary. At all 784 inputs, and at the first of two threads' groups (as
        // the net splits W1), where the kernels are measured against gemm on the same buffers.
        let first_of_two = mlp_bench_rust::layers::Affine::<f32>::new(
            ndarray::Array2::zeros((INPUTS, UNITS)),
            ndarray::Array1::zeros(UNITS),
            2,
        )
        .group_inputs(0)
        .len();
        // The AVX-512 kernels (against gemm at 400 inputs), and the AVX2 forward kernel against
        // matrixmultiply, the crate the net times fastest with AVX2 only.
        let (mut all_inputs, mut one_group) = (Vec::new(), Vec::new());
        if own_avx512 {
            all_inputs.push(Library::Kernel);
            one_group.extend([Library::Kernel, Library::Gemm]);
        }
        if own_avx2 {
            for libraries in [&mut all_inputs, &mut one_group] {
                libraries.extend([Library::Avx2Kernel, Library::Matrixmultiply]);
            }
        }
        for (inputs, libraries) in [(INPUTS, all_inputs), (first_of_two, one_group)] {
            let x = Aligned2::from_view(view(&x, (BATCH, INPUTS)).slice(s![.., ..inputs]), false);
            let mut w =
                Aligned2::from_view(view(&w0, (INPUTS, UNITS)).slice(s![..inputs, ..]), true);
            for library in libraries {
                let how = format!("{}, W column-major, aligned", library.name());
                let forward = time(|| {
                    matmul_with(library, x.view(), w.view(), out.view_mut(), false, 1.0);
                    black_box(&out);
                });
                let flops = 2.0 * (BATCH * inputs * UNITS) as f64;
                rows.push(product_row("forward", &how, forward, flops, inputs));
                // The AVX2 kernel computes only the forward product.
                if library != Library::Avx2Kernel {
                    let update = time(|| {
                        matmul_with(library, x.view().t(), dout, w.view_mut(), true, -lr);
                    });
                    rows.push(product_row("update", &how, update, flops, inputs));
                }
            }
        }
    }
    sparse_products(&mut rows, &w0, &dout, lr);
    if let Some((us, flops)) = fma_rate() {
        rows.push(Row {
            product: "multiply-adds".into(),
            how: "the core's peak: 24 independent chains, no memory".into(),
            us,
            flops,
        });
    }

    // Two threads, each its half of W's input rows: the forward term x[:, half] · W[half, :]
    // into its own output, and the update of W[half, :].
    let half = INPUTS / 2;
    let x_half = Layout {
        cols: half,
        ..x_layout
    };
    let w_half = Layout::row_major(half, UNITS);
    let halves = |member: usize| (member * half, member * half * UNITS);
    let work = |member: usize, w: &mut [f32], out: &mut [f32]| {
        let (x_start, _) = halves(member);
        product(
            Library::Gemm,
            (&x[x_start..], x_half),
            (w, w_half),
            (out, out_layout),
            1.0,
        );
        product(
            Library::Gemm,
            (&x[x_start..], x_half.t()),
            (&dout, d_layout),
            (w, w_half),
            -lr,
        );
    };
    let mut w_parts: Vec<Vec<f32>> = (0..2)
        .map(|m| w0[halves(m).1..][..half * UNITS].to_vec())
        .collect();
    let mut outs = vec![vec![0.0f32; BATCH * UNITS]; 2];
    {
        let (w, out) = (&mut w_parts[0], &mut outs[0]);
        let us = time(|| work(0, w, out));
        rows.push(Row {
            product: "forward + update".into(),
            how: "one thread, one half".into(),
            us,
            flops: whole, // half of each of the two products
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool");
    let us = pool.install(|| {
        let [w_a, w_b] = &mut w_parts[..] else {
            unreachable!()
        };
        let [out_a, out_b] = &mut outs[..] else {
            unreachable!()
        };
        time(|| {
            rayon::join(|| work(0, w_a, out_a), || work(1, w_b, out_b));
        })
    });
    rows.push(Row {
        product: "forward + update".into(),
        how: "two halves, rayon::join in a 2-thread pool".into(),
        us,
        flops: 2.0 * whole,
    });
    // The same on two threads that live through all the calls and meet at a spinning barrier.
    let barrier = SpinBarrier::new(2);
    let us = std::thread::scope(|scope| {
        let [w_a, w_b] = &mut w_parts[..] else {
            unreachable!()
        };
        let [out_a, out_b] = &mut outs[..] else {
            unreachable!()
        };
        let (barrier, work) = (&barrier, &work);
        scope.spawn(move || {
            // One more round than the timed calls: `time` makes one call to warm up.
            for _ in 0..=CALLS {
                barrier.wait();
                work(1, w_b, out_b);
                barrier.wait();
            }
        });
        time(|| {
            barrier.wait();
            work(0, w_a, out_a);
            barrier.wait();
        })
    });
    rows.push(Row {
        product: "forward + update".into(),
        how: "two halves, two threads at a spinning barrier".into(),
        us,
        flops: 2.0 * whole,
    });

    for row in &rows {
        let gflops = row.flops / row.us / 1e3;
        if json {
            println!(
                "{{\"product\": \"{}\", \"how\": \"{}\", \"us\": {:.2}, \"gflops\": {:.1}, \"avx512\": {}}}",
                row.product,
                row.how,
                row.us,
                gflops,
                cfg!(feature = "avx512")
            );
        } else {
            println!(
                "{:17} {:48} {:7.1} µs  {:6.1} GFLOP/s",
                row.product, row.how, row.us, gflops
            );
        }
    }
}
