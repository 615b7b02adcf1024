//! The first layer's two products in float32 on AVX-512 (and the forward one on AVX2), written
//! for this job's shapes.
//!
//! `gemm` and `matrixmultiply` tile for square-ish matrices; the products here are skinny
//! (100×784·784×50 and 784×100·100×50), and both crates reach two thirds of the FMA rate or less
//! on them (the `kernels` example times every way against this machine's FMA rate). Both products
//! are written here so that the long dimension, the 784 inputs, is the vector dimension, with W
//! held column-major (each unit's 784 weights contiguous), as the batch rows are:
//! - `x · W` is a dot product of a batch row with a column of W, for 5×5 (row, unit) pairs at
//!   once: 25 accumulators, each load of 16 inputs used 5 times;
//! - the folded update `W += scale · xᵀ · dout` adds 4×16 inputs × 5 units at once, over the
//!   batch rows: 20 accumulators, added to W once per tile.
//!
//! On CPUs with AVX2 but not AVX-512, `forward_avx2` is the forward product in 8-lane vectors:
//! 2×5 (row, unit) tiles, 10 accumulators in the 16 registers. There the crates' forward product
//! ran much slower than matrixmultiply's update of the same multiply-adds (the `kernels` example
//! built with `--no-default-features`), so there is no AVX2 update kernel.
//!
//! Safe code over `pulp`'s AVX-512 and AVX2 types (`V4`, `V3`): no `unsafe` here. Only float32
//! and only where the CPU has the instructions (`available`, `available_avx2`); `linalg` falls
//! back to the crates elsewhere.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Whether this CPU runs the kernels here (AVX-512 F, BW, CD, DQ, VL: pulp's `V4`).
pub fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    return pulp::x86::V4::try_new().is_some();
    #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
    false
}

/// Whether `forward` takes these operands: `x` and `out` rows and `w` columns contiguous.
pub fn fits_forward(x: &ArrayView2<f32>, w: &ArrayView2<f32>, out: &ArrayViewMut2<f32>) -> bool {
    x.dim().1 == w.dim().0
        && out.dim() == (x.dim().0, w.dim().1)
        && rows_contiguous(x.ncols(), x.strides())
        && columns_contiguous(w.nrows(), w.strides())
        && rows_contiguous(out.ncols(), out.strides())
}

/// Whether `update` takes these operands: `x` and `dout` rows and `w` columns contiguous.
pub fn fits_update(x: &ArrayView2<f32>, dout: &ArrayView2<f32>, w: &ArrayViewMut2<f32>) -> bool {
    x.nrows() == dout.nrows()
        && w.dim() == (x.ncols(), dout.ncols())
        && rows_contiguous(x.ncols(), x.strides())
        && rows_contiguous(dout.ncols(), dout.strides())
        && columns_contiguous(w.nrows(), w.strides())
}

/// Whether each row of a matrix with `columns` columns and these strides is one slice.
fn rows_contiguous(columns: usize, strides: &[isize]) -> bool {
    columns < 2 || strides[1] == 1
}

/// Whether each column of a matrix with `rows` rows and these strides is one slice.
fn columns_contiguous(rows: usize, strides: &[isize]) -> bool {
    rows < 2 || strides[0] == 1
}

/// `out = x · w`, or `out += x · w` when `accumulate`.
///
/// # Panics
/// Without AVX-512, or when the operands do not fit (`fits_forward`).
pub fn forward(x: ArrayView2<f32>, w: ArrayView2<f32>, out: ArrayViewMut2<f32>, accumulate: bool) {
    assert!(
        fits_forward(&x, &w, &out),
        "operands the forward kernel does not take"
    );
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    avx512::forward(x, w, out, accumulate);
    #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
    {
        let _ = (x, w, out, accumulate);
        unreachable!("no AVX-512 kernels in this build, as `available` says");
    }
}

/// `w += scale · xᵀ · dout`: with `scale` = −lr, the SGD step of the first layer.
///
/// # Panics
/// Without AVX-512, or when the operands do not fit (`fits_update`).
pub fn update(x: ArrayView2<f32>, dout: ArrayView2<f32>, w: ArrayViewMut2<f32>, scale: f32) {
    assert!(
        fits_update(&x, &dout, &w),
        "operands the update kernel does not take"
    );
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    avx512::update(x, dout, w, scale);
    #[cfg(not(all(target_arch = "x86_64", feature = "avx512")))]
    {
        let _ = (x, dout, w, scale);
        unreachable!("no AVX-512 kernels in this build, as `available` says");
    }
}

/// Whether this CPU runs `forward_avx2` (AVX2 and FMA: pulp's `V3`).
pub fn available_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx2::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `forward` in AVX2, for CPUs without AVX-512: 2×5 tiles of 8-lane dot products. Only the
/// forward product: with AVX2, matrixmultiply's folded update runs much faster than its forward
/// product of the same multiply-adds (the `kernels` example, `--no-default-features`).
///
/// # Panics
/// Without AVX2 and FMA, or when the operands do not fit (`fits_forward`).
pub fn forward_avx2(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    out: ArrayViewMut2<f32>,
    accumulate: bool,
) {
    assert!(
        fits_forward(&x, &w, &out),
        "operands the forward kernel does not take"
    );
    #[cfg(target_arch = "x86_64")]
    avx2::forward(x, w, out, accumulate);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, w, out, accumulate);
        unreachable!("no AVX2 kernel off x86-64, as `available_avx2` says");
    }
}

/// What the AVX-512 and AVX2 forward kernels share: their operands as lanes of whole vectors,
/// the loop over tiles of (row, unit) pairs, a tile's multiply-adds, and the pair-at-a-time edge
/// tiles. Each kernel keeps only its tile shape and how it sums the accumulators' lanes.
#[cfg(target_arch = "x86_64")]
mod tiles {
    use ndarray::{ArrayView2, ArrayViewMut2};
    use pulp::Simd;

    /// A row of x or a column of W: its whole vectors of `S`, and the rest.
    pub type Lane<'a, S> = (&'a [<S as Simd>::f32s], &'a [f32]);

    /// A forward product's operands as the tiles take them: x's rows and W's columns as lanes,
    /// and `out`'s rows.
    pub struct Operands<'a, S: Simd> {
        rows: Vec<Lane<'a, S>>,
        columns: Vec<Lane<'a, S>>,
        out_rows: Vec<&'a mut [f32]>,
    }

    /// The operands of `x · w` into `out`, for operands that fit (`super::fits_forward`): split
    /// into vectors once per call, not once per tile.
    pub fn operands<'a, S: Simd>(
        x: &'a ArrayView2<f32>,
        w: &'a ArrayView2<f32>,
        out: &'a mut ArrayViewMut2<f32>,
    ) -> Operands<'a, S> {
        let lane =
            |values: Option<&'a [f32]>| S::as_simd_f32s(values.expect("checked by fits_forward"));
        let rows = x.rows().into_iter().map(|r| lane(r.to_slice())).collect();
        let columns = w
            .columns()
            .into_iter()
            .map(|c| lane(c.to_slice()))
            .collect();
        let out_rows = out
            .rows_mut()
            .into_iter()
            .map(|r| r.into_slice().expect("checked by fits_forward"))
            .collect();
        Operands {
            rows,
            columns,
            out_rows,
        }
    }

    /// For each tile of `R` rows and `U` units (units outer, so a tile's columns of W stay in
    /// L1 while the rows stream past): `dot_tile`'s sums written to `out`, or added when
    /// `accumulate`. The sums go out through row slices: indexing `out` element by element (a
    /// bounds check and stride arithmetic per sum) was a large part of what a tile costs
    /// besides its multiply-adds.
    #[inline(always)]
    pub fn by_tiles<S: Simd, const R: usize, const U: usize>(
        operands: &mut Operands<S>,
        accumulate: bool,
        dot_tile: impl Fn(&[Lane<S>], &[Lane<S>]) -> [[f32; U]; R],
    ) {
        let Operands {
            rows,
            columns,
            out_rows,
        } = operands;
        for (u0, unit_tile) in columns.chunks(U).enumerate() {
            let units = u0 * U..u0 * U + unit_tile.len();
            for (row_tile, out_tile) in rows.chunks(R).zip(out_rows.chunks_mut(R)) {
                let sums = dot_tile(row_tile, unit_tile);
                for (row_sums, out_row) in sums.iter().zip(out_tile.iter_mut()) {
                    let out_row = &mut out_row[units.clone()];
                    if accumulate {
                        for (o, &sum) in out_row.iter_mut().zip(row_sums) {
                            *o += sum;
                        }
                    } else {
                        out_row.copy_from_slice(&row_sums[..units.len()]);
                    }
                }
            }
        }
    }

    /// The `R`×`U` dot products of a whole tile as vectors of lane-wise partial sums: each
    /// vector of a row loaded once and used `U` times, each of a column `R` times.
    #[inline(always)]
    pub fn accumulators<S: Simd, const R: usize, const U: usize>(
        simd: S,
        rows: &[Lane<S>; R],
        columns: &[Lane<S>; U],
    ) -> [[S::f32s; U]; R] {
        let mut acc = [[simd.splat_f32s(0.0); U]; R];
        let count = rows[0].0.len();
        let heads = rows.map(|l| &l.0[..count]);
        let c_heads = columns.map(|l| &l.0[..count]);
        for v in 0..count {
            let xs: [S::f32s; R] = std::array::from_fn(|i| heads[i][v]);
            for j in 0..U {
                for i in 0..R {
                    acc[i][j] = simd.mul_add_f32s(xs[i], c_heads[j][v], acc[i][j]);
                }
            }
        }
        if !rows[0].1.is_empty() {
            let xs = rows.map(|l| simd.partial_load_f32s(l.1));
            for j in 0..U {
                let wv = simd.partial_load_f32s(columns[j].1);
                for i in 0..R {
                    acc[i][j] = simd.mul_add_f32s(xs[i], wv, acc[i][j]);
                }
            }
        }
        acc
    }

    /// The dot products of a tile one pair at a time, for the edge tiles the kernels' register
    /// tiles do not fit (none in this job's shapes); entries past the tile are 0.
    #[inline(always)]
    pub fn edge_tile<S: Simd, const R: usize, const U: usize>(
        simd: S,
        rows: &[Lane<S>],
        columns: &[Lane<S>],
    ) -> [[f32; U]; R] {
        let mut sums = [[0.0; U]; R];
        for (i, row) in rows.iter().enumerate() {
            for (j, column) in columns.iter().enumerate() {
                let [[acc]] = accumulators(simd, &[*row], &[*column]);
                sums[i][j] = simd.reduce_sum_f32s(acc);
            }
        }
        sums
    }
}

/// The kernels, on pulp's AVX-512 type.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
mod avx512 {
    use super::tiles::{accumulators, by_tiles, edge_tile, operands};
    use ndarray::{ArrayView2, ArrayViewMut2};
    use pulp::{x86::V4, Simd};

    /// Lanes of an AVX-512 float32 vector.
    const LANES: usize = 16;

    pub fn forward(
        x: ArrayView2<f32>,
        w: ArrayView2<f32>,
        mut out: ArrayViewMut2<f32>,
        accumulate: bool,
    ) {
        let simd = V4::try_new().expect("AVX-512, checked by the caller");
        let mut operands = operands::<V4>(&x, &w, &mut out);
        simd.vectorize(
            #[inline(always)]
            || {
                by_tiles::<V4, TILE, TILE>(
                    &mut operands,
                    accumulate,
                    #[inline(always)]
                    |rows, columns| dot_tile(simd, rows, columns),
                )
            },
        );
    }

    pub fn update(x: ArrayView2<f32>, dout: ArrayView2<f32>, w: ArrayViewMut2<f32>, scale: f32) {
        let simd = V4::try_new().expect("AVX-512, checked by the caller");
        let mut w = w;
        let (inputs, units) = w.dim();
        let rows: Vec<&[f32]> = x.rows().into_iter().map(contiguous).collect();
        let dout: Vec<&[f32]> = dout.rows().into_iter().map(contiguous).collect();
        let mut columns: Vec<&mut [f32]> =
            w.columns_mut().into_iter().map(contiguous_mut).collect();
        // Whole vectors of each row, and whole tiles of 5 units of each row of dout: sliced once
        // here, so the loop over the batch rows does no slicing of its own.
        let row_vectors: Vec<&[[f32; LANES]]> = rows.iter().map(|r| vectors_of(r).0).collect();
        let dout_tiles: Vec<&[[f32; TILE]]> = dout
            .iter()
            .map(|d| pulp::as_arrays::<TILE, f32>(d).0)
            .collect();
        let (vectors, tiles) = (inputs / LANES, units / TILE);
        simd.vectorize(
            #[inline(always)]
            || {
                let mut v0 = 0;
                while v0 < vectors {
                    let count = (vectors - v0).min(4);
                    let block = Block {
                        row_vectors: &row_vectors,
                        dout_tiles: &dout_tiles,
                        v0,
                        tiles,
                    };
                    match count {
                        4 => outer_block::<4>(simd, block, &mut columns, scale),
                        3 => outer_block::<3>(simd, block, &mut columns, scale),
                        2 => outer_block::<2>(simd, block, &mut columns, scale),
                        _ => outer_block::<1>(simd, block, &mut columns, scale),
                    }
                    v0 += count;
                }
                // What the whole tiles leave: the last inputs (fewer than a vector) of every
                // unit, and the last units (fewer than a tile) over the whole vectors.
                let edges = [
                    (vectors * LANES..inputs, 0..units),
                    (0..vectors * LANES, tiles * TILE..units),
                ];
                for (inputs, units) in edges {
                    outer_edge(simd, &rows, &dout, inputs, units, &mut columns, scale);
                }
            },
        );
    }

    /// Rows (or units) per tile of the forward kernel, and units per tile of the update.
    const TILE: usize = 5;

    fn contiguous<'a>(lane: ndarray::ArrayView1<'a, f32>) -> &'a [f32] {
        lane.to_slice().expect("checked by fits_*")
    }

    fn contiguous_mut<'a>(lane: ndarray::ArrayViewMut1<'a, f32>) -> &'a mut [f32] {
        lane.into_slice().expect("checked by fits_*")
    }

    type Lane<'a> = super::tiles::Lane<'a, V4>;

    /// The dot products of up to 5 rows with up to 5 columns; entries past them are 0.
    #[inline(always)]
    fn dot_tile(simd: V4, rows: &[Lane], columns: &[Lane]) -> [[f32; TILE]; TILE] {
        let (Ok(rows), Ok(columns)) = (
            <&[Lane; TILE]>::try_from(rows),
            <&[Lane; TILE]>::try_from(columns),
        ) else {
            return edge_tile(simd, rows, columns);
        };
        let acc = accumulators(simd, rows, columns);
        let flat: [pulp::f32x16; TILE * TILE] = std::array::from_fn(|k| acc[k / TILE][k % TILE]);
        let mut sums = [[0.0; TILE]; TILE];
        for (chunk, eight) in flat.chunks_exact(8).enumerate() {
            let eight = sums_of_eight(simd, eight.try_into().expect("8 accumulators"));
            for (k, sum) in eight.into_iter().enumerate() {
                let at = chunk * 8 + k;
                sums[at / TILE][at % TILE] = sum;
            }
        }
        let last = TILE * TILE - 1;
        sums[last / TILE][last % TILE] = simd.reduce_sum_f32s(flat[last]);
        sums
    }

    /// The sums of 8 vectors' lanes, by shuffles that add 8 vectors at a time: 24 instructions,
    /// where summing each vector alone takes 8 each. A forward product sums one vector per (row,
    /// unit) pair, 5,000 per step for this job, on the same ports as the multiply-adds.
    #[inline(always)]
    fn sums_of_eight(simd: V4, v: [pulp::f32x16; 8]) -> [f32; 8] {
        let f = simd.avx512f;
        let v = v.map(pulp::cast::<pulp::f32x16, std::arch::x86_64::__m512>);
        // Two vectors into one: 128-bit blocks [a0+a2, a1+a3, b0+b2, b1+b3].
        let pair = |a, b| {
            f._mm512_add_ps(
                f._mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                f._mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        };
        // Two pairs into one: block k holds 4 partial sums of the k-th of the four vectors.
        let quad = |p, q| {
            f._mm512_add_ps(
                f._mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
                f._mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
            )
        };
        let x = quad(pair(v[0], v[1]), pair(v[2], v[3]));
        let y = quad(pair(v[4], v[5]), pair(v[6], v[7]));
        // Within each block: [x0+x2, x1+x3, y0+y2, y1+y3], then each pair added to its neighbour.
        let u = f._mm512_add_ps(
            f._mm512_shuffle_ps::<0b01_00_01_00>(x, y),
            f._mm512_shuffle_ps::<0b11_10_11_10>(x, y),
        );
        let w: [f32; LANES] =
            pulp::cast(f._mm512_add_ps(u, f._mm512_shuffle_ps::<0b10_11_00_01>(u, u)));
        [w[0], w[4], w[8], w[12], w[2], w[6], w[10], w[14]]
    }

    /// A lane's whole vectors of 16, and the rest.
    #[inline(always)]
    fn vectors_of(lane: &[f32]) -> (&[[f32; LANES]], &[f32]) {
        pulp::as_arrays::<LANES, f32>(lane)
    }

    /// What `outer_block` works on: every batch row as whole vectors, every row of dout as whole
    /// tiles of units, the first vector of the block, and how many whole tiles there are.
    #[derive(Clone, Copy)]
    struct Block<'a> {
        row_vectors: &'a [&'a [[f32; LANES]]],
        dout_tiles: &'a [&'a [[f32; TILE]]],
        v0: usize,
        tiles: usize,
    }

    /// For vectors `v0..v0 + V` of the inputs (the rows of W) and every whole tile of 5 units:
    /// `W += scale · Σ_r x[r] ⊗ dout[r]`, the accumulators in registers.
    #[inline(always)]
    fn outer_block<const V: usize>(
        simd: V4,
        Block {
            row_vectors,
            dout_tiles,
            v0,
            tiles,
        }: Block,
        columns: &mut [&mut [f32]],
        scale: f32,
    ) {
        let chunks: Vec<&[[f32; LANES]; V]> = row_vectors
            .iter()
            .map(|r| r[v0..v0 + V].try_into().expect("V vectors"))
            .collect();
        let zero = simd.splat_f32x16(0.0);
        let scale = simd.splat_f32x16(scale);
        for tile in 0..tiles {
            let mut acc = [[zero; TILE]; V];
            for (chunk, d) in chunks.iter().zip(dout_tiles) {
                let xs: [pulp::f32x16; V] = chunk.map(pulp::cast);
                let d = &d[tile];
                for j in 0..TILE {
                    let dv = simd.splat_f32x16(d[j]);
                    for v in 0..V {
                        acc[v][j] = simd.mul_add_f32x16(xs[v], dv, acc[v][j]);
                    }
                }
            }
            for (j, column) in columns[tile * TILE..(tile + 1) * TILE]
                .iter_mut()
                .enumerate()
            {
                let part =
                    pulp::as_arrays_mut::<LANES, f32>(&mut column[v0 * LANES..(v0 + V) * LANES]).0;
                for v in 0..V {
                    let old: pulp::f32x16 = pulp::cast(part[v]);
                    part[v] = pulp::cast(simd.mul_add_f32x16(acc[v][j], scale, old));
                }
            }
        }
    }

    /// `W += scale · Σ_r x[r] ⊗ dout[r]` over any range of inputs and units, a vector at a
    /// time (the edges `outer_block` leaves; none for this job's shapes).
    #[inline(always)]
    fn outer_edge(
        simd: V4,
        rows: &[&[f32]],
        dout: &[&[f32]],
        inputs: std::ops::Range<usize>,
        units: std::ops::Range<usize>,
        columns: &mut [&mut [f32]],
        scale: f32,
    ) {
        let scale = simd.splat_f32x16(scale);
        for unit in units {
            let column = &mut columns[unit];
            for v0 in inputs.clone().step_by(LANES) {
                let lanes = v0..(v0 + LANES).min(inputs.end);
                let mut acc = simd.splat_f32x16(0.0);
                for (row, d) in rows.iter().zip(dout) {
                    let x = simd.partial_load_f32s(&row[lanes.clone()]);
                    acc = simd.mul_add_f32x16(x, simd.splat_f32x16(d[unit]), acc);
                }
                let old = simd.partial_load_f32s(&column[lanes.clone()]);
                simd.partial_store_f32s(&mut column[lanes], simd.mul_add_f32x16(acc, scale, old));
            }
        }
    }
}

/// The forward kernel on pulp's AVX2 type (`V3`: AVX2 and FMA), for CPUs without AVX-512.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::tiles::{accumulators, by_tiles, edge_tile, operands};
    use ndarray::{ArrayView2, ArrayViewMut2};
    use pulp::{x86::V3, Simd};

    /// Rows and units per tile: 10 accumulators, 2 rows and a column of W in 13 of the 16
    /// registers; 100 rows and 50 units split into whole tiles.
    const ROWS: usize = 2;
    const UNITS: usize = 5;

    /// Whether this CPU runs `forward` (AVX2 and FMA).
    pub fn available() -> bool {
        V3::try_new().is_some()
    }

    /// `super::forward_avx2`.
    pub fn forward(
        x: ArrayView2<f32>,
        w: ArrayView2<f32>,
        mut out: ArrayViewMut2<f32>,
        accumulate: bool,
    ) {
        let simd = V3::try_new().expect("AVX2 and FMA");
        let mut operands = operands::<V3>(&x, &w, &mut out);
        simd.vectorize(
            #[inline(always)]
            || {
                by_tiles::<V3, ROWS, UNITS>(
                    &mut operands,
                    accumulate,
                    #[inline(always)]
                    |rows, columns| dot_tile(simd, rows, columns),
                )
            },
        );
    }

    type Lane<'a> = super::tiles::Lane<'a, V3>;

    /// The sums of 8 vectors' lanes by horizontal adds, 8 vectors at a time: 10 instructions,
    /// where summing each vector alone takes 5 each.
    #[inline(always)]
    fn sums_of_eight(simd: V3, v: [pulp::f32x8; 8]) -> [f32; 8] {
        let avx = simd.avx;
        let v = v.map(pulp::cast::<pulp::f32x8, std::arch::x86_64::__m256>);
        // Each 128-bit half of hadd(a, b) holds pair sums of a's half, then of b's.
        let pairs = [0, 2, 4, 6].map(|i| avx._mm256_hadd_ps(v[i], v[i + 1]));
        let lo_quads = avx._mm256_hadd_ps(pairs[0], pairs[1]);
        let hi_quads = avx._mm256_hadd_ps(pairs[2], pairs[3]);
        // Lane k of each half is a half-sum of vector k; the two halves add up to its sum.
        let sums = avx._mm256_add_ps(
            avx._mm256_permute2f128_ps::<0x20>(lo_quads, hi_quads),
            avx._mm256_permute2f128_ps::<0x31>(lo_quads, hi_quads),
        );
        pulp::cast(sums)
    }

    /// The dot products of up to 2 rows with up to 5 columns; entries past them are 0.
    #[inline(always)]
    fn dot_tile(simd: V3, rows: &[Lane], columns: &[Lane]) -> [[f32; UNITS]; ROWS] {
        let (Ok(rows), Ok(columns)) = (
            <&[Lane; ROWS]>::try_from(rows),
            <&[Lane; UNITS]>::try_from(columns),
        ) else {
            return edge_tile(simd, rows, columns);
        };
        let acc = accumulators(simd, rows, columns);
        let flat: [pulp::f32x8; ROWS * UNITS] = std::array::from_fn(|k| acc[k / UNITS][k % UNITS]);
        let eight = sums_of_eight(simd, flat[..8].try_into().expect("8 accumulators"));
        let mut sums = [[0.0; UNITS]; ROWS];
        for (k, sum) in eight
            .into_iter()
            .chain(flat[8..].iter().map(|&a| simd.reduce_sum_f32s(a)))
            .enumerate()
        {
            sums[k / UNITS][k % UNITS] = sum;
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols())
                .map(|p| f64::from(a[[i, p]]) * f64::from(b[[p, j]]))
                .sum()
        })
    }

    fn close(got: &Array2<f32>, want: &Array2<f64>) -> bool {
        got.iter()
            .zip(want)
            .all(|(&g, &w)| (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()))
    }

    /// Shapes with whole tiles and vectors, and every kind of edge.
    const SHAPES: [(usize, usize, usize); 5] = [
        (100, 784, 50),
        (10, 64, 5),
        (7, 70, 3),
        (1, 5, 1),
        (13, 129, 11),
    ];

    /// `forward` (or `forward_avx2`) against `naive` on every shape, overwriting and adding.
    fn check_forward(forward: fn(ArrayView2<f32>, ArrayView2<f32>, ArrayViewMut2<f32>, bool)) {
        for (rows, inputs, units) in SHAPES {
            let x = Array2::from_shape_fn((rows, inputs), |(i, j)| {
                ((i * 7 + j * 3) % 11) as f32 / 11.0
            });
            let w = Array2::from_shape_fn((inputs, units).f(), |(i, j)| {
                ((i * 5 + j) % 13) as f32 / 13.0 - 0.5
            });
            let mut out = Array2::from_elem((rows, units), f32::NAN);
            forward(x.view(), w.view(), out.view_mut(), false);
            let want = naive(x.view(), w.view());
            assert!(close(&out, &want), "{rows}×{inputs}·{inputs}×{units}");
            forward(x.view(), w.view(), out.view_mut(), true);
            assert!(
                close(&out, &(want * 2.0)),
                "accumulated, {rows}×{inputs}·{inputs}×{units}"
            );
        }
    }

    #[test]
    fn forward_matches_a_naive_product() {
        if available() {
            check_forward(forward);
        }
    }

    #[test]
    fn avx2_forward_matches_a_naive_product() {
        if available_avx2() {
            check_forward(forward_avx2);
        }
    }

    #[test]
    fn update_matches_a_naive_sgd_step() {
        if !available() {
            return;
        }
        for (rows, inputs, units) in SHAPES {
            let x = Array2::from_shape_fn((rows, inputs), |(i, j)| {
                ((i * 7 + j * 3) % 11) as f32 / 11.0
            });
            let dout =
                Array2::from_shape_fn((rows, units), |(i, j)| ((i * 3 + j) % 7) as f32 / 7.0 - 0.4);
            let w0 = Array2::from_shape_fn((inputs, units).f(), |(i, j)| {
                ((i * 5 + j) % 13) as f32 / 13.0
            });
            let mut w = w0.clone();
            update(x.view(), dout.view(), w.view_mut(), -0.1);
            let want = w0.mapv(f64::from) - naive(x.t(), dout.view()) * 0.1;
            assert!(close(&w, &want), "{rows}×{inputs}, {units} units");
        }
    }

    #[test]
    fn operands_in_other_layouts_are_refused() {
        let x = Array2::<f32>::zeros((4, 20));
        let w_rows = Array2::<f32>::zeros((20, 3));
        let mut out = Array2::<f32>::zeros((4, 3));
        assert!(!fits_forward(&x.view(), &w_rows.view(), &out.view_mut()));
        let w = Array2::<f32>::zeros((20, 3).f());
        assert!(fits_forward(&x.view(), &w.view(), &out.view_mut()));
        // The same shapes with x's rows not contiguous.
        let x_by_columns = Array2::<f32>::zeros((4, 20).f());
        assert!(!fits_forward(
            &x_by_columns.view(),
            &w.view(),
            &out.view_mut()
        ));
        // One row is not contiguous either when its columns are strided, nor is an output
        // whose rows are not.
        let wide = Array2::<f32>::zeros((1, 40));
        let every_other = wide.slice(ndarray::s![.., ..;2]);
        let mut one_out = Array2::<f32>::zeros((1, 3));
        assert!(!fits_forward(&every_other, &w.view(), &one_out.view_mut()));
        let mut out_by_columns = Array2::<f32>::zeros((4, 3).f());
        assert!(!fits_forward(
            &x.view(),
            &w.view(),
            &out_by_columns.view_mut()
        ));
        let x_one = Array2::<f32>::zeros((1, 20));
        assert!(fits_forward(&x_one.view(), &w.view(), &one_out.view_mut()));
        let dout = Array2::<f32>::zeros((4, 3));
        assert!(fits_update(&x.view(), &dout.view(), &w.clone().view_mut()));
        let one_dout = Array2::<f32>::zeros((1, 3));
        assert!(!fits_update(
            &every_other,
            &one_dout.view(),
            &w.clone().view_mut()
        ));
        assert!(!fits_update(
            &x.view(),
            &dout.view(),
            &w_rows.clone().view_mut()
        ));
    }
}
