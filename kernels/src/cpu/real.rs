//! The float types the CPU loops run in, and their vectorised building blocks: a fast `exp` and
//! `ln`, dot products and axpy with AVX2 where the CPU has it, and reading and writing `NdArray`
//! tensors without element-by-element copies.

use burn::tensor::{TensorData, TensorMetadata};
use burn_ndarray::{NdArray, NdArrayTensor};

/// The float types the loops run in: the tensor's own (f32 normally, f64 where asked for).
pub(crate) trait Real: Copy + Send + Sync + PartialOrd + std::fmt::Debug + 'static
where
    Self: std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self>,
{
    const ZERO: Self;
    /// Sums below this may have lost their largest terms to underflow.
    const TINY: Self;
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp_fast(self) -> Self;
    fn ln(self) -> Self;
    /// ln for positive normal numbers (sums of scalings above TINY).
    fn ln_fast(self) -> Self;
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData;
    fn from_f32(values: Vec<f32>) -> Vec<Self>;
    fn from_f64(values: Vec<f64>) -> Vec<Self>;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const TINY: Self = 1e-30;
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    /// e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2; e^r by a degree-6 polynomial.
    #[inline(always)]
    fn exp_fast(self) -> Self {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
        let x = if self < -87.0 { -87.0 } else if self > 88.0 { 88.0 } else { self };
        let n = (x * LOG2E + ROUND) - ROUND;
        let r = x - n * LN2_HI - n * LN2_LO;
        let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
        let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
        let value = p * scale;
        if self < -87.0 { 0.0 } else { value }
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    /// x = 2^e · m with m in [√½, √2); ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, by
    /// its series to s⁹ (relative error below 1e-7).
    #[inline(always)]
    fn ln_fast(self) -> Self {
        let bits = self.to_bits();
        let mut exponent = ((bits >> 23) & 0xff) as i32 - 127;
        let mut mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        if mantissa > std::f32::consts::SQRT_2 {
            mantissa *= 0.5;
            exponent += 1;
        }
        let s = (mantissa - 1.0) / (mantissa + 1.0);
        let s2 = s * s;
        let series = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
        exponent as f32 * std::f32::consts::LN_2 + series
    }
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData {
        TensorData::new(values, shape)
    }
    fn from_f32(values: Vec<f32>) -> Vec<Self> {
        values
    }
    fn from_f64(values: Vec<f64>) -> Vec<Self> {
        values.into_iter().map(|v| v as f32).collect()
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const TINY: Self = 1e-290;
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp_fast(self) -> Self {
        self.exp()
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn ln_fast(self) -> Self {
        f64::ln(self)
    }
    fn into_data(values: Vec<Self>, shape: Vec<usize>) -> TensorData {
        TensorData::new(values, shape)
    }
    fn from_f32(values: Vec<f32>) -> Vec<Self> {
        values.into_iter().map(f64::from).collect()
    }
    fn from_f64(values: Vec<f64>) -> Vec<Self> {
        values
    }
}

/// The float primitive is the same type for every `NdArray<E, I, Q>`.
pub(crate) type Nd = NdArray<f32>;

/// A float primitive's values as `T`, copied in one go when its storage is contiguous.
/// (`into_data` collects a shared tensor, such as a clone, element by element through a
/// dynamic-rank iterator: at N = 600 that took a third of the solve.)
pub(crate) fn values<T: Real>(t: &NdArrayTensor) -> Vec<T> {
    macro_rules! copied {
        ($storage:expr) => {{
            let view = $storage.view();
            match view.as_slice() {
                Some(slice) => slice.to_vec(),
                None => view.iter().copied().collect(),
            }
        }};
    }
    match t {
        NdArrayTensor::F32(storage) => T::from_f32(copied!(storage)),
        NdArrayTensor::F64(storage) => T::from_f64(copied!(storage)),
        other => panic!("the Sinkhorn kernel takes f32 or f64 tensors, not {:?}", other.dtype()),
    }
}

pub(crate) fn dims(t: &NdArrayTensor) -> Vec<usize> {
    t.shape().to_vec()
}

pub(crate) fn write<T: Real>(values: Vec<T>, shape: Vec<usize>) -> NdArrayTensor {
    NdArrayTensor::from_data(T::into_data(values, shape))
}


/// Lanes of the unrolled loops: independent accumulators let the compiler vectorise a reduction
/// that it may not reorder itself (32 f32 lanes are four AVX2 registers).
pub(crate) const LANES: usize = 32;

/// Σ_k a_k b_k, vectorised for the CPU it runs on.
#[inline]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2<T: Real>(a: &[T], b: &[T]) -> T {
    dot_portable(a, b)
}

#[inline(always)]
fn dot_portable<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = chunks_a.remainder().iter().zip(chunks_b.remainder()).fold(T::ZERO, |s, (&x, &y)| s + x * y);
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..LANES {
            acc[lane] = acc[lane] + x[lane] * y[lane];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// y ← y + a·x, vectorised for the CPU it runs on.
#[inline]
pub(crate) fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { axpy_avx2(a, x, y) };
    }
    axpy_portable(a, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_avx2<T: Real>(a: T, x: &[T], y: &mut [T]) {
    axpy_portable(a, x, y)
}

#[inline(always)]
fn axpy_portable<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + a * x;
    }
}

/// Rows per rayon task: a few tasks per thread, so that a parallel section pays little for scheduling.
pub(crate) fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads()).max(8)
}

