//! Instruction sets, picked at run time.
//!
//! The engine's hot loops are compiled several times with `#[target_feature]` and the widest
//! version the CPU runs is taken. The results never depend on the version: the arithmetic is
//! element-wise IEEE (no contraction into fused multiply-adds unless written out, which is
//! exactly specified too), so every version gives the same bits (tested per loop).

/// The instruction sets the engine's loops are compiled for (x86-64; elsewhere only
/// [`Isa::Baseline`] is available).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F, with vectorised label-noise draws.
    Avx512,
    /// AVX2.
    Avx2,
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
}

impl Isa {
    /// The widest one this CPU runs.
    pub fn widest() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.available())
            .unwrap_or(Isa::Baseline)
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
            Isa::Baseline => true,
        }
    }
}
