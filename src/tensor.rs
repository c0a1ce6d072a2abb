//! Small tensor helpers shared by the layers.

use burn::prelude::Backend;
use burn::tensor::{Tensor, TensorData};

/// A tensor from f64 values at full precision (`from_floats` rounds through f32), converted to the
/// backend's float type.
pub fn f64_tensor<B: Backend, const D: usize>(values: &[f64], shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    let data = TensorData::new(values.to_vec(), shape).convert::<B::FloatElem>();
    Tensor::from_data(data, device)
}
