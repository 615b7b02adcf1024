//! The one matrix product the network needs, over ndarray views: by `gemm`, `matrixmultiply`, or
//! for the first layer in float32, this crate's own kernels (`kernel.rs`): both products on
//! AVX-512 CPUs, the forward one on CPUs with AVX2 only.
//!
//! `gemm` and `matrixmultiply` (what ndarray's own `dot` uses) both pick SIMD kernels at run
//! time, and neither wins everywhere on this job's skinny shapes: on an AVX-512 Xeon `gemm`'s
//! AVX-512 kernels beat matrixmultiply on both big products, while with AVX2 only
//! `matrixmultiply` won them (`cargo run --release --example kernels`, with and without
//! `--no-default-features`), and the own kernels beat both where they run. So the first layer
//! takes the own kernels where they run, and for the rest times the crates on its own shapes
//! when the net is built (`Library::fastest`); the choice is recorded with the run. Every call
//! runs on one thread: the net splits the work.

use std::time::Instant;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::aligned::Aligned2;
use crate::sparse::SparseRows;

/// The code a product runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    Gemm,
    Matrixmultiply,
    /// This crate's AVX-512 float32 kernels for the first layer (`kernel.rs`), only for the
    /// operands they take (`Library::candidates`).
    Kernel,
    /// This crate's AVX2 float32 kernel for the first layer's forward product only
    /// (`kernel::forward_avx2`), where the AVX-512 kernels do not run (`Library::forward_kernel`).
    Avx2Kernel,
    /// This crate's float32 products over the batch's nonzero inputs only (`sparse.rs`), for
    /// both products of the first layer, where the training set is sparse
    /// (`TrainingSet::is_sparse`). They take the batch as `SparseRows`, not as a matrix, so
    /// `matmul_with` does not run them (`Affine` calls them).
    Sparse,
}

impl Library {
    pub const ALL: [Library; 5] = [
        Library::Gemm,
        Library::Matrixmultiply,
        Library::Kernel,
        Library::Avx2Kernel,
        Library::Sparse,
    ];
    /// The crates, which take any type and layout.
    pub const CRATES: [Library; 2] = [Library::Gemm, Library::Matrixmultiply];

    pub fn name(self) -> &'static str {
        match self {
            Library::Gemm => "gemm",
            Library::Matrixmultiply => "matrixmultiply",
            Library::Kernel => "own AVX-512 kernel",
            Library::Avx2Kernel => "own AVX2 kernel",
            Library::Sparse => "own sparse kernel (nonzero inputs only)",
        }
    }

    /// The own kernel for `T`'s forward product on this CPU, if there is one: the AVX-512
    /// kernels, else the AVX2 one.
    pub fn forward_kernel<T: Scalar>() -> Option<Library> {
        if !T::HAS_KERNEL {
            None
        } else if crate::kernel::available() {
            Some(Library::Kernel)
        } else if crate::kernel::available_avx2() {
            Some(Library::Avx2Kernel)
        } else {
            None
        }
    }

    /// The libraries that run for `T` on this CPU: the crates, and the own kernels where the
    /// type and CPU allow.
    pub fn candidates<T: Scalar>() -> Vec<Library> {
        let mut candidates = Library::CRATES.to_vec();
        if T::HAS_KERNEL && crate::kernel::available() {
            candidates.push(Library::Kernel);
        }
        candidates
    }

    /// The library under which `product` runs fastest here, of `candidates`: each is warmed up,
    /// then timed as the best of 5 rounds of 4 calls (a few ms for this job's products).
    pub fn fastest(candidates: &[Library], mut product: impl FnMut(Library)) -> Library {
        let best_time = |product: &mut dyn FnMut(Library), library| {
            product(library);
            (0..5)
                .map(|_| {
                    let started = Instant::now();
                    for _ in 0..4 {
                        product(library);
                    }
                    started.elapsed()
                })
                .min()
                .expect("five rounds")
        };
        candidates
            .iter()
            .copied()
            .min_by_key(|&library| best_time(&mut product, library))
            .expect("at least one candidate")
    }
}

/// Scalars the network computes in (f32 and f64).
pub trait Scalar:
    num_traits::Float + ndarray::ScalarOperand + std::fmt::Debug + Send + Sync + 'static
{
    /// The bit pattern, to tell values apart exactly (so -0.0 and 0.0 differ, and NaN is itself).
    fn bits(self) -> u64;

    /// `matrixmultiply`'s GEMM for this type (`sgemm` or `dgemm`).
    const MATRIXMULTIPLY: MatrixmultiplyGemm<Self>;

    /// Whether `kernel.rs` has kernels for this type.
    const HAS_KERNEL: bool = false;

    /// [`matmul_with`] by `kernel.rs`.
    ///
    /// # Panics
    /// For a type, CPU or layout the kernels do not take: `Library::candidates` offers them
    /// only where they run, and the net lays out its buffers for them.
    fn kernel_product(
        _library: Library,
        _a: ArrayView2<Self>,
        _b: ArrayView2<Self>,
        _c: ArrayViewMut2<Self>,
        _accumulate: bool,
        _scale: Self,
    ) {
        panic!("no own kernels for {}", std::any::type_name::<Self>());
    }

    /// `sparse::forward` for this type.
    ///
    /// # Panics
    /// For a type the sparse kernels do not take (only f32 has them: `HAS_KERNEL`).
    fn sparse_forward(_rows: &SparseRows<Self>, _w: &Aligned2<Self>, _out: ArrayViewMut2<Self>) {
        panic!("no sparse kernels for {}", std::any::type_name::<Self>());
    }

    /// `sparse::update` for this type (panics as `sparse_forward`).
    fn sparse_update(
        _rows: &SparseRows<Self>,
        _dout: &[ArrayView2<Self>],
        _w: &mut Aligned2<Self>,
        _scale: Self,
        _scratch: &mut Vec<Self>,
    ) {
        panic!("no sparse kernels for {}", std::any::type_name::<Self>());
    }
}

/// `matrixmultiply::sgemm`'s signature: m, k, n, alpha, a, a's row and column strides, b and its
/// strides, beta, c and its strides.
pub type MatrixmultiplyGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

impl Scalar for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    const MATRIXMULTIPLY: MatrixmultiplyGemm<f32> = matrixmultiply::sgemm;
    const HAS_KERNEL: bool = true;

    fn kernel_product(
        library: Library,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        c: ArrayViewMut2<f32>,
        accumulate: bool,
        scale: f32,
    ) {
        use crate::kernel;
        if library == Library::Avx2Kernel {
            // Told apart from the update by the operands' layouts, as below.
            assert!(
                kernel::fits_forward(&a, &b, &c) && scale == 1.0,
                "the own AVX2 kernel computes only the forward product"
            );
            kernel::forward_avx2(a, b, c, accumulate);
            return;
        }
        assert!(kernel::available(), "the own kernels need AVX-512");
        // The operands' layouts tell the two products apart: the forward product `x · W` (x's
        // rows contiguous), or the folded update `W += scale · xᵀ · dout` (a = xᵀ, so a's
        // columns are).
        if kernel::fits_forward(&a, &b, &c) {
            assert!(scale == 1.0, "the own forward kernel does not scale");
            kernel::forward(a, b, c, accumulate);
        } else {
            assert!(accumulate, "the own kernels do not overwrite W");
            kernel::update(a.t(), b, c, scale);
        }
    }

    fn sparse_forward(rows: &SparseRows<f32>, w: &Aligned2<f32>, out: ArrayViewMut2<f32>) {
        crate::sparse::forward(rows, w, out);
    }

    fn sparse_update(
        rows: &SparseRows<f32>,
        dout: &[ArrayView2<f32>],
        w: &mut Aligned2<f32>,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        crate::sparse::update(rows, dout, w, scale, scratch);
    }
}

impl Scalar for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
    const MATRIXMULTIPLY: MatrixmultiplyGemm<f64> = matrixmultiply::dgemm;
}

/// `c = scale · a · b`, or `c += scale · a · b` when `accumulate`, for any strides, including
/// transposed views, by `gemm`. With `scale` = −lr and `accumulate`, that is an SGD step with
/// the gradient product folded in.
///
/// # Panics
/// When the shapes do not agree; callers size their buffers once, in `setup`.
pub fn matmul_into<T: Scalar>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    c: ArrayViewMut2<T>,
    accumulate: bool,
    scale: T,
) {
    matmul_with(Library::Gemm, a, b, c, accumulate, scale);
}

/// [`matmul_into`] by the given library.
pub fn matmul_with<T: Scalar>(
    library: Library,
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
    assert!(
        library != Library::Sparse,
        "the sparse kernels take the batch as SparseRows (Affine calls them)"
    );
    if matches!(library, Library::Kernel | Library::Avx2Kernel) {
        T::kernel_product(library, a, b, c, accumulate, scale);
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    if library == Library::Matrixmultiply {
        let beta = if accumulate { T::one() } else { T::zero() };
        // SAFETY: as for gemm below: pointers and element strides of live views whose shapes
        // were checked, `c` a unique borrow. With beta 0, matrixmultiply does not read `c`.
        unsafe {
            T::MATRIXMULTIPLY(
                m,
                k,
                n,
                scale,
                a.as_ptr(),
                a_rs,
                a_cs,
                b.as_ptr(),
                b_rs,
                b_cs,
                beta,
                c.as_mut_ptr(),
                c_rs,
                c_cs,
            );
        }
        return;
    }
    // SAFETY: `gemm` takes raw pointers and element strides. All three come from live ndarray
    // views whose dimensions were checked above to be exactly (m, k), (k, n) and (m, n), so every
    // address gemm touches lies inside those views. `c` is a unique borrow, so it cannot alias
    // `a` or `b`. (ndarray's safe `general_mat_mul` always uses matrixmultiply, and here neither
    // library wins on every CPU.)
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
        for library in Library::CRATES {
            let a = Array2::from_elem((2, 3), 1.0f32);
            let b = Array2::from_elem((3, 2), 2.0f32);
            let mut c = Array2::from_elem((2, 2), 0.5f32);
            matmul_with(library, a.view(), b.view(), c.view_mut(), true, -0.25);
            assert!(c.iter().all(|&v| v == 0.5 - 0.25 * 6.0), "{library:?}: {c}");
            // Without accumulate the old c is not read, even when it holds NaN.
            c.fill(f32::NAN);
            matmul_with(library, a.view(), b.view(), c.view_mut(), false, 1.0);
            assert!(c.iter().all(|&v| v == 6.0), "{library:?}: {c}");
        }
    }

    #[test]
    fn both_libraries_agree_on_transposed_and_strided_views() {
        let a = Array2::from_shape_fn((9, 13), |(i, j)| ((i * 13 + j) as f64 * 0.7).sin());
        let b = Array2::from_shape_fn((9, 5), |(i, j)| ((i * 5 + j) as f64 * 0.3).cos());
        let want = naive(&a.t().to_owned(), &b);
        for library in Library::CRATES {
            let mut c = Array2::zeros((13, 5).f());
            matmul_with(library, a.t(), b.view(), c.view_mut(), false, 1.0);
            assert!((&c - &want).iter().all(|d| d.abs() < 1e-12), "{library:?}");
        }
    }

    #[test]
    fn own_kernels_agree_with_gemm_on_both_products() {
        if !Library::candidates::<f32>().contains(&Library::Kernel) {
            return; // no AVX-512 here: `candidates` never offers them
        }
        let x = Array2::from_shape_fn((20, 37), |(i, j)| ((i * 37 + j) as f32 * 0.3).sin());
        let dout = Array2::from_shape_fn((20, 7), |(i, j)| ((i * 7 + j) as f32 * 0.7).cos());
        let w0 = Array2::from_shape_fn((37, 7).f(), |(i, j)| ((i + j) as f32 * 0.1).sin());
        let mut results = Vec::new();
        for library in [Library::Gemm, Library::Kernel] {
            let mut out = Array2::zeros((20, 7));
            matmul_with(library, x.view(), w0.view(), out.view_mut(), false, 1.0);
            let mut w = w0.clone();
            matmul_with(library, x.t(), dout.view(), w.view_mut(), true, -0.1);
            results.push((out, w));
        }
        let (gemm, kernel) = (&results[0], &results[1]);
        assert!((&gemm.0 - &kernel.0).iter().all(|d| d.abs() < 1e-5));
        assert!((&gemm.1 - &kernel.1).iter().all(|d| d.abs() < 1e-5));
        assert!((&kernel.1 - &w0).iter().any(|d| d.abs() > 1e-3), "W moved");
    }

    #[test]
    fn the_avx2_kernel_agrees_with_gemm_on_the_forward_product() {
        if !crate::kernel::available_avx2() {
            return;
        }
        let x = Array2::from_shape_fn((20, 37), |(i, j)| ((i * 37 + j) as f32 * 0.3).sin());
        let w = Array2::from_shape_fn((37, 7).f(), |(i, j)| ((i + j) as f32 * 0.1).sin());
        let product = |library| {
            let mut out = Array2::zeros((20, 7));
            matmul_with(library, x.view(), w.view(), out.view_mut(), false, 1.0);
            out
        };
        let (gemm, own) = (product(Library::Gemm), product(Library::Avx2Kernel));
        assert!((&gemm - &own).iter().all(|d| d.abs() < 1e-5));
        assert!(own.iter().any(|v| v.abs() > 0.1), "a product, not zeros");
    }

    #[test]
    #[should_panic(expected = "the own AVX2 kernel computes only the forward product")]
    fn the_avx2_kernel_is_not_run_for_the_update() {
        let x = Array2::<f32>::zeros((4, 6));
        let dout = Array2::<f32>::zeros((4, 3));
        let mut w = Array2::<f32>::zeros((6, 3).f());
        matmul_with(
            Library::Avx2Kernel,
            x.t(),
            dout.view(),
            w.view_mut(),
            true,
            -0.1,
        );
    }

    #[test]
    fn the_forward_kernel_is_the_avx512_one_where_it_runs_else_avx2() {
        let want = if crate::kernel::available() {
            Some(Library::Kernel)
        } else if crate::kernel::available_avx2() {
            Some(Library::Avx2Kernel)
        } else {
            None
        };
        assert_eq!(Library::forward_kernel::<f32>(), want);
        assert_eq!(Library::forward_kernel::<f64>(), None);
    }

    #[test]
    #[should_panic(expected = "no own kernels for f64")]
    fn own_kernels_are_not_run_for_types_they_lack() {
        let a = Array2::<f64>::zeros((2, 2));
        matmul_with(
            Library::Kernel,
            a.view(),
            a.view(),
            a.clone().view_mut(),
            false,
            1.0,
        );
    }

    #[test]
    fn fastest_picks_the_library_the_product_runs_faster_under() {
        for slow in Library::ALL {
            let picked = Library::fastest(&Library::ALL, |library| {
                if library == slow {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            });
            assert_ne!(picked, slow);
        }
    }
}
