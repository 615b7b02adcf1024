//! The first layer's two products over a batch's nonzero inputs only.
//!
//! Four pixels in five of MNIST are 0, and a zero input adds nothing to `x · W` nor to the
//! weight gradient `xᵀ · dout`. Held as lists of (column, value) per row, the batch costs one
//! multiply-add per nonzero input and unit instead of one per input and unit: for MNIST's ~150
//! nonzero pixels of 784, about a fifth of the dense products' multiply-adds. What is left is
//! row-wise, with W row-major (each input's weights contiguous):
//! - `x · W`: each row's output is the sum of W's rows at its columns, scaled by its values;
//! - `W += scale · xᵀ · dout`: the gradient of each input's weights is the sum of `dout`'s rows
//!   where the input is nonzero, scaled by its values, summed over the batch (in row order) for
//!   one 64-input block at a time in a small buffer that stays in L1, then added to W.
//!
//! `SparseRows` is what a thread gathers of the batch (`TrainingSet::gather_sparse`); which way
//! a run takes is its choice (`TrainingSet::is_sparse`) and is recorded with the run. Float32,
//! safe code over `pulp`'s SIMD types (AVX-512, AVX2, or one lane at a time).

use std::ops::Range;

use ndarray::{ArrayView2, ArrayViewMut2};
use pulp::{Simd, WithSimd};

use crate::aligned::{aligned_mut, Aligned2};

/// Columns per block, as the packed rows' masks (`trainset`): the update sums one block's
/// gradient at a time.
pub const BLOCK: usize = 64;

/// The rows of a batch restricted to `columns`, as their nonzero entries in column order, with
/// where each row's entries of each 64-column block start.
#[derive(Clone, Debug)]
pub struct SparseRows<T> {
    columns: Range<usize>,
    /// The blocks `columns` overlaps: `columns.start / BLOCK..columns.end.div_ceil(BLOCK)`.
    blocks: Range<usize>,
    /// Each entry's column, counted from `columns.start`; the first `len` are the entries, the
    /// rest room to write whole vectors of them.
    at: Vec<u32>,
    values: Vec<T>,
    len: usize,
    /// `[0]`, then for each row and each of its blocks, where the block's entries end.
    ends: Vec<usize>,
    /// Per block, the columns any row has an entry in (bit `i`: column `block * BLOCK + i`).
    touched: Vec<u64>,
    /// How a block's columns are listed, detected once.
    lister: Lister,
}

/// The SIMD a block's columns are listed in.
#[derive(Clone, Copy, Debug)]
enum Lister {
    /// 16 columns at a time.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    Avx512(pulp::x86::V4),
    /// 8 columns at a time.
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    /// One set bit at a time.
    Loop,
}

impl Lister {
    fn detect() -> Self {
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if let Some(simd) = pulp::x86::V4::try_new() {
            return Lister::Avx512(simd);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            return Lister::Avx2(simd);
        }
        Lister::Loop
    }
}

/// Entries written past the last one when the columns are listed 16 at a time.
const SPARE: usize = 16;

impl<T: Copy + num_traits::Zero> SparseRows<T> {
    /// No rows yet, room for `rows` rows of `columns` (more rows make room as they come).
    pub fn new(columns: Range<usize>, rows: usize) -> Self {
        let blocks = columns.start / BLOCK..columns.end.div_ceil(BLOCK).max(columns.start / BLOCK);
        let room = rows * columns.len() + SPARE;
        let mut sparse = SparseRows {
            at: vec![0; room],
            values: vec![T::zero(); room],
            len: 0,
            ends: Vec::with_capacity(rows * blocks.len() + 1),
            touched: vec![0; blocks.len()],
            columns,
            blocks,
            lister: Lister::detect(),
        };
        sparse.clear();
        sparse
    }

    /// Forgets every row (keeps the memory).
    pub fn clear(&mut self) {
        self.len = 0;
        self.ends.clear();
        self.ends.push(0);
        self.touched.fill(0);
    }

    pub fn columns(&self) -> Range<usize> {
        self.columns.clone()
    }

    /// Rows added (none can be, to an empty range of columns).
    pub fn rows(&self) -> usize {
        (self.ends.len() - 1) / self.blocks.len().max(1)
    }

    /// Entries in all rows.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a row from its nonzero columns: `mask(b)` has bit `i` set where column
    /// `b * BLOCK + i` is nonzero (bits outside `columns` are ignored), and `values` writes the
    /// values of the row's nonzero columns in `columns`, in column order, into the slice it gets.
    #[inline(always)]
    pub fn push_row(&mut self, mask: impl Fn(usize) -> u64, values: impl FnOnce(&mut [T])) {
        let first = self.len;
        if self.at.len() < first + self.columns.len() + SPARE {
            let room = 2 * self.at.len() + self.columns.len() + SPARE;
            self.at.resize(room, 0);
            self.values.resize(room, T::zero());
        }
        match self.lister {
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Lister::Avx512(simd) => simd.vectorize(
                #[inline(always)]
                || {
                    self.list_columns(
                        mask,
                        #[inline(always)]
                        |at, bits, base| list_avx512(simd, at, bits, base),
                    )
                },
            ),
            #[cfg(target_arch = "x86_64")]
            Lister::Avx2(simd) => simd.vectorize(
                #[inline(always)]
                || {
                    self.list_columns(
                        mask,
                        #[inline(always)]
                        |at, bits, base| list_avx2(simd, at, bits, base),
                    )
                },
            ),
            Lister::Loop => self.list_columns(mask, list_bit_by_bit),
        }
        values(&mut self.values[first..self.len]);
    }

    /// Appends the columns of a row's entries, block by block, with `list` writing a block's
    /// columns from `at[0]` on (given the block's bits and its first column) and returning how
    /// many.
    #[inline(always)]
    fn list_columns(
        &mut self,
        mask: impl Fn(usize) -> u64,
        list: impl Fn(&mut [u32], u64, u32) -> usize,
    ) {
        for (touched, block) in self.touched.iter_mut().zip(self.blocks.clone()) {
            let bits = mask(block) & in_range(block, &self.columns);
            *touched |= bits;
            // Wraps below 0 for a first block that starts before `columns`; its columns there
            // are not in `bits`, and the others wrap back.
            let base = ((block * BLOCK) as u32).wrapping_sub(self.columns.start as u32);
            self.len += list(&mut self.at[self.len..], bits, base);
            self.ends.push(self.len);
        }
    }

    /// Adds a row given in full (its values in `columns`): the entries are those not equal to 0.
    pub fn push_dense_row(&mut self, row: &[T])
    where
        T: PartialEq,
    {
        assert_eq!(row.len(), self.columns.len(), "a row of the columns");
        let start = self.columns.start;
        let mask = |block: usize| {
            let from = (block * BLOCK).max(start);
            let to = ((block + 1) * BLOCK).min(self.columns.end);
            (from..to)
                .filter(|&c| row[c - start] != T::zero())
                .fold(0u64, |m, c| m | 1 << (c - block * BLOCK))
        };
        let kept: Vec<T> = row.iter().copied().filter(|&v| v != T::zero()).collect();
        let masks: Vec<u64> = self.blocks.clone().map(mask).collect();
        let first_block = self.blocks.start;
        self.push_row(|b| masks[b - first_block], |out| out.copy_from_slice(&kept));
    }

    /// Row `row`'s entries of block number `block` (counted from the first block of `columns`):
    /// their columns (from `columns.start`) and values.
    fn entries(&self, row: usize, block: usize) -> (&[u32], &[T]) {
        let i = row * self.blocks.len() + block;
        let range = self.ends[i]..self.ends[i + 1];
        (&self.at[range.clone()], &self.values[range])
    }

    /// Row `row`'s entries: their columns (from `columns.start`) and values.
    pub fn row(&self, row: usize) -> (&[u32], &[T]) {
        let blocks = self.blocks.len();
        let range = self.ends[row * blocks]..self.ends[(row + 1) * blocks];
        (&self.at[range.clone()], &self.values[range])
    }
}

/// `SparseRows::list_columns`'s `list`, one set bit at a time.
#[inline(always)]
fn list_bit_by_bit(at: &mut [u32], mut bits: u64, base: u32) -> usize {
    let mut n = 0;
    while bits != 0 {
        at[n] = base.wrapping_add(bits.trailing_zeros());
        bits &= bits - 1;
        n += 1;
    }
    n
}

/// `list_bit_by_bit` 16 columns at a time: one `vpcompressd` of the 16 column numbers by 16 bits
/// of the mask, written whole (`SPARE` entries of room past the last).
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[inline(always)]
fn list_avx512(simd: pulp::x86::V4, at: &mut [u32], bits: u64, base: u32) -> usize {
    let avx = simd.avx512f;
    let counting = avx._mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for quarter in 0..4 {
        // Each quarter's place from the bits below it, not from the quarter before: the four
        // stores then do not wait on each other's counts.
        let n = (bits & ((1u64 << (16 * quarter)) - 1)).count_ones() as usize;
        let quarter_bits = (bits >> (16 * quarter)) as u16;
        let first = avx._mm512_set1_epi32(base.wrapping_add(16 * quarter) as i32);
        let columns =
            avx._mm512_maskz_compress_epi32(quarter_bits, avx._mm512_add_epi32(counting, first));
        let columns: [u32; 16] = pulp::cast(columns);
        at[n..n + 16].copy_from_slice(&columns);
    }
    bits.count_ones() as usize
}

/// `list_bit_by_bit` 8 columns at a time: the positions of 8 mask bits' set bits, from a table,
/// widened to 8 column numbers and written whole.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn list_avx2(simd: pulp::x86::V3, at: &mut [u32], bits: u64, base: u32) -> usize {
    let avx = simd.avx2;
    let mut n = 0;
    for eighth in 0..8 {
        let bits = (bits >> (8 * eighth)) as u8;
        let positions: std::arch::x86_64::__m128i = pulp::cast([SET_BITS[usize::from(bits)], 0]);
        let first = simd
            .avx
            ._mm256_set1_epi32(base.wrapping_add(8 * eighth) as i32);
        let columns = avx._mm256_add_epi32(avx._mm256_cvtepu8_epi32(positions), first);
        let columns: [u32; 8] = pulp::cast(columns);
        at[n..n + 8].copy_from_slice(&columns);
        n += bits.count_ones() as usize;
    }
    n
}

/// Per value of 8 mask bits, the positions of its set bits in order, a byte each (the bytes
/// past the last are 0).
#[cfg(target_arch = "x86_64")]
const SET_BITS: [u64; 256] = set_bit_positions();

#[cfg(target_arch = "x86_64")]
const fn set_bit_positions() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut bits = 0;
    while bits < 256 {
        let (mut positions, mut count, mut i) = (0u64, 0, 0);
        while i < 8 {
            if bits >> i & 1 == 1 {
                positions |= (i as u64) << (8 * count);
                count += 1;
            }
            i += 1;
        }
        table[bits] = positions;
        bits += 1;
    }
    table
}

/// The bits of block `block`'s mask that are columns in `columns`.
fn in_range(block: usize, columns: &Range<usize>) -> u64 {
    let from = columns.start.saturating_sub(block * BLOCK).min(BLOCK);
    let to = columns.end.saturating_sub(block * BLOCK).min(BLOCK);
    let below = |n: usize| {
        if n == BLOCK {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    };
    below(to) & !below(from)
}

/// Vectors of units a forward pass over the entries keeps in registers, in two sets (see
/// `forward_pass`): 4 AVX-512 vectors hold MNIST's 50 hidden units. More units take more
/// passes. (With AVX2, one pass of 7 vectors in one set measured no faster than two passes.)
const FORWARD_VECTORS: usize = 4;

/// Units an update pass keeps a row of dout for in registers, in at most 8 vectors: 4 AVX-512
/// vectors or 8 AVX2 vectors, which hold MNIST's 50 hidden units. (With AVX2, one pass of 7
/// vectors instead of two of 4 and 3 took the update from 56.5 to 46.9 µs per step in
/// development runs.)
const UPDATE_UNITS: usize = 64;

/// One pass's part of W: vectors `first..first + V` of each row (`V` the pass's width), rows
/// `stride` vectors apart; and the units those vectors hold.
struct Pass {
    stride: usize,
    first: usize,
    units: Range<usize>,
}

impl Pass {
    /// Where the pass's vectors of W's row `row` start.
    fn at(&self, row: usize) -> usize {
        row * self.stride + self.first
    }
}

/// The passes over W's units for `units` units in vectors of `lanes` lanes, `most` vectors at a
/// time: where each starts, and how many vectors it takes.
fn passes(units: usize, lanes: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
    let vectors = units.div_ceil(lanes);
    (0..vectors)
        .step_by(most)
        .map(move |first| (first, (vectors - first).min(most)))
}

/// `out = x · w`, with x given as `rows` (its columns are w's rows) and `w` row-major.
///
/// # Panics
/// When the shapes do not chain or `w` is column-major.
pub fn forward(rows: &SparseRows<f32>, w: &Aligned2<f32>, mut out: ArrayViewMut2<f32>) {
    assert!(
        w.dim().0 == rows.columns.len()
            && out.dim() == (rows.rows(), w.dim().1)
            && !w.is_column_major(),
        "operands the sparse forward product does not take"
    );
    let out: Vec<&mut [f32]> = out
        .rows_mut()
        .into_iter()
        .map(|row| row.into_slice().expect("out's rows contiguous"))
        .collect();
    pulp::Arch::new().dispatch(Forward { rows, w, out });
}

struct Forward<'a> {
    rows: &'a SparseRows<f32>,
    w: &'a Aligned2<f32>,
    out: Vec<&'a mut [f32]>,
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Forward { rows, w, mut out } = self;
        let units = w.dim().1;
        let (lines, stride) = w.padded_rows();
        let lanes = S::F32_LANES;
        // Whole vectors: the rows start on 64-byte lines, and `padded_rows` ends after a line.
        let w = S::as_simd_f32s(lines).0;
        for (first, vectors) in passes(units, lanes, FORWARD_VECTORS) {
            let pass = Pass {
                stride: stride / lanes,
                first,
                units: first * lanes..((first + vectors) * lanes).min(units),
            };
            match vectors {
                1 => forward_pass::<S, 1>(simd, rows, w, &pass, &mut out),
                2 => forward_pass::<S, 2>(simd, rows, w, &pass, &mut out),
                3 => forward_pass::<S, 3>(simd, rows, w, &pass, &mut out),
                _ => forward_pass::<S, 4>(simd, rows, w, &pass, &mut out),
            }
        }
    }
}

/// One pass of `forward` over `V` vectors of units: per row, the scaled sum of W's rows at its
/// columns, two entries at a time into two sets of sums (with one set, each multiply-add would
/// wait on the one before).
#[inline(always)]
fn forward_pass<S: Simd, const V: usize>(
    simd: S,
    rows: &SparseRows<f32>,
    w: &[S::f32s],
    pass: &Pass,
    out: &mut [&mut [f32]],
) {
    let w_row = |column: u32| -> &[S::f32s] { &w[pass.at(column as usize)..][..V] };
    for (r, out) in out.iter_mut().enumerate() {
        let (at, values) = rows.row(r);
        let zero = simd.splat_f32s(0.0);
        let (mut even, mut odd) = ([zero; V], [zero; V]);
        let (pairs, rest) = at.as_chunks::<2>();
        for (&[a, b], v) in pairs.iter().zip(values.as_chunks::<2>().0) {
            let (wa, wb) = (w_row(a), w_row(b));
            let (va, vb) = (simd.splat_f32s(v[0]), simd.splat_f32s(v[1]));
            for q in 0..V {
                even[q] = simd.mul_add_f32s(va, wa[q], even[q]);
                odd[q] = simd.mul_add_f32s(vb, wb[q], odd[q]);
            }
        }
        if let (&[a], Some(&v)) = (rest, values.last()) {
            let (wa, va) = (w_row(a), simd.splat_f32s(v));
            for q in 0..V {
                even[q] = simd.mul_add_f32s(va, wa[q], even[q]);
            }
        }
        let sums: [S::f32s; V] = std::array::from_fn(|q| simd.add_f32s(even[q], odd[q]));
        store(simd, &sums, &mut out[pass.units.clone()]);
    }
}

/// Writes the first `out.len()` lanes of `vectors` to `out`.
#[inline(always)]
fn store<S: Simd>(simd: S, vectors: &[S::f32s], out: &mut [f32]) {
    let (head, tail) = S::as_mut_simd_f32s(out);
    let whole = head.len();
    head.copy_from_slice(&vectors[..whole]);
    if !tail.is_empty() {
        simd.partial_store_f32s(tail, vectors[whole]);
    }
}

/// The first `values.len()` lanes of vectors, the rest 0.
#[inline(always)]
fn load<S: Simd, const V: usize>(simd: S, values: &[f32]) -> [S::f32s; V] {
    let (head, tail) = S::as_simd_f32s(values);
    std::array::from_fn(|q| match q.cmp(&head.len()) {
        std::cmp::Ordering::Less => head[q],
        std::cmp::Ordering::Equal => simd.partial_load_f32s(tail),
        std::cmp::Ordering::Greater => simd.splat_f32s(0.0),
    })
}

/// `w += scale · xᵀ · dout`, with x given as `rows` (its columns are w's rows), `dout` in parts
/// of consecutive rows (each part's rows contiguous), and `w` row-major: with `scale` = −lr,
/// the SGD step of the weights. `scratch` holds one block's gradient and `dout` in whole
/// vectors (grown on the first call).
///
/// # Panics
/// When the shapes do not chain, `dout`'s rows are not contiguous, or `w` is column-major.
pub fn update(
    rows: &SparseRows<f32>,
    dout: &[ArrayView2<f32>],
    w: &mut Aligned2<f32>,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    let dout: Vec<&[f32]> = dout
        .iter()
        .flat_map(|part| part.rows())
        .map(|row| row.to_slice().expect("dout's rows contiguous"))
        .collect();
    assert!(
        w.dim().0 == rows.columns.len()
            && dout.len() == rows.rows()
            && dout.iter().all(|row| row.len() == w.dim().1)
            && !w.is_column_major(),
        "operands the sparse update does not take"
    );
    let scratch = aligned_mut(scratch, (BLOCK + rows.rows()) * w.padded_cols());
    pulp::Arch::new().dispatch(Update {
        rows,
        dout,
        w,
        scale,
        scratch,
    });
}

struct Update<'a> {
    rows: &'a SparseRows<f32>,
    dout: Vec<&'a [f32]>,
    w: &'a mut Aligned2<f32>,
    scale: f32,
    scratch: &'a mut [f32],
}

impl WithSimd for Update<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Update {
            rows,
            dout,
            w,
            scale,
            scratch,
        } = self;
        let units = w.dim().1;
        let padded = w.padded_cols();
        let (lines, stride) = w.padded_rows_mut();
        let lanes = S::F32_LANES;
        let w = S::as_mut_simd_f32s(lines).0;
        // The gradient sized for the widest pass; zeroed here (the caller's buffer may hold
        // anything), then by each block for the next.
        let (gradient, d_rows) = scratch.split_at_mut(BLOCK * padded);
        gradient.fill(0.0);
        let (gradient, d_rows) = (
            S::as_mut_simd_f32s(gradient).0,
            S::as_mut_simd_f32s(d_rows).0,
        );
        for (first, vectors) in passes(units, lanes, (UPDATE_UNITS / lanes).clamp(1, 8)) {
            let pass = Pass {
                stride: stride / lanes,
                first,
                units: first * lanes..((first + vectors) * lanes).min(units),
            };
            let args = (rows, dout.as_slice(), scale);
            let scratch = (&mut *gradient, &mut *d_rows);
            // Only the widths this SIMD takes are compiled for it (`lanes` is a constant of
            // `S`): with the widths up to 8 compiled for AVX-512 too, its update ran ~3 µs per
            // step slower in development runs.
            if lanes >= 16 {
                match vectors {
                    1 => update_pass::<S, 1>(simd, args, w, &pass, scratch),
                    2 => update_pass::<S, 2>(simd, args, w, &pass, scratch),
                    3 => update_pass::<S, 3>(simd, args, w, &pass, scratch),
                    _ => update_pass::<S, 4>(simd, args, w, &pass, scratch),
                }
            } else {
                match vectors {
                    1 => update_pass::<S, 1>(simd, args, w, &pass, scratch),
                    2 => update_pass::<S, 2>(simd, args, w, &pass, scratch),
                    3 => update_pass::<S, 3>(simd, args, w, &pass, scratch),
                    4 => update_pass::<S, 4>(simd, args, w, &pass, scratch),
                    5 => update_pass::<S, 5>(simd, args, w, &pass, scratch),
                    6 => update_pass::<S, 6>(simd, args, w, &pass, scratch),
                    7 => update_pass::<S, 7>(simd, args, w, &pass, scratch),
                    _ => update_pass::<S, 8>(simd, args, w, &pass, scratch),
                }
            }
        }
    }
}

/// One pass of `update` over `V` vectors of units, block by block: the block's gradient summed
/// over the rows in `gradient` (V vectors per column), then added to W, scaled, for the columns
/// any row touched, and `gradient` zeroed again for the next block; `d_rows` takes dout's rows.
#[inline(always)]
fn update_pass<S: Simd, const V: usize>(
    simd: S,
    (rows, dout, scale): (&SparseRows<f32>, &[&[f32]], f32),
    w: &mut [S::f32s],
    pass: &Pass,
    (gradient, d_rows): (&mut [S::f32s], &mut [S::f32s]),
) {
    let start = rows.columns.start;
    let scratch = gradient.as_chunks_mut::<V>().0;
    let d_rows = d_rows.as_chunks_mut::<V>().0;
    // dout's rows in whole vectors, loaded once per pass rather than once per block.
    for (d, dout) in d_rows.iter_mut().zip(dout) {
        *d = load(simd, &dout[pass.units.clone()]);
    }
    let scale = simd.splat_f32s(scale);
    let zero = simd.splat_f32s(0.0);
    for (b, block) in rows.blocks.clone().enumerate() {
        // The block's first column, counted from `columns.start` (its columns before
        // `columns.start`, if any, are never touched).
        let base = (block * BLOCK) as isize - start as isize;
        for (r, &d) in d_rows.iter().enumerate().take(dout.len()) {
            let (at, values) = rows.entries(r, b);
            for (&column, &value) in at.iter().zip(values) {
                let g = &mut scratch[(column as isize - base) as usize];
                let value = simd.splat_f32s(value);
                for q in 0..V {
                    g[q] = simd.mul_add_f32s(value, d[q], g[q]);
                }
            }
        }
        let mut touched = rows.touched[b];
        while touched != 0 {
            let column = (base + touched.trailing_zeros() as isize) as usize;
            touched &= touched - 1;
            let g = &mut scratch[(column as isize - base) as usize];
            let w = &mut w[pass.at(column)..][..V];
            for q in 0..V {
                w[q] = simd.mul_add_f32s(scale, g[q], w[q]);
                g[q] = zero;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ArrayView2};

    /// Rows × columns with about one value in four nonzero, at irregular places.
    fn sparse_matrix(rows: usize, columns: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, columns), |(i, j)| {
            let k = (i * 131 + j * 71 + seed * 17) % 97;
            if k.is_multiple_of(4) {
                (k as f32 - 40.0) / 37.0
            } else {
                0.0
            }
        })
    }

    fn gathered(x: &Array2<f32>, columns: Range<usize>) -> SparseRows<f32> {
        // Room for 2 rows only: the others make room as they come.
        let mut rows = SparseRows::new(columns.clone(), 2);
        for row in x.rows() {
            rows.push_dense_row(&row.as_slice().unwrap()[columns.clone()]);
        }
        rows
    }

    /// Column ranges that start and end inside blocks and on their edges.
    const RANGES: [Range<usize>; 6] = [0..150, 37..150, 64..128, 100..101, 5..60, 0..0];

    #[test]
    fn rows_hold_the_nonzero_entries_block_by_block() {
        let x = sparse_matrix(9, 150, 1);
        for columns in RANGES {
            let rows = gathered(&x, columns.clone());
            assert_eq!(rows.rows(), if columns.is_empty() { 0 } else { 9 });
            let mut total = 0;
            for (r, row) in x.rows().into_iter().enumerate().take(rows.rows()) {
                let want: Vec<(u32, f32)> = columns
                    .clone()
                    .filter(|&c| row[c] != 0.0)
                    .map(|c| ((c - columns.start) as u32, row[c]))
                    .collect();
                let (at, values) = rows.row(r);
                let got: Vec<(u32, f32)> = at.iter().copied().zip(values.iter().copied()).collect();
                assert_eq!(got, want, "{columns:?}, row {r}");
                // The blocks split the row at multiples of BLOCK.
                for b in 0..rows.blocks.len() {
                    for &column in rows.entries(r, b).0 {
                        assert_eq!(
                            (column as usize + columns.start) / BLOCK,
                            rows.blocks.start + b
                        );
                    }
                }
                total += want.len();
            }
            assert_eq!(rows.len(), total);
            assert!(columns.is_empty() || total > 0, "a test with entries");
        }
    }

    #[test]
    fn every_way_of_listing_a_block_gives_its_set_bits() {
        let patterns = [
            0u64,
            1,
            1 << 63,
            u64::MAX,
            0x8000_0001_0000_8001,
            0x0123_4567_89ab_cdef,
        ];
        for bits in patterns {
            let want: Vec<u32> = (0..64)
                .filter(|i| bits >> i & 1 == 1)
                .map(|i| 1000 + i)
                .collect();
            let mut at = vec![0; 64 + SPARE];
            let n = list_bit_by_bit(&mut at, bits, 1000);
            assert_eq!(&at[..n], want.as_slice());
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            if let Some(simd) = pulp::x86::V4::try_new() {
                let mut at = vec![0; 64 + SPARE];
                let n = simd.vectorize(|| list_avx512(simd, &mut at, bits, 1000));
                assert_eq!(&at[..n], want.as_slice(), "{bits:#x}");
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V3::try_new() {
                let mut at = vec![0; 64 + SPARE];
                let n = simd.vectorize(|| list_avx2(simd, &mut at, bits, 1000));
                assert_eq!(&at[..n], want.as_slice(), "{bits:#x}");
            }
        }
    }

    /// Units that fill whole vectors, end inside one, and take more than one pass.
    const UNITS: [usize; 7] = [1, 3, 16, 17, 50, 64, 130];

    /// Calls `check` with the rows of a 7×150 sparse matrix for each range of `RANGES` that
    /// holds columns (and the matrix's columns there), and each count of `UNITS`.
    fn for_each_case(seed: usize, mut check: impl FnMut(&SparseRows<f32>, ArrayView2<f32>, usize)) {
        let x = sparse_matrix(7, 150, seed);
        for columns in RANGES.into_iter().filter(|c| !c.is_empty()) {
            let rows = gathered(&x, columns.clone());
            for units in UNITS {
                check(&rows, x.slice(ndarray::s![.., columns.clone()]), units);
            }
        }
    }

    fn worst(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f32 {
        (&a - &b).mapv(f32::abs).fold(0.0f32, |m, &d| m.max(d))
    }

    #[test]
    fn forward_matches_the_dense_product() {
        for_each_case(2, |rows, x, units| {
            let w = Array2::from_shape_fn((x.ncols(), units), |(i, j)| {
                ((i * units + j) as f32 * 0.37).sin()
            });
            let mut out = Array2::from_elem((7, units), f32::NAN);
            forward(rows, &Aligned2::from_view(w.view(), false), out.view_mut());
            let off = worst(out.view(), x.dot(&w).view());
            assert!(
                off < 1e-4,
                "{:?}, {units} units: off by {off}",
                rows.columns()
            );
        });
    }

    #[test]
    fn update_matches_the_dense_sgd_step_and_leaves_the_padding_zero() {
        let mut scratch = Vec::new();
        for_each_case(3, |rows, x, units| {
            let w0 = Array2::from_shape_fn((x.ncols(), units), |(i, j)| {
                ((i * units + j) as f32 * 0.11).cos()
            });
            let dout = Array2::from_shape_fn((7, units), |(i, j)| ((i * 5 + j) as f32).sin());
            let mut w = Aligned2::from_view(w0.view(), false);
            // Twice, dout in two parts: the scratch buffer is zero again after a call.
            for _ in 0..2 {
                let (top, bottom) = dout.view().split_at(ndarray::Axis(0), 3);
                update(rows, &[top, bottom], &mut w, -0.5, &mut scratch);
            }
            let off = worst(w.view(), (&w0 - &x.t().dot(&dout)).view());
            assert!(
                off < 1e-4,
                "{:?}, {units} units: off by {off}",
                rows.columns()
            );
            let (lines, stride) = w.padded_rows();
            for i in 0..x.ncols() {
                let padding = &lines[i * stride + units..i * stride + w.padded_cols()];
                assert!(
                    padding.iter().all(|&p| p == 0.0),
                    "padding of row {i} written"
                );
            }
        });
    }

    #[test]
    #[should_panic(expected = "operands the sparse forward product does not take")]
    fn operands_that_do_not_chain_are_refused() {
        let rows = gathered(&sparse_matrix(3, 20, 0), 0..20);
        let w = Aligned2::<f32>::zeros((19, 4), false);
        forward(&rows, &w, Array2::zeros((3, 4)).view_mut());
    }

    #[test]
    #[should_panic(expected = "operands the sparse forward product does not take")]
    fn column_major_weights_are_refused() {
        let rows = gathered(&sparse_matrix(3, 20, 0), 0..20);
        let w = Aligned2::<f32>::zeros((20, 4), true);
        forward(&rows, &w, Array2::zeros((3, 4)).view_mut());
    }
}
