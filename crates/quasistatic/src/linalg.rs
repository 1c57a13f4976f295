//! Dense products of tall matrices (`d x k` with `d` up to `10^5`) through the blocked,
//! vectorised `gemm` kernel nalgebra uses for `A * B`, split into fixed-size pieces that run in
//! parallel (rayon).
//!
//! nalgebra's `A.tr_mul(B)` computes each entry of `A^T B` as a separate dot product, several
//! times slower than its `gemm`; [`tr_mul`] and [`mul_tr`] hand `matrixmultiply::dgemm` (the
//! kernel behind nalgebra's `gemm`) the transposed operand as strides (no copy) instead.
//! (nalgebra's own products of views with a non-unit row stride are avoided: for small
//! dimensions they fall back to a `gemv` path that corrupts memory in nalgebra 0.35.)
//!
//! All three split a product along its longest dimension into pieces of [`CHUNK`]: along the rows of the result, each piece is an independent product written in place; along the
//! inner dimension, the partial products are added in piece order. The pieces do not depend on
//! the number of threads, so neither does the result (bit for bit). Results agree with
//! nalgebra's products to round-off.

use nalgebra::DMatrix;
use rayon::prelude::*;

/// Rows (of the result, or of the inner dimension) per parallel piece.
pub const CHUNK: usize = 8192;

/// A read-only strided matrix operand over a column-major buffer: entry `(i, j)` is
/// `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f64],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Operand<'a> {
    fn of(m: &'a DMatrix<f64>) -> Self {
        Self {
            data: m.as_slice(),
            offset: 0,
            rows: m.nrows(),
            cols: m.ncols(),
            rs: 1,
            cs: m.nrows(),
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn rows(self, r0: usize, len: usize) -> Self {
        assert!(r0 + len <= self.rows);
        Self {
            offset: self.offset + r0 * self.rs,
            rows: len,
            ..self
        }
    }

    fn cols(self, c0: usize, len: usize) -> Self {
        assert!(c0 + len <= self.cols);
        Self {
            offset: self.offset + c0 * self.cs,
            cols: len,
            ..self
        }
    }

    /// Whether every entry lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// The result buffer of [`split_mul`], shared by the pieces that write disjoint rows of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f64);

impl SharedOut {
    fn get(self) -> *mut f64 {
        self.0
    }
}

// SAFETY: the pieces of `split_mul` write disjoint entries through the pointer, and the buffer
// outlives them (the parallel loop returns before it is used again).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `C = A B` by `matrixmultiply::dgemm` into column-major storage at `c` with row stride 1
/// and column stride `ldc`.
///
/// # Safety
/// Every entry of `a` and `b` lies inside its slice, and `c` is valid for writes of the
/// `a.rows x b.cols` entries at `c + i + j ldc`, aliasing neither operand.
unsafe fn gemm_into(a: Operand<'_>, b: Operand<'_>, c: *mut f64, ldc: usize) {
    // SAFETY: as the caller guarantees.
    unsafe {
        matrixmultiply::dgemm(
            a.rows,
            a.cols,
            b.cols,
            1.0,
            a.data.as_ptr().add(a.offset),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr().add(b.offset),
            b.rs as isize,
            b.cs as isize,
            0.0,
            c,
            1,
            ldc as isize,
        );
    }
}

/// `A B` by one call of `matrixmultiply::dgemm` (the kernel nalgebra uses for large products).
fn gemm(a: Operand<'_>, b: Operand<'_>) -> DMatrix<f64> {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm: operand out of bounds"
    );
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut c = DMatrix::zeros(m, n);
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    // SAFETY: every entry of `a` and `b` lies inside its slice (checked above); `c` is an owned,
    // contiguous, column-major `m x n` buffer (column stride m) that does not alias them.
    unsafe { gemm_into(a, b, c.as_mut_slice().as_mut_ptr(), m) };
    c
}

/// `A B` split along the rows of `A` when they are the largest dimension, along the inner
/// dimension when it is, each piece of [`CHUNK`] rows (see the module docs).
fn split_mul(a: Operand<'_>, b: Operand<'_>) -> DMatrix<f64> {
    let (m, k, l) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "mul: inner dimensions differ");
    if m >= k && m > CHUNK {
        // Each piece writes its rows of the result in place (no per-piece buffers, no copy).
        let mut out = DMatrix::zeros(m, l);
        if k == 0 || l == 0 {
            return out;
        }
        assert!(a.in_bounds() && b.in_bounds(), "mul: operand out of bounds");
        let c = SharedOut(out.as_mut_slice().as_mut_ptr());
        (0..m.div_ceil(CHUNK)).into_par_iter().for_each(|piece| {
            let r0 = piece * CHUNK;
            let a = a.rows(r0, CHUNK.min(m - r0));
            // SAFETY: the operands lie inside their slices (checked above); the pieces write
            // the disjoint row ranges r0..r0 + a.rows of the column-major m x l `out` (row
            // stride 1, column stride m), which aliases neither operand and outlives the loop.
            unsafe { gemm_into(a, b, c.get().add(r0), m) };
        });
        out
    } else if k > CHUNK {
        let pieces: Vec<DMatrix<f64>> = (0..k.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let r0 = c * CHUNK;
                let len = CHUNK.min(k - r0);
                gemm(a.cols(r0, len), b.rows(r0, len))
            })
            .collect();
        let mut out = DMatrix::zeros(m, l);
        for p in &pieces {
            out += p;
        }
        out
    } else {
        gemm(a, b)
    }
}

/// `A B` for `A` (`m x k`) and `B` (`k x l`).
///
/// # Panics
///
/// If the inner dimensions differ.
pub fn mul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    split_mul(Operand::of(a), Operand::of(b))
}

/// `A^T B` for `A` (`d x k`) and `B` (`d x l`): a `k x l` matrix.
///
/// # Panics
///
/// If `A` and `B` have different numbers of rows.
pub fn tr_mul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    assert_eq!(a.nrows(), b.nrows(), "tr_mul: A^T B needs equal row counts");
    split_mul(Operand::of(a).t(), Operand::of(b))
}

/// `A^T`, copied tile by tile (32 x 32) so that both the reads and the writes stay in cache.
pub fn transpose(a: &DMatrix<f64>) -> DMatrix<f64> {
    const TILE: usize = 32;
    let (r, c) = a.shape();
    let mut t = DMatrix::zeros(c, r);
    let (src, dst) = (a.as_slice(), t.as_mut_slice());
    for j0 in (0..c).step_by(TILE) {
        for i0 in (0..r).step_by(TILE) {
            for j in j0..(j0 + TILE).min(c) {
                for i in i0..(i0 + TILE).min(r) {
                    // a[(i, j)] at i + j r goes to t[(j, i)] at j + i c.
                    dst[j + i * c] = src[i + j * r];
                }
            }
        }
    }
    t
}

/// `A B^T` for `A` (`k x d`) and `B` (`l x d`): a `k x l` matrix.
///
/// # Panics
///
/// If `A` and `B` have different numbers of columns.
pub fn mul_tr(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    assert_eq!(
        a.ncols(),
        b.ncols(),
        "mul_tr: A B^T needs equal column counts"
    );
    split_mul(Operand::of(a), Operand::of(b).t())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tr_mul` and `mul_tr` equal nalgebra's `A^T B` to round-off, also for thin and
    /// one-column shapes.
    #[test]
    fn products_match_nalgebra() {
        for (d, k, l) in [
            (300, 7, 9),
            (50, 1, 3),
            (40, 6, 1),
            (3, 2, 2),
            (1000, 12, 12),
            (3 * CHUNK + 17, 9, 7),
        ] {
            let a = DMatrix::from_fn(d, k, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin());
            let b = DMatrix::from_fn(d, l, |i, j| ((i * 5 + j * 11) as f64 * 0.21).cos());
            let want = a.tr_mul(&b);
            let got = tr_mul(&a, &b);
            assert_eq!(got.shape(), (k, l));
            let scale = want.abs().max().max(1.0);
            assert!((&got - &want).abs().max() <= 1e-12 * scale * d as f64);
            let (at, bt) = (transpose(&a), transpose(&b));
            assert_eq!(at, a.transpose());
            // Tall times small (split along the result's rows) and wide times tall (split
            // along the inner dimension).
            let c = DMatrix::from_fn(k, l, |i, j| (i as f64 - j as f64 * 0.5).sin());
            let err = (mul(&a, &c) - &a * &c).abs().max();
            assert!(err <= 1e-12 * (&a * &c).abs().max().max(1.0) * k as f64);
            let err = (mul(&at, &b) - &want).abs().max();
            assert!(err <= 1e-12 * scale * d as f64);
            let got = mul_tr(&at, &bt);
            assert!((&got - &want).abs().max() <= 1e-12 * scale * d as f64);
        }
    }

    /// The split products are bit-identical with 1 and 2 rayon threads.
    #[test]
    fn products_are_bit_identical_across_thread_counts() {
        let d = 3 * CHUNK + 17;
        let a = DMatrix::from_fn(d, 9, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let b = DMatrix::from_fn(d, 5, |i, j| ((i * 5 + j * 11) as f64 * 0.21).cos());
        let c = DMatrix::from_fn(9, 4, |i, j| (i as f64 - j as f64 * 0.5).sin());
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let at = transpose(&a);
                    (tr_mul(&a, &b), mul(&a, &c), mul_tr(&at, &at), at)
                })
        };
        assert_eq!(run(1), run(2));
    }
}
