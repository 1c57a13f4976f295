//! How a group's samples and parameters are laid out: the batch of one trajectory
//! ([`Batch`]), of a group of [`LANES`] trajectories ([`LaneBatch`]), and the coordinate-major
//! group vectors (coordinate `k` of lane `l` at `k * LANES + l`).

use super::lanes::{Lanes, LANES};

/// Which samples enter a gradient, and by how much their labels are shifted.
///
/// The batch gradient is `g = (1/|B|) sum_{k} (f_{i_k} - y_{i_k} - shift_k) grad f_{i_k}`,
/// and the returned loss is the clean one, `(1/|B|) sum_k 1/2 (f_{i_k} - y_{i_k})^2`.
/// `shift` models fresh label noise; `indices` a mini-batch.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Sample indices; `None` means all samples `0..n` in order.
    pub indices: Option<&'a [usize]>,
    /// Label shifts, one per batch position (`len == batch size`); `None` means zero.
    pub shift: Option<&'a [f64]>,
}

impl<'a> Batch<'a> {
    /// All samples, clean labels: the full-batch gradient of `L`.
    pub const FULL: Batch<'static> = Batch {
        indices: None,
        shift: None,
    };

    /// Number of samples in the batch, given the model's `n`.
    #[inline]
    pub fn len(&self, n: usize) -> usize {
        self.indices.map_or(n, |ix| ix.len())
    }

    /// Whether the batch has no sample.
    #[inline]
    pub fn is_empty(&self, n: usize) -> bool {
        self.len(n) == 0
    }

    /// Sample index at batch position `k`.
    #[inline]
    pub fn sample(&self, k: usize) -> usize {
        self.indices.map_or(k, |ix| ix[k])
    }

    /// Label shift at batch position `k`.
    #[inline]
    pub fn shift_at(&self, k: usize) -> f64 {
        self.shift.map_or(0.0, |s| s[k])
    }
}

/// The batches of a group of trajectories (see `model::LaneModel::lane_gradients`).
#[derive(Clone, Copy, Debug)]
pub struct LaneBatch<'a> {
    /// Lanes in use (`1..=LANES`).
    pub lanes: usize,
    /// Batch size `B` (the same for every lane).
    pub size: usize,
    /// Per-lane sample indices, lane `l`'s at `indices[l * stride..l * stride + size]`;
    /// `None`: every lane uses all samples `0..n` in order.
    pub indices: Option<&'a [usize]>,
    /// Stride of `indices` between lanes.
    pub stride: usize,
    /// Label shifts, coordinate-major: batch position `k` of lane `l` at `shift[k * LANES + l]`;
    /// `None` means zero.
    pub shift: Option<&'a [f64]>,
}

impl<'a> LaneBatch<'a> {
    /// Full batches of `n` samples, clean labels, for `lanes` lanes.
    pub fn full(lanes: usize, n: usize) -> Self {
        Self {
            lanes,
            size: n,
            indices: None,
            stride: 0,
            shift: None,
        }
    }

    /// Shifts of batch position `k` for all lanes (zeros without label noise).
    #[inline(always)]
    pub fn shifts_at(&self, k: usize) -> Lanes {
        match self.shift {
            None => Lanes::ZERO,
            Some(s) => Lanes::load(&s[k * LANES..(k + 1) * LANES]),
        }
    }

    /// Lane `l`'s batch as a [`Batch`]; its shifts are copied into `shift_buf` (length `>= size`).
    pub fn lane<'b>(&self, l: usize, shift_buf: &'b mut [f64]) -> Batch<'b>
    where
        'a: 'b,
    {
        let shift = self.shift.map(|s| {
            for (k, o) in shift_buf[..self.size].iter_mut().enumerate() {
                *o = s[k * LANES + l];
            }
            &shift_buf[..self.size]
        });
        Batch {
            indices: self
                .indices
                .map(|ix| &ix[l * self.stride..l * self.stride + self.size]),
            shift,
        }
    }
}

/// Where a lane kernel reads and writes coordinate `k` of all lanes of a group: a
/// coordinate-major `[f64]` buffer (coordinate `k` of lane `l` at `k * LANES + l`) or `[Lanes]`
/// values. Lets one kernel serve a model's group gradient kernels.
pub trait LaneSlots {
    /// Coordinate `k` of every lane.
    fn get_lanes(&self, k: usize) -> Lanes;
    /// Set coordinate `k` of every lane.
    fn set_lanes(&mut self, k: usize, v: Lanes);
}

impl LaneSlots for [f64] {
    #[inline(always)]
    fn get_lanes(&self, k: usize) -> Lanes {
        Lanes::load(&self[k * LANES..(k + 1) * LANES])
    }
    #[inline(always)]
    fn set_lanes(&mut self, k: usize, v: Lanes) {
        v.store(&mut self[k * LANES..(k + 1) * LANES]);
    }
}

impl LaneSlots for [Lanes] {
    #[inline(always)]
    fn get_lanes(&self, k: usize) -> Lanes {
        self[k]
    }
    #[inline(always)]
    fn set_lanes(&mut self, k: usize, v: Lanes) {
        self[k] = v;
    }
}

/// Copy lane `l` of a coordinate-major group vector into `out` (length `d`).
#[inline]
pub fn gather_lane(group: &[f64], l: usize, out: &mut [f64]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = group[k * LANES + l];
    }
}

/// Write `v` (length `d`) into lane `l` of a coordinate-major group vector.
#[inline]
pub fn scatter_lane(v: &[f64], l: usize, group: &mut [f64]) {
    for (k, &x) in v.iter().enumerate() {
        group[k * LANES + l] = x;
    }
}
