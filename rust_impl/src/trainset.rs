//! The training images as the net keeps them, and the gathering of a batch's rows.
//!
//! MNIST's 47 million pixels take only 256 distinct values (the byte values divided by 255). When
//! the training set the harness hands over has at most 256 distinct values, it is kept as one
//! byte per pixel: a quarter of the memory to pull in per batch. The floats are rebuilt from the
//! bytes bit for bit, either by the division they came from (when every value is `byte / d` for
//! one integer `d`, found and checked value by value at set-up; SIMD, ~4× faster than a table
//! here) or from a table of the values. Any other training set is kept as it came.

use std::collections::HashMap;

use std::ops::Range;

use ndarray::{s, Array2, ArrayViewMut1};

use crate::linalg::Scalar;

pub enum TrainingSet<T> {
    /// One byte per pixel.
    Codes {
        codes: Array2<u8>,
        decode: Decode<T>,
    },
    Dense(Array2<T>),
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

    fn row(&self, codes: &[u8], out: &mut [T]) {
        match *self {
            Decode::Divided {
                divisor,
                reciprocal,
                simd,
            } => {
                // Compiled for that SIMD, where the loop vectorizes; the generic x86-64 build
                // has no FMA.
                simd.dispatch(
                    #[inline(always)]
                    || {
                        for (o, &c) in out.iter_mut().zip(codes) {
                            *o = Self::divided(c, divisor, reciprocal);
                        }
                    },
                );
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
            return TrainingSet::Codes { codes, decode };
        }
        // Unused codes index 0, so the lookup needs no bounds check (a table of exactly 256).
        table.resize(256, T::zero());
        TrainingSet::Codes {
            codes,
            decode: Decode::Table(table),
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            TrainingSet::Codes { codes, .. } => codes.nrows(),
            TrainingSet::Dense(x) => x.nrows(),
        }
    }

    pub fn features(&self) -> usize {
        match self {
            TrainingSet::Codes { codes, .. } => codes.ncols(),
            TrainingSet::Dense(x) => x.ncols(),
        }
    }

    /// How the images are held, for the run record.
    pub fn describe(&self) -> &'static str {
        match self {
            TrainingSet::Codes {
                decode: Decode::Divided { .. },
                ..
            } => "one byte per pixel, value = byte / divisor (checked exact)",
            TrainingSet::Codes {
                decode: Decode::Table(_),
                ..
            } => "one byte per pixel, exact value table",
            TrainingSet::Dense(_) => "as handed over (more than 256 distinct values)",
        }
    }

    /// Writes the values of row `index` in `columns` into `out`.
    pub fn copy_row_part(&self, index: usize, columns: Range<usize>, mut out: ArrayViewMut1<T>) {
        match self {
            TrainingSet::Codes { codes, decode } => {
                let codes = codes.slice(s![index, columns]);
                let codes = codes.as_slice().expect("a row of a standard-layout array");
                match out.as_slice_mut() {
                    Some(out) => decode.row(codes, out),
                    None => {
                        let mut row = vec![T::zero(); codes.len()];
                        decode.row(codes, &mut row);
                        out.assign(&ndarray::ArrayView1::from(&row));
                    }
                }
            }
            TrainingSet::Dense(x) => out.assign(&x.slice(s![index, columns])),
        }
    }

    /// Starts pulling the values of row `index` in `columns` towards the cache, for a step that
    /// comes later.
    ///
    /// The rows of a batch are 100 random rows of a 47–188 MB array, and the copy stalls on main
    /// memory for each of them. Prefetching the next step's rows during this one saved 2–4 % of
    /// a whole step (median of 8 paired runs of `cargo run --release --example phases`, one
    /// thread; the machine's own run-to-run spread was larger, ±7 %). A prefetch instruction
    /// rather than a plain load, because a load that misses holds its place in the pipeline.
    pub fn prefetch_row_part(&self, index: usize, columns: Range<usize>) {
        let (start, bytes) = match self {
            TrainingSet::Codes { codes, .. } => {
                let part = codes.slice(s![index, columns]);
                (part.as_ptr(), part.len())
            }
            TrainingSet::Dense(x) => {
                let part = x.slice(s![index, columns]);
                (
                    part.as_ptr().cast::<u8>(),
                    part.len() * std::mem::size_of::<T>(),
                )
            }
        };
        for offset in (0..bytes).step_by(CACHE_LINE) {
            prefetch(start.wrapping_add(offset));
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
