//! A matrix whose rows (or columns) each start on a 64-byte boundary.
//!
//! An AVX-512 load that straddles two cache lines costs about twice one that does not; the
//! first layer's own kernels (`kernel.rs`) load whole rows of the batch and columns of W, 16
//! floats at a time, and ran markedly slower on the unaligned buffers a plain `Array2` gives
//! (development runs; the `kernels` example times them as the net runs them, aligned). So the
//! buffer is over-allocated, the stride between lines rounded up to 64 bytes, and the matrix
//! viewed from the first aligned element: safe code, at the price of a few bytes per line.

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Ix2, ShapeBuilder, SliceInfo, SliceInfoElem};

/// Bytes of the boundary lines start on.
pub const ALIGN: usize = 64;

/// A `rows × cols` matrix, row-major or column-major, each line (row or column) aligned.
pub struct Aligned2<T> {
    storage: Array2<T>,
    /// Elements skipped at the start of each line of `storage` to reach the boundary.
    offset: usize,
    dim: (usize, usize),
    column_major: bool,
}

impl<T: Copy + num_traits::Zero> Aligned2<T> {
    pub fn zeros((rows, cols): (usize, usize), column_major: bool) -> Self {
        let per_line = per_line::<T>();
        let length = if column_major { rows } else { cols };
        let lines = if column_major { cols } else { rows };
        // One spare boundary's worth per line: room to move every line to the boundary.
        let stride = length.div_ceil(per_line) * per_line + per_line;
        let storage = if column_major {
            Array2::zeros((stride, lines).f())
        } else {
            Array2::zeros((lines, stride))
        };
        Aligned2 {
            offset: to_boundary(storage.as_ptr()),
            storage,
            dim: (rows, cols),
            column_major,
        }
    }

    /// A copy of `values`, aligned.
    pub fn from_view(values: ArrayView2<T>, column_major: bool) -> Self {
        let mut aligned = Self::zeros(values.dim(), column_major);
        aligned.view_mut().assign(&values);
        aligned
    }

    pub fn view(&self) -> ArrayView2<'_, T> {
        self.storage.slice(self.window())
    }

    pub fn view_mut(&mut self) -> ArrayViewMut2<'_, T> {
        let window = self.window();
        self.storage.slice_mut(window)
    }

    /// The matrix's part of `storage`: every line from its aligned element on.
    fn window(&self) -> SliceInfo<[SliceInfoElem; 2], Ix2, Ix2> {
        let (rows, cols) = self.dim;
        let at = self.offset;
        if self.column_major {
            s![at..at + rows, ..]
        } else {
            s![.., at..at + cols]
        }
    }

    pub fn dim(&self) -> (usize, usize) {
        self.dim
    }

    /// A row-major matrix's rows padded to whole 64-byte lines, for code that loads them in whole
    /// vectors: the buffer from the first row's start, and the elements from one row's start to
    /// the next's. Row `i` is `[i * stride..][..padded]`, `padded` being `cols` rounded up to
    /// whole lines; the padding is zero unless written here.
    ///
    /// # Panics
    /// For a column-major matrix.
    pub fn padded_rows(&self) -> (&[T], usize) {
        let (start, stride) = self.padded_start();
        let all = self.storage.as_slice().expect("storage is standard-layout");
        (&all[start..], stride)
    }

    /// `padded_rows`, writable.
    pub fn padded_rows_mut(&mut self) -> (&mut [T], usize) {
        let (start, stride) = self.padded_start();
        let all = self
            .storage
            .as_slice_mut()
            .expect("storage is standard-layout");
        (&mut all[start..], stride)
    }

    /// Where `padded_rows` starts in the storage, and its stride.
    fn padded_start(&self) -> (usize, usize) {
        assert!(!self.column_major, "padded rows of a row-major matrix only");
        (self.offset.min(self.storage.len()), self.storage.ncols())
    }

    /// Elements in a padded row (`padded_rows`).
    pub fn padded_cols(&self) -> usize {
        self.dim.1.div_ceil(per_line::<T>()) * per_line::<T>()
    }

    pub fn is_column_major(&self) -> bool {
        self.column_major
    }
}

/// Elements of `T` in a 64-byte line.
pub fn per_line<T>() -> usize {
    (ALIGN / std::mem::size_of::<T>()).max(1)
}

/// Elements from `start` to the next 64-byte boundary (0 when it is on one).
fn to_boundary<T>(start: *const T) -> usize {
    let misalignment = start as usize % ALIGN / std::mem::size_of::<T>();
    (per_line::<T>() - misalignment) % per_line::<T>()
}

/// The first `len` elements of `buffer` from a 64-byte boundary on, growing it as needed: for
/// scratch buffers loaded and stored in whole vectors (a vector that straddles two cache lines
/// costs about twice as much). What the slice holds is whatever the buffer held.
pub fn aligned_mut<T: Copy + num_traits::Zero>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len + per_line::<T>() {
        buffer.resize(len + per_line::<T>(), T::zero());
    }
    let offset = to_boundary(buffer.as_ptr());
    &mut buffer[offset..offset + len]
}

impl<T: Copy + num_traits::Zero> Clone for Aligned2<T> {
    /// A new buffer is aligned afresh (its start may differ from this one's).
    fn clone(&self) -> Self {
        Self::from_view(self.view(), self.column_major)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_starts_on_the_boundary_and_holds_its_values() {
        for (rows, cols) in [(100, 784), (3, 5), (784, 50), (1, 1), (0, 4)] {
            for column_major in [false, true] {
                let values = Array2::from_shape_fn((rows, cols), |(i, j)| (i * 1000 + j) as f32);
                let aligned = Aligned2::from_view(values.view(), column_major);
                let view = aligned.view();
                assert_eq!(view, values);
                let lines: Vec<*const f32> = if column_major {
                    view.columns().into_iter().map(|c| c.as_ptr()).collect()
                } else {
                    view.rows().into_iter().map(|r| r.as_ptr()).collect()
                };
                // (An empty matrix's lines hold nothing to load.)
                let empty = rows == 0 || cols == 0;
                assert!(
                    empty || lines.iter().all(|&p| (p as usize).is_multiple_of(ALIGN)),
                    "{rows}×{cols}"
                );
                assert_eq!(aligned.clone().view(), values);
            }
        }
    }

    #[test]
    fn scratch_slices_start_on_the_boundary() {
        let mut buffer = Vec::new();
        for len in [0, 1, 100, 5000, 3] {
            let slice = aligned_mut::<f32>(&mut buffer, len);
            assert_eq!(slice.len(), len);
            assert!((slice.as_ptr() as usize).is_multiple_of(ALIGN));
        }
    }
}
