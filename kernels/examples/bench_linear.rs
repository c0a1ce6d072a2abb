//! The fused linear layer (`otclip_kernels::layer_ops::linear`, strided `gemm`-crate products)
//! against burn's `linear` on ndarray (burn-ndarray's matmul), forward only, in GFLOP/s, on the
//! shapes of otclip's towers: the tiny preset's MLP at batch 128 and ViT-B/16's at batch 16.
//!
//! `cargo run --release -p otclip-kernels --example bench_linear` (threads: `RAYON_NUM_THREADS`).
//! Prints one line per shape: the median of 7 runs after a warm-up, each side in turn.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use otclip_kernels::layer_ops;

type B = burn::backend::NdArray<f32>;

fn median_seconds(mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let device = Default::default();
    // (rows = batch · tokens, d_in, d_out)
    let shapes: [(usize, usize, usize); 5] = [(128 * 37, 96, 384), (128 * 37, 384, 96), (16 * 197, 768, 3072), (16 * 197, 3072, 768), (16 * 197, 768, 768)];
    println!("{:>20} | {:>14} {:>14} {:>7}", "rows × d_in × d_out", "fused GFLOP/s", "burn GFLOP/s", "ratio");
    for (rows, d_in, d_out) in shapes {
        let x = Tensor::<B, 2>::random([rows, d_in], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<B, 2>::random([d_in, d_out], Distribution::Normal(0.0, 0.05), &device);
        let bias = Tensor::<B, 1>::random([d_out], Distribution::Normal(0.0, 0.05), &device);
        let fused = median_seconds(|| {
            let _ = layer_ops::linear(x.clone(), weight.clone(), Some(bias.clone())).into_data();
        });
        let reference = median_seconds(|| {
            let _ = burn::tensor::module::linear(x.clone(), weight.clone(), Some(bias.clone())).into_data();
        });
        let flops = 2.0 * (rows * d_in * d_out) as f64;
        println!("{:>20} | {:>14.1} {:>14.1} {:>6.2}×", format!("{rows}×{d_in}×{d_out}"), flops / fused / 1e9, flops / reference / 1e9, reference / fused);
    }
}
