//! The one matrix product the network needs, over ndarray views, computed by the `gemm` crate.
//!
//! `gemm` was chosen by measurement (see README.md): on this job's skinny shapes it matches or
//! beats `matrixmultiply` on one thread, dispatches SIMD kernels at run time (no
//! `target-cpu=native` build), and takes its thread count per call, so the harness's thread
//! budget is applied exactly.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

pub use gemm::Parallelism;

/// Scalars the network computes in (f32 and f64).
pub trait Scalar:
    num_traits::Float + ndarray::ScalarOperand + std::fmt::Debug + Send + Sync + 'static
{
}

impl Scalar for f32 {}
impl Scalar for f64 {}

/// `c = a · b` (or `c += a · b` when `accumulate`), for any strides, including transposed views.
///
/// # Panics
/// When the shapes do not agree; callers size their buffers once, in `setup`.
pub fn matmul_into<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k) = a.dim();
    let (k_b, n) = b.dim();
    assert_eq!(
        k,
        k_b,
        "inner dimensions differ: {:?} · {:?}",
        a.dim(),
        b.dim()
    );
    assert_eq!(
        c.dim(),
        (m, n),
        "output is {:?}, product is {:?}",
        c.dim(),
        (m, n)
    );
    if m == 0 || n == 0 {
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: `gemm` takes raw pointers and element strides. All three come from live ndarray
    // views whose dimensions were checked above to be exactly (m, k), (k, n) and (m, n), so every
    // address gemm touches lies inside those views. `c` is a unique borrow, so it cannot alias
    // `a` or `b`. The alternative without `unsafe` (ndarray's `general_mat_mul`, backed by
    // matrixmultiply) measured slower on the forward product and cannot take a per-call thread
    // count.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::one(), // scale of the old c (only read when accumulating)
            T::one(), // scale of a · b
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Like [`matmul_into`], but with `threads` > 1 the rows of `c` are split into that many bands,
/// each computed on its own rayon task by a single-threaded gemm.
///
/// On this job's shapes (100×784·784×50 and 784×100·100×50) gemm's own threading kept two
/// cores only ~45 % busier than one; whole bands of rows per thread keep both cores busy.
pub fn matmul_into_banded<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: ArrayViewMut2<T>,
    accumulate: bool,
    threads: usize,
) {
    let rows = c.nrows();
    if threads <= 1 || rows < 2 {
        matmul_into(a, b, c, accumulate, Parallelism::None);
        return;
    }
    let mid = rows / 2;
    let (a_top, a_bottom) = a.split_at(Axis(0), mid);
    let (c_top, c_bottom) = c.split_at(Axis(0), mid);
    let (top_threads, bottom_threads) = (threads / 2, threads - threads / 2);
    rayon::join(
        || matmul_into_banded(a_top, b, c_top, accumulate, top_threads),
        || matmul_into_banded(a_bottom, b, c_bottom, accumulate, bottom_threads),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    #[test]
    fn product_matches_naive_for_plain_and_transposed_views() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f64 * 0.1 - 1.0);
        let b = Array2::from_shape_fn((5, 3), |(i, j)| (i as f64 - j as f64) * 0.3);
        let mut c = Array2::zeros((7, 3));
        matmul_into(a.view(), b.view(), c.view_mut(), false, Parallelism::None);
        assert!((&c - &naive(&a, &b)).iter().all(|d| d.abs() < 1e-12));

        let at = a.t().to_owned(); // (5, 7), then viewed transposed again
        let mut c2 = Array2::zeros((7, 3).f());
        matmul_into(
            at.t(),
            b.view(),
            c2.view_mut(),
            false,
            Parallelism::Rayon(2),
        );
        assert!((&c2 - &naive(&a, &b)).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn banded_product_equals_the_single_threaded_one() {
        let a = Array2::from_shape_fn((101, 33), |(i, j)| ((i * 33 + j) as f32 * 0.37).sin());
        let b = Array2::from_shape_fn((33, 9), |(i, j)| ((i * 9 + j) as f32 * 0.11).cos());
        let mut one = Array2::zeros((101, 9));
        matmul_into(a.view(), b.view(), one.view_mut(), false, Parallelism::None);
        for threads in [2, 3, 4] {
            let mut banded = Array2::from_elem((101, 9), 1.0f32);
            matmul_into_banded(a.view(), b.view(), banded.view_mut(), true, threads);
            let diff = (&banded - &(&one + 1.0)).mapv(f32::abs);
            assert!(
                diff.iter().all(|&d| d < 1e-5),
                "threads {threads}: {diff:?}"
            );
        }
    }

    #[test]
    fn accumulate_adds_to_the_output() {
        let a = Array2::from_elem((2, 2), 1.0f32);
        let b = Array2::from_elem((2, 2), 2.0f32);
        let mut c = Array2::from_elem((2, 2), 0.5f32);
        matmul_into(a.view(), b.view(), c.view_mut(), true, Parallelism::None);
        assert!(c.iter().all(|&v| v == 4.5));
    }
}
