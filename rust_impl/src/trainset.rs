//! The training images as the net keeps them, and the gathering of a batch's rows.
//!
//! MNIST's 47 million pixels take only 256 distinct values (the byte values divided by 255). When
//! the training set the harness hands over has at most 256 distinct values, it is kept as one
//! byte per pixel: a quarter of the memory to pull in per batch. The floats are rebuilt from the
//! bytes bit for bit, either by the division they came from (when every value is `byte / d` for
//! one integer `d`, found and checked value by value at set-up; SIMD, ~4× faster than a table
//! here) or from a table of the values. Any other training set is kept as it came.
//!
//! Where the CPU has AVX-512 VBMI2 or AVX2, rows with many zero bytes are also kept without them
//! (`PackedRows`): MNIST's rows shrink from 784 bytes to ~254, from 13 cache lines to ~5 on
//! average.

use std::collections::HashMap;

use std::ops::Range;

use ndarray::{s, Array2, ArrayViewMut1};

use crate::linalg::Scalar;
use crate::pages::HugePageBytes;
use crate::sparse::SparseRows;

pub enum TrainingSet<T> {
    /// One byte per pixel.
    Codes {
        codes: CodedRows,
        decode: Decode<T>,
    },
    Dense(Array2<T>),
}

/// The byte codes of the rows, as they are laid out in memory.
pub enum CodedRows {
    /// Every byte, `features` per row.
    Plain(Array2<u8>),
    /// The zero bytes left out (see `PackedRows`).
    Packed(PackedRows),
}

impl CodedRows {
    /// Packed when that is at most 3/4 of the bytes and the CPU expands a block in SIMD (the
    /// loop that stands in for it elsewhere costs more than the memory saved).
    fn arrange(codes: Array2<u8>) -> Self {
        let expand = Expand::detect();
        if expand != Expand::Loop {
            let packed = PackedRows::new(&codes, expand);
            if packed.bytes.len() * 4 <= codes.len() * 3 {
                return CodedRows::Packed(packed);
            }
        }
        CodedRows::Plain(codes)
    }

    fn decode_row_part<T: Scalar>(
        &self,
        decode: &Decode<T>,
        index: usize,
        columns: Range<usize>,
        out: &mut [T],
    ) {
        match self {
            CodedRows::Plain(codes) => {
                let codes = codes.slice(s![index, columns]);
                decode.row(
                    codes.as_slice().expect("a row of a standard-layout array"),
                    out,
                );
            }
            CodedRows::Packed(packed) => packed.decode_part(index, &columns, decode, out),
        }
    }
}

/// Columns one mask covers.
const BLOCK: usize = 64;

/// Rows of byte codes without their zero bytes: per row, one 64-bit mask per 64 columns (bit
/// set: the byte is kept), then the kept bytes in column order; after the last row, `SLACK`
/// zero bytes. MNIST's rows are four-fifths zeros, so a row takes 104 + ~150 bytes instead of
/// 784: ~5 cache lines to pull in per batch row instead of 13. The zero bytes come back as code
/// 0, whatever value that code stands for, so the rows rebuilt are the same codes, bit for bit.
pub struct PackedRows {
    features: usize,
    /// Where each row starts in `bytes`; one more entry than rows.
    starts: Vec<usize>,
    bytes: HugePageBytes,
    /// How a block is expanded, detected at set-up.
    expand: Expand,
}

/// Bytes after the last row, so that the AVX2 expansion may load 16 bytes from wherever a row's
/// kept bytes may still be read.
const SLACK: usize = 16;

/// How `PackedRows` puts a block's kept bytes back in their columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expand {
    /// One `vpexpandb` (AVX-512 VBMI2) per 64 columns.
    Vbmi2,
    /// One `pshufb` per 16 columns, its control looked up per 8 mask bits (AVX2, FMA and
    /// POPCNT).
    Avx2,
    /// One step per column.
    Loop,
}

impl Expand {
    /// The fastest this CPU has.
    fn detect() -> Self {
        if has_vbmi2() {
            Expand::Vbmi2
        } else if has_avx2() {
            Expand::Avx2
        } else {
            Expand::Loop
        }
    }
}

impl PackedRows {
    fn new(codes: &Array2<u8>, expand: Expand) -> Self {
        let features = codes.ncols();
        let mut starts = Vec::with_capacity(codes.nrows() + 1);
        let kept = codes.iter().filter(|&&c| c != 0).count();
        let end = codes.nrows() * 8 * features.div_ceil(BLOCK) + kept;
        // Zeroed, so the slack after the last row is in place.
        let mut bytes = HugePageBytes::zeroed(end + SLACK);
        let mut at = 0;
        for row in codes.rows() {
            starts.push(at);
            let row = row.as_slice().expect("a row of a standard-layout array");
            for block in row.chunks(BLOCK) {
                let mask = block
                    .iter()
                    .enumerate()
                    .filter(|&(_, &c)| c != 0)
                    .fold(0u64, |mask, (i, _)| mask | 1 << i);
                bytes[at..at + 8].copy_from_slice(&mask.to_le_bytes());
                at += 8;
            }
            for &c in row.iter().filter(|&&c| c != 0) {
                bytes[at] = c;
                at += 1;
            }
        }
        starts.push(at);
        debug_assert_eq!(at, end);
        PackedRows {
            features,
            starts,
            bytes,
            expand,
        }
    }

    fn row(&self, index: usize) -> &[u8] {
        &self.bytes[self.starts[index]..self.starts[index + 1]]
    }

    fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// Bytes kept in all rows (not counting the masks).
    fn kept(&self) -> usize {
        let masks = 8 * self.features.div_ceil(BLOCK) * self.rows();
        self.starts[self.rows()] - masks
    }

    /// `TrainingSet::gather_sparse`, `decode` giving 0 for code 0. The row's masks are the
    /// entries' columns as they are, and the kept bytes in `out`'s columns are one run, decoded
    /// at once.
    fn gather_sparse<T: Scalar>(&self, index: usize, decode: &Decode<T>, out: &mut SparseRows<T>) {
        let blocks = self.features.div_ceil(BLOCK);
        let (masks, kept) = self.row(index).split_at(8 * blocks);
        let mask =
            |b: usize| u64::from_le_bytes(masks[8 * b..8 * b + 8].try_into().expect("8 bytes"));
        let columns = out.columns();
        let below = |column: usize| -> usize {
            let whole = (0..column / BLOCK).map(|b| mask(b).count_ones() as usize);
            let rest = column % BLOCK;
            let part = if rest == 0 {
                0
            } else {
                (mask(column / BLOCK) & ((1u64 << rest) - 1)).count_ones() as usize
            };
            whole.sum::<usize>() + part
        };
        let run = &kept[below(columns.start)..below(columns.end)];
        out.push_row(mask, |values| decode.row(run, values));
    }

    /// Writes the codes of row `index` in `columns` into `out`.
    #[cfg(test)]
    fn expand_part(&self, index: usize, columns: &Range<usize>, out: &mut [u8]) {
        let copy = |codes: &[u8], at: usize| out[at..at + codes.len()].copy_from_slice(codes);
        self.for_blocks(index, columns, copy);
    }

    /// Writes the values of row `index` in `columns` into `out`, 64 columns at a time: each
    /// block's codes are decoded as soon as they are expanded, with no pass over a buffer of
    /// the whole row.
    fn decode_part<T: Scalar>(
        &self,
        index: usize,
        columns: &Range<usize>,
        decode: &Decode<T>,
        out: &mut [T],
    ) {
        let values = |codes: &[u8], at: usize| decode.values(codes, &mut out[at..at + codes.len()]);
        self.for_blocks(index, columns, values);
    }

    /// Expands each block of row `index` that overlaps `columns` and hands `consume` its codes
    /// in `columns` and where they start in `columns`.
    #[inline(always)]
    fn for_blocks(&self, index: usize, columns: &Range<usize>, consume: impl FnMut(&[u8], usize)) {
        let blocks = self.features.div_ceil(BLOCK);
        let (start, end) = (self.starts[index], self.starts[index + 1]);
        let (masks, kept) = self.bytes[start..].split_at(8 * blocks);
        let kept = Kept {
            bytes: kept,
            row: end - start - 8 * blocks,
        };
        match self.expand {
            // SAFETY: set only when the CPU has AVX-512 F, BW and VBMI2 and POPCNT (checked at
            // set-up by `has_vbmi2`).
            #[cfg(target_arch = "x86_64")]
            Expand::Vbmi2 => unsafe { for_blocks_vbmi2(masks, kept, columns, consume) },
            // SAFETY: set only when the CPU has AVX2, FMA and POPCNT (checked at set-up by
            // `has_avx2`).
            #[cfg(target_arch = "x86_64")]
            Expand::Avx2 => unsafe { for_blocks_avx2(masks, kept, columns, consume) },
            _ => for_blocks_with::<1>(masks, kept, columns, expand_block, consume),
        }
    }
}

/// A row's kept bytes: the first `row` of `bytes`, which goes on for at least `SLACK` more.
#[derive(Clone, Copy)]
struct Kept<'a> {
    bytes: &'a [u8],
    row: usize,
}

/// The loop of `PackedRows::for_blocks`, with `expand` the way one block is expanded: it gets
/// the block's mask and the kept bytes from the block's first on (`SLACK` more than the row's).
/// `consume` gets `PASS` blocks' codes at a time (fewer at the ends of `columns`).
#[inline(always)]
fn for_blocks_with<const PASS: usize>(
    masks: &[u8],
    kept: Kept,
    columns: &Range<usize>,
    expand: impl Fn(u64, &[u8], &mut [u8; BLOCK]),
    mut consume: impl FnMut(&[u8], usize),
) {
    let mask = |b: usize| u64::from_le_bytes(masks[8 * b..8 * b + 8].try_into().expect("8 bytes"));
    let blocks = columns.start / BLOCK..columns.end.div_ceil(BLOCK);
    let mut at: usize = (0..blocks.start)
        .map(|b| mask(b).count_ones() as usize)
        .sum();
    let mut codes = [[0u8; BLOCK]; PASS];
    for first in blocks.clone().step_by(PASS) {
        let pass = first..(first + PASS).min(blocks.end);
        for (b, codes) in pass.clone().zip(&mut codes) {
            let mask = mask(b);
            let count = mask.count_ones() as usize;
            assert!(kept.row >= at + count, "a packed row ends early");
            expand(mask, &kept.bytes[at..kept.row + SLACK], codes);
            at += count;
        }
        let wanted = columns.start.max(pass.start * BLOCK)..columns.end.min(pass.end * BLOCK);
        consume(
            &codes.as_flattened()[wanted.start - first * BLOCK..wanted.end - first * BLOCK],
            wanted.start - columns.start,
        );
    }
}

/// `out[i]` = the next byte of `kept` where bit `i` of `mask` is set, else 0.
#[inline(always)]
fn expand_block(mask: u64, kept: &[u8], out: &mut [u8; BLOCK]) {
    let mut next = kept.iter();
    for (i, o) in out.iter_mut().enumerate() {
        *o = if mask >> i & 1 == 1 {
            *next.next().expect("one kept byte per bit set")
        } else {
            0
        };
    }
}

/// `for_blocks_with` where a block is one `vpexpandb`: a few cycles, where `expand_block` takes
/// one step per column. `consume` is inlined here, so its loops are compiled for AVX-512 too,
/// and the mask counts take one `popcnt` each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi2,popcnt")]
fn for_blocks_vbmi2(
    masks: &[u8],
    kept: Kept,
    columns: &Range<usize>,
    consume: impl FnMut(&[u8], usize),
) {
    use std::arch::x86_64::{_mm512_maskz_expandloadu_epi8, _mm512_storeu_si512};
    let expand = |mask, kept: &[u8], out: &mut [u8; BLOCK]| {
        // SAFETY: the instruction reads popcount(mask) bytes from `kept`, no more than its
        // length (checked by the caller), and writes the 64 bytes of `out`; this function's
        // target features are those it needs.
        unsafe {
            let block = _mm512_maskz_expandloadu_epi8(mask, kept.as_ptr().cast());
            _mm512_storeu_si512(out.as_mut_ptr().cast(), block);
        }
    };
    for_blocks_with::<1>(masks, kept, columns, expand, consume);
}

/// `for_blocks_with` where a block is four `pshufb`, each putting 16 columns' bytes in place:
/// its control is two 8-byte table entries, one per 8 bits of the mask, the second shifted past
/// the bytes the first takes. Each loads 16 bytes wherever the 16 columns' kept bytes start,
/// past the row's end at its last blocks (the slack). `consume` is inlined here, so its loops
/// are compiled for AVX2 too, with FMA for `Decode::divided` (without it each value takes two
/// calls of a library function).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
fn for_blocks_avx2(
    masks: &[u8],
    kept: Kept,
    columns: &Range<usize>,
    consume: impl FnMut(&[u8], usize),
) {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_set_epi64x, _mm_shuffle_epi8, _mm_storeu_si128};
    let expand = |mask: u64, kept: &[u8], out: &mut [u8; BLOCK]| {
        for (quarter, out) in out.chunks_exact_mut(16).enumerate() {
            // Where the quarter's kept bytes start: counted from the mask, not from the
            // quarters before it, so the four do not wait on each other.
            let at = (mask & ((1u64 << (16 * quarter)) - 1)).count_ones() as usize;
            let [low, high] = [0, 8].map(|bit| (mask >> (16 * quarter + bit)) as u8);
            // Added to every byte: the kept ones then index past the low half's, and the zero
            // ones stay at 0x80 or above, which pshufb writes as 0.
            let past_low = u64::from(low.count_ones()) * 0x0101_0101_0101_0101;
            let source = &kept[at..at + 16];
            // SAFETY: reads the 16 bytes of `source` and writes the 16 of `out`; this function's
            // target features are those the intrinsics need.
            unsafe {
                let control = _mm_set_epi64x(
                    (SHUFFLE[usize::from(high)] + past_low) as i64,
                    SHUFFLE[usize::from(low)] as i64,
                );
                let bytes = _mm_shuffle_epi8(_mm_loadu_si128(source.as_ptr().cast()), control);
                _mm_storeu_si128(out.as_mut_ptr().cast(), bytes);
            }
        }
    };
    // The codes of up to 16 blocks (1,024 columns) before they are decoded: one call of
    // `consume` decodes them in whole vectors; a call per block measured slower in development
    // runs.
    for_blocks_with::<16>(masks, kept, columns, expand, consume);
}

/// Per value of 8 mask bits, a `pshufb` control for 8 bytes: byte `i` takes source byte `k` if
/// bit `i` is the `k`-th set bit (counting from 0), else 0x80 (write 0).
const SHUFFLE: [u64; 256] = shuffle_controls();

const fn shuffle_controls() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut bits = 0;
    while bits < 256 {
        let (mut control, mut next, mut i) = (0u64, 0u64, 0);
        while i < 8 {
            let byte = if bits >> i & 1 == 1 {
                next += 1;
                next - 1
            } else {
                0x80
            };
            control |= byte << (8 * i);
            i += 1;
        }
        table[bits] = control;
        bits += 1;
    }
    table
}

/// Whether this CPU has what `for_blocks_avx2` is compiled for.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("popcnt");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU expands a block in one instruction (and has the other features
/// `for_blocks_vbmi2` is compiled for).
fn has_vbmi2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512vbmi2")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("popcnt");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// How a byte becomes the value it stands for.
pub enum Decode<T> {
    /// `byte / divisor`, correctly rounded, as the harness computed it (`x / 255.0`). `simd` is
    /// the CPU's widest SIMD (AVX-512, AVX2 or none), detected once at set-up.
    Divided {
        divisor: T,
        reciprocal: T,
        simd: pulp::Arch,
    },
    /// `table[byte]`: 256 entries.
    Table(Vec<T>),
}

impl<T: Scalar> Decode<T> {
    /// `byte / divisor` rounded once, without a division: `q = c·r` is within an ulp, the FMA
    /// gives its exact remainder, and one correction step rounds it. Exactness is not assumed:
    /// `TrainingSet::new` checks every value the data holds against this very function.
    #[inline(always)]
    fn divided(byte: u8, divisor: T, reciprocal: T) -> T {
        let c = T::from(byte).expect("bytes are representable");
        let q = c * reciprocal;
        let remainder = (-q).mul_add(divisor, c);
        remainder.mul_add(reciprocal, q)
    }

    /// `out[i]` = the value of `codes[i]`, compiled for the widest SIMD the CPU has: the
    /// generic x86-64 build has no FMA, which the division needs to vectorize.
    fn row(&self, codes: &[u8], out: &mut [T]) {
        match *self {
            Decode::Divided { simd, .. } => simd.dispatch(
                #[inline(always)]
                || self.values(codes, out),
            ),
            Decode::Table(_) => self.values(codes, out),
        }
    }

    /// Whether code 0 (the byte packed rows leave out) stands for 0.
    fn zero_is_zero(&self) -> bool {
        match self {
            Decode::Divided { .. } => true,
            Decode::Table(table) => table[0] == T::zero(),
        }
    }

    /// `row`, compiled for whatever SIMD its caller is compiled for.
    #[inline(always)]
    fn values(&self, codes: &[u8], out: &mut [T]) {
        match *self {
            Decode::Divided {
                divisor,
                reciprocal,
                ..
            } => {
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = Self::divided(c, divisor, reciprocal);
                }
            }
            Decode::Table(ref table) => {
                let table: &[T; 256] = table.as_slice().try_into().expect("256 entries");
                for (o, &c) in out.iter_mut().zip(codes) {
                    *o = table[usize::from(c)];
                }
            }
        }
    }
}

/// Bytes between prefetch touches: one per cache line.
const CACHE_LINE: usize = 64;

impl<T: Scalar> TrainingSet<T> {
    /// Codes when `x` holds at most 256 distinct values (compared bit for bit), else `x` itself.
    pub fn new(x: Array2<T>) -> Self {
        let mut code_of: HashMap<u64, u8> = HashMap::new();
        let mut table = Vec::new();
        let mut codes = Array2::zeros(x.dim());
        let mut last: Option<(u64, u8)> = None; // neighbouring pixels are often equal
        for (code, &value) in codes.iter_mut().zip(x.iter()) {
            let key = value.bits();
            *code = match last {
                Some((k, c)) if k == key => c,
                _ => {
                    let c = match code_of.get(&key) {
                        Some(&c) => c,
                        None if code_of.len() < 256 => {
                            let c = table.len() as u8;
                            table.push(value);
                            code_of.insert(key, c);
                            c
                        }
                        None => return TrainingSet::Dense(x),
                    };
                    last = Some((key, c));
                    c
                }
            };
        }
        if let Some((divisor, byte_of)) = as_divided_bytes(&table) {
            codes.mapv_inplace(|c| byte_of[usize::from(c)]);
            let reciprocal = T::one() / divisor;
            let decode = Decode::Divided {
                divisor,
                reciprocal,
                simd: pulp::Arch::new(),
            };
            return TrainingSet::Codes {
                codes: CodedRows::arrange(codes),
                decode,
            };
        }
        // Unused codes index 0, so the lookup needs no bounds check (a table of exactly 256).
        table.resize(256, T::zero());
        TrainingSet::Codes {
            codes: CodedRows::arrange(codes),
            decode: Decode::Table(table),
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            TrainingSet::Codes {
                codes: CodedRows::Plain(codes),
                ..
            } => codes.nrows(),
            TrainingSet::Codes {
                codes: CodedRows::Packed(packed),
                ..
            } => packed.starts.len() - 1,
            TrainingSet::Dense(x) => x.nrows(),
        }
    }

    pub fn features(&self) -> usize {
        match self {
            TrainingSet::Codes {
                codes: CodedRows::Plain(codes),
                ..
            } => codes.ncols(),
            TrainingSet::Codes {
                codes: CodedRows::Packed(packed),
                ..
            } => packed.features,
            TrainingSet::Dense(x) => x.ncols(),
        }
    }

    /// How the images are held, for the run record.
    pub fn describe(&self) -> &'static str {
        match self {
            TrainingSet::Codes {
                codes: CodedRows::Plain(_),
                decode: Decode::Divided { .. },
            } => "one byte per pixel, value = byte / divisor (checked exact)",
            TrainingSet::Codes {
                codes: CodedRows::Packed(_),
                decode: Decode::Divided { .. },
            } => "one byte per pixel, zero bytes left out; value = byte / divisor (checked exact)",
            TrainingSet::Codes {
                codes: CodedRows::Plain(_),
                decode: Decode::Table(_),
            } => "one byte per pixel, exact value table",
            TrainingSet::Codes {
                codes: CodedRows::Packed(_),
                decode: Decode::Table(_),
            } => "one byte per pixel, zero bytes left out; exact value table",
            TrainingSet::Dense(_) => "as handed over (more than 256 distinct values)",
        }
    }

    /// Writes the values of row `index` in `columns` into `out`.
    pub fn copy_row_part(&self, index: usize, columns: Range<usize>, mut out: ArrayViewMut1<T>) {
        match self {
            TrainingSet::Codes { codes, decode } => match out.as_slice_mut() {
                Some(out) => codes.decode_row_part(decode, index, columns, out),
                None => {
                    let mut row = vec![T::zero(); columns.len()];
                    codes.decode_row_part(decode, index, columns, &mut row);
                    out.assign(&ndarray::ArrayView1::from(&row));
                }
            },
            TrainingSet::Dense(x) => out.assign(&x.slice(s![index, columns])),
        }
    }

    /// Whether a batch of this set is better taken as its nonzero entries (`sparse.rs`): when
    /// its rows are packed, the byte left out stands for 0, and at most a quarter of the pixels
    /// are kept. The sparse products run at a third to a quarter of the dense kernels'
    /// multiply-add rate (the `kernels` example: at 20 % nonzero inputs they took 70 % of the
    /// dense kernels' time), so they win below about 30 %; MNIST keeps 19 %.
    pub fn is_sparse(&self) -> bool {
        match self {
            TrainingSet::Codes {
                codes: CodedRows::Packed(packed),
                decode,
            } => decode.zero_is_zero() && packed.kept() * 4 <= packed.rows() * packed.features,
            _ => false,
        }
    }

    /// For each column, in how many rows it is nonzero (the sparse products' work per column),
    /// for a sparse set (`is_sparse`); None for others.
    pub fn nonzeros_per_column(&self) -> Option<Vec<usize>> {
        if !self.is_sparse() {
            return None;
        }
        let TrainingSet::Codes {
            codes: CodedRows::Packed(packed),
            ..
        } = self
        else {
            unreachable!("a sparse set is packed")
        };
        let blocks = packed.features.div_ceil(BLOCK);
        let mut counts = vec![0; packed.features];
        for index in 0..packed.rows() {
            let masks = &packed.row(index)[..8 * blocks];
            for (b, mask) in masks.chunks_exact(8).enumerate() {
                let mut bits = u64::from_le_bytes(mask.try_into().expect("8 bytes"));
                while bits != 0 {
                    counts[b * BLOCK + bits.trailing_zeros() as usize] += 1;
                    bits &= bits - 1;
                }
            }
        }
        Some(counts)
    }

    /// Appends row `index`'s nonzero entries in `out.columns()` to `out`.
    ///
    /// # Panics
    /// When the set is not sparse (`is_sparse`).
    pub fn gather_sparse(&self, index: usize, out: &mut SparseRows<T>) {
        match self {
            TrainingSet::Codes {
                codes: CodedRows::Packed(packed),
                decode,
            } if decode.zero_is_zero() => packed.gather_sparse(index, decode, out),
            _ => panic!("a set without packed rows of zeros gathered as sparse"),
        }
    }

    /// Starts pulling the values of row `index` in `columns` towards the cache, for a step that
    /// comes later.
    ///
    /// The rows of a batch are 100 random rows of a 15–188 MB array, and the copy stalls on
    /// memory for each of them; prefetching the next step's rows during this one takes a large
    /// part of that stall away (development runs of the `phases` example, with and without it;
    /// the memory table of rust_impl/README.md measures what stall is left). A prefetch
    /// instruction rather than a plain load, because a load that misses holds its place in the
    /// pipeline.
    pub fn prefetch_row_part(&self, index: usize, columns: Range<usize>) {
        let (start, bytes) = match self {
            TrainingSet::Codes {
                codes: CodedRows::Plain(codes),
                ..
            } => {
                let part = codes.slice(s![index, columns]);
                (part.as_ptr(), part.len())
            }
            // The whole row: where a part of it starts is known only from its masks.
            TrainingSet::Codes {
                codes: CodedRows::Packed(packed),
                ..
            } => {
                let row = packed.row(index);
                (row.as_ptr(), row.len())
            }
            TrainingSet::Dense(x) => {
                let part = x.slice(s![index, columns]);
                (
                    part.as_ptr().cast::<u8>(),
                    part.len() * std::mem::size_of::<T>(),
                )
            }
        };
        // From the start of its first line: bytes that start inside a line may end in one
        // more line than `bytes / CACHE_LINE` rounded up.
        let into_line = start as usize % CACHE_LINE;
        let line_start = start.wrapping_sub(into_line);
        for offset in (0..into_line + bytes).step_by(CACHE_LINE) {
            prefetch(line_start.wrapping_add(offset));
        }
    }
}

/// Asks the CPU to bring the cache line at `address` in; does nothing on other architectures.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and reads nothing into the program, so any
    // address is allowed (here it always lies inside a row of the training set). The intrinsic
    // is `unsafe` only because it takes a raw pointer.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// When every value is `byte / d` (as `Decode::divided` computes it) for one integer divisor `d`:
/// `d` and each value's byte. `d` is taken from the smallest positive value (1/255 for MNIST).
fn as_divided_bytes<T: Scalar>(values: &[T]) -> Option<(T, [u8; 256])> {
    let smallest = values
        .iter()
        .copied()
        .filter(|&v| v > T::zero())
        .fold(T::infinity(), T::min);
    let divisor = (T::one() / smallest).round();
    if !(divisor >= T::one() && divisor <= T::from(1u32 << 24).expect("2^24 is representable")) {
        return None;
    }
    let reciprocal = T::one() / divisor;
    let mut byte_of = [0u8; 256];
    for (code, &value) in values.iter().enumerate() {
        let byte = (value * divisor).round().to_u8()?;
        if Decode::divided(byte, divisor, reciprocal).bits() != value.bits() {
            return None;
        }
        byte_of[code] = byte;
    }
    Some((divisor, byte_of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    fn gathered<T: Scalar>(set: &TrainingSet<T>, index: usize) -> Array1<T> {
        let mut row = Array1::zeros(set.features());
        set.copy_row_part(index, 0..set.features(), row.view_mut());
        set.prefetch_row_part(index, 0..set.features());
        row
    }

    /// `x` is held as bytes rebuilt by division, and every row and part of a row comes back
    /// bit for bit.
    fn assert_divided_and_bit_identical<T: Scalar>(x: Array2<T>) {
        let set = TrainingSet::new(x.clone());
        assert!(matches!(
            set,
            TrainingSet::Codes {
                decode: Decode::Divided { .. },
                ..
            }
        ));
        let same = |a: &[T], b: &[T]| a.iter().zip(b).all(|(p, q)| p.bits() == q.bits());
        for i in 0..x.nrows() {
            let row = gathered(&set, i);
            assert!(same(row.as_slice().unwrap(), x.row(i).as_slice().unwrap()));
            let mut part = Array1::zeros(4);
            set.copy_row_part(i, 3..7, part.view_mut());
            assert!(same(
                part.as_slice().unwrap(),
                &x.row(i).as_slice().unwrap()[3..7]
            ));
        }
    }

    #[test]
    fn byte_images_are_coded_and_come_back_bit_identical() {
        // All 256 byte values scaled as the harness does, in f32 and in f64.
        let bytes = Array2::from_shape_fn((64, 8), |(i, j)| ((i * 8 + j) * 37 % 256) as f32);
        assert_divided_and_bit_identical(bytes.mapv(|b| b / 255.0));
        assert_divided_and_bit_identical(bytes.mapv(|b| f64::from(b) / 255.0));
    }

    #[test]
    fn the_division_rebuilds_every_byte_over_255_exactly() {
        // Not just the bytes a data set happens to hold: all 256, against true division.
        let (d32, d64) = (255.0f32, 255.0f64);
        for byte in 0..=255u8 {
            let want32 = f32::from(byte) / d32;
            assert_eq!(
                Decode::divided(byte, d32, 1.0 / d32).to_bits(),
                want32.to_bits()
            );
            let want64 = f64::from(byte) / d64;
            assert_eq!(
                Decode::divided(byte, d64, 1.0 / d64).to_bits(),
                want64.to_bits()
            );
        }
    }

    /// Sparse codes, 150 columns (the last block short): every fourth byte nonzero, and rows
    /// with none and with all of them nonzero (the last among them).
    fn sparse_codes() -> Array2<u8> {
        let mut codes = Array2::from_shape_fn((7, 150), |(i, j)| {
            if (i * 7 + j * 3) % 4 == 0 {
                (1 + (i * 31 + j * 17) % 255) as u8
            } else {
                0
            }
        });
        codes.row_mut(2).fill(0);
        codes.row_mut(5).mapv_inplace(|c| c.max(9));
        // The last row full too: its last blocks read into the slack after it.
        codes.row_mut(6).mapv_inplace(|c| c.max(3));
        codes
    }

    /// The ways of expanding a block: the SIMD ones only where the CPU has them, the loop
    /// everywhere.
    fn ways_here() -> Vec<Expand> {
        let mut ways = vec![Expand::Loop];
        ways.extend(has_avx2().then_some(Expand::Avx2));
        ways.extend(has_vbmi2().then_some(Expand::Vbmi2));
        ways
    }

    #[test]
    fn packed_rows_expand_to_the_same_codes_by_either_path() {
        let codes = sparse_codes();
        for way in ways_here() {
            let packed = PackedRows::new(&codes, way);
            assert_eq!(packed.starts.len(), codes.nrows() + 1);
            for i in 0..codes.nrows() {
                // Whole rows, parts inside one block, parts across blocks, and the short end.
                for columns in [0..150, 3..7, 60..70, 64..128, 100..150, 149..150, 0..0] {
                    let mut out = vec![99u8; columns.len()];
                    packed.expand_part(i, &columns, &mut out);
                    assert_eq!(
                        out,
                        codes.slice(s![i, columns.clone()]).to_vec(),
                        "row {i}, columns {columns:?}, {way:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_pattern_of_8_columns_expands_by_every_way() {
        // Row r, columns 8k..8k+8: the bits of (r·7 + k·13) mod 256, so that every pattern
        // comes in each of the 8 places of a 64-column block, after every kind of neighbour.
        let codes = Array2::from_shape_fn((256, 136), |(r, j)| {
            let bits = (r * 7 + j / 8 * 13) % 256;
            if bits >> (j % 8) & 1 == 1 {
                (1 + j) as u8
            } else {
                0
            }
        });
        for way in ways_here() {
            let packed = PackedRows::new(&codes, way);
            for (i, row) in codes.rows().into_iter().enumerate() {
                let mut out = vec![0u8; 136];
                packed.expand_part(i, &(0..136), &mut out);
                assert_eq!(out, row.to_vec(), "row {i}, {way:?}");
            }
        }
    }

    #[test]
    fn sparse_byte_images_are_packed_where_the_cpu_expands_in_simd() {
        let x = sparse_codes().mapv(|c| f32::from(c) / 255.0);
        let set = TrainingSet::new(x.clone());
        let packed = matches!(
            set,
            TrainingSet::Codes {
                codes: CodedRows::Packed(_),
                ..
            }
        );
        assert_eq!(packed, Expand::detect() != Expand::Loop);
        if packed {
            assert_eq!(
                set.describe(),
                "one byte per pixel, zero bytes left out; value = byte / divisor (checked exact)"
            );
        }
        assert_eq!((set.rows(), set.features()), (7, 150));
        assert_divided_and_bit_identical(x);
        // Code 0 is the first value seen, here 0.3 (not zero), and it is the one left out.
        let mut codes = sparse_codes();
        codes[[0, 0]] = 0;
        let table = codes.mapv(|c| match c {
            0 => 0.3f32,
            _ => [-1.5, 2.0][usize::from(c % 2)],
        });
        let set = TrainingSet::new(table.clone());
        if packed {
            assert_eq!(
                set.describe(),
                "one byte per pixel, zero bytes left out; exact value table"
            );
        }
        for i in 0..table.nrows() {
            assert_eq!(gathered(&set, i), table.row(i));
        }
        // Few zeros: packing would not save a quarter, so the rows stay plain.
        let dense = Array2::from_shape_fn((4, 150), |(i, j)| (1 + (i + j) % 200) as f32 / 255.0);
        assert!(matches!(
            TrainingSet::new(dense),
            TrainingSet::Codes {
                codes: CodedRows::Plain(_),
                ..
            }
        ));
    }

    #[test]
    fn sparse_sets_gather_the_nonzero_entries_of_a_row_part() {
        // Four rows in five hold values, at a quarter of their columns; one row is all zero.
        let codes = sparse_codes().slice(s![..5, ..]).to_owned();
        let x = codes.mapv(|c| f32::from(c) / 255.0);
        let set = TrainingSet::new(x.clone());
        assert_eq!(set.is_sparse(), Expand::detect() != Expand::Loop);
        if set.is_sparse() {
            for columns in [0..150, 3..7, 60..70, 64..128, 100..150, 149..150, 0..0] {
                let mut got = SparseRows::new(columns.clone(), 5);
                let mut want = SparseRows::new(columns.clone(), 5);
                for (i, row) in x.rows().into_iter().enumerate() {
                    set.gather_sparse(i, &mut got);
                    want.push_dense_row(&row.as_slice().unwrap()[columns.clone()]);
                }
                assert_eq!(got.rows(), want.rows());
                for i in 0..got.rows() {
                    assert_eq!(got.row(i), want.row(i), "row {i}, columns {columns:?}");
                }
            }
            let counts: Vec<usize> = x
                .columns()
                .into_iter()
                .map(|c| c.iter().filter(|&&v| v != 0.0).count())
                .collect();
            assert_eq!(set.nonzeros_per_column(), Some(counts));
        }
        // Not sparse: more than a quarter kept (two full rows), code 0 standing for 0.3, or not
        // held as codes.
        assert!(!TrainingSet::new(sparse_codes().mapv(|c| f32::from(c) / 255.0)).is_sparse());
        let set = TrainingSet::new(zero_standing_for_a_value());
        assert!(!set.is_sparse());
        assert_eq!(set.nonzeros_per_column(), None);
        let many = Array2::from_shape_fn((3, 150), |(i, j)| ((i * 150 + j) as f32).sin());
        assert!(!TrainingSet::new(many).is_sparse());
    }

    /// `sparse_codes` with its two full rows zeroed, as three values: code 0 stands for 0.3
    /// (the first value seen), so a set of it, packed or not, is not sparse.
    fn zero_standing_for_a_value() -> Array2<f32> {
        let mut codes = sparse_codes();
        codes.row_mut(5).fill(0);
        codes.row_mut(6).fill(0);
        codes.mapv(|c| match c {
            0 => 0.3f32,
            _ => [-1.5, 2.0][usize::from(c % 2)],
        })
    }

    #[test]
    #[should_panic(expected = "a set without packed rows of zeros gathered as sparse")]
    fn a_set_whose_left_out_byte_is_not_zero_is_not_gathered_as_sparse() {
        // Gathering it as sparse would leave out values that are not zero.
        TrainingSet::new(zero_standing_for_a_value())
            .gather_sparse(0, &mut SparseRows::new(0..150, 1));
    }

    #[test]
    fn few_values_that_are_not_bytes_over_a_divisor_use_the_table() {
        let x = Array2::from_shape_fn((20, 6), |(i, j)| [0.3f32, -1.5, 2.0, 7.25][(i + j) % 4]);
        let set = TrainingSet::new(x.clone());
        assert!(matches!(
            set,
            TrainingSet::Codes {
                decode: Decode::Table(_),
                ..
            }
        ));
        assert_eq!(set.describe(), "one byte per pixel, exact value table");
        for i in 0..20 {
            assert_eq!(gathered(&set, i), x.row(i));
        }
    }

    #[test]
    fn more_than_256_values_stay_dense() {
        let x = Array2::from_shape_fn((30, 10), |(i, j)| (i * 10 + j) as f32 * 0.5);
        let set = TrainingSet::new(x.clone());
        assert!(matches!(set, TrainingSet::Dense(_)));
        assert_eq!(
            set.describe(),
            "as handed over (more than 256 distinct values)"
        );
        assert_eq!(gathered(&set, 29), x.row(29));
    }

    #[test]
    fn negative_zero_and_nan_keep_their_bits() {
        let x = ndarray::array![[0.0f32, -0.0, f32::NAN, 1.0]];
        let set = TrainingSet::new(x.clone());
        let row = gathered(&set, 0);
        assert!(row
            .iter()
            .zip(x.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
