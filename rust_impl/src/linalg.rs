//! The one matrix product the network needs, over ndarray views, computed by the `gemm` crate.
//!
//! `gemm` was chosen by measurement (see README.md): on this job's skinny shapes it matches or
//! beats `matrixmultiply` on one thread, dispatches SIMD kernels at run time (no
//! `target-cpu=native` build), and takes its thread count per call, so the harness's thread
//! budget is applied exactly.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Scalars the network computes in (f32 and f64).
pub trait Scalar:
    num_traits::Float + ndarray::ScalarOperand + std::fmt::Debug + Send + Sync + 'static
{
    /// The bit pattern, to tell values apart exactly (so -0.0 and 0.0 differ, and NaN is itself).
    fn bits(self) -> u64;
}

/// Scalars the network computes in (f32 and f64).
impl Scalar for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}
impl Scalar for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// `c = scale · a · b`, or `c += scale · a · b` when `accumulate`, for any strides, including
/// transposed views. With `scale` = −lr and `accumulate`, that is an SGD step with the gradient
/// product folded in.
///
/// # Panics
/// When the shapes do not agree; callers size their buffers once, in `setup`.
pub fn matmul_into<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
    accumulate: bool,
    scale: T,
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
            scale,
            false,
            false,
            false,
            // One thread per call: the net splits the work among its own threads (see team.rs).
            gemm::Parallelism::None,
        );
    }
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
        matmul_into(a.view(), b.view(), c.view_mut(), false, 1.0);
        assert!((&c - &naive(&a, &b)).iter().all(|d| d.abs() < 1e-12));

        let at = a.t().to_owned(); // (5, 7), then viewed transposed again
        let mut c2 = Array2::zeros((7, 3).f());
        matmul_into(at.t(), b.view(), c2.view_mut(), false, 1.0);
        assert!((&c2 - &naive(&a, &b)).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn accumulate_with_a_negative_scale_is_an_sgd_step() {
        let a = Array2::from_elem((2, 3), 1.0f32);
        let b = Array2::from_elem((3, 2), 2.0f32);
        let mut c = Array2::from_elem((2, 2), 0.5f32);
        matmul_into(a.view(), b.view(), c.view_mut(), true, -0.25);
        assert!(c.iter().all(|&v| v == 0.5 - 0.25 * 6.0), "{c}");
    }
}
