//! The multi-positive CLIP loss against hand-computed values and against plain InfoNCE.

use burn::backend::NdArray;
use burn::prelude::*;
use otclip::loss::{clip_loss, multi_positive_targets};

type B = NdArray<f32>;

fn tensor(rows: &[[f32; 2]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::<B, 1>::from_floats(flat.as_slice(), &Default::default()).reshape([rows.len(), 2])
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem()
}

#[test]
fn two_pairs_by_hand() {
    // Orthonormal pairs, s = 2: each row has logits (2, 0), so CE = ln(1 + e^-2) in both directions.
    let x = tensor(&[[1.0, 0.0], [0.0, 1.0]]);
    let scale = Tensor::<B, 1>::from_floats([2.0], &Default::default());
    let loss = scalar(clip_loss(x.clone(), x, scale, &[0, 1]));
    let expected = (1.0 + (-2.0f64).exp()).ln();
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
}

#[test]
fn shared_image_spreads_the_target() {
    // Pairs 0 and 1 share an image. Rows 0 and 1 each put 1/2 on columns 0 and 1.
    let images = tensor(&[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]);
    let texts = tensor(&[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]);
    let scale = Tensor::<B, 1>::from_floats([3.0], &Default::default());
    let loss = scalar(clip_loss(images, texts, scale, &[7, 7, 9]));

    // By hand: L = 3 · X Yᵀ.
    let l = [[3.0, 1.8, 0.0], [3.0, 1.8, 0.0], [0.0, 2.4, 3.0]];
    let g = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]];
    let ce = |logits: [[f64; 3]; 3]| -> f64 {
        (0..3)
            .map(|i| {
                let lse = logits[i].iter().map(|v| v.exp()).sum::<f64>().ln();
                -(0..3).map(|j| g[i][j] * (logits[i][j] - lse)).sum::<f64>()
            })
            .sum::<f64>()
            / 3.0
    };
    let lt = [[l[0][0], l[1][0], l[2][0]], [l[0][1], l[1][1], l[2][1]], [l[0][2], l[1][2], l[2][2]]];
    let expected = 0.5 * (ce(l) + ce(lt));
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
}

#[test]
fn distinct_ids_give_symmetric_infonce() {
    let n = 6;
    let dim = 2;
    let angle = |k: usize, off: f32| {
        let a = k as f32 * 0.9 + off;
        [a.cos(), a.sin()]
    };
    let images: Vec<[f32; 2]> = (0..n).map(|k| angle(k, 0.0)).collect();
    let texts: Vec<[f32; 2]> = (0..n).map(|k| angle(k, 0.3)).collect();
    let s = 4.0f64;
    let loss = scalar(clip_loss(
        tensor(&images),
        tensor(&texts),
        Tensor::<B, 1>::from_floats([s as f32], &Default::default()),
        &(0..n as u64).collect::<Vec<_>>(),
    ));
    // Textbook InfoNCE: mean over i of −log softmax(L_i)_i, both ways.
    let logit = |i: usize, j: usize| s * (0..dim).map(|d| (images[i][d] * texts[j][d]) as f64).sum::<f64>();
    let mut total = 0.0;
    for i in 0..n {
        let row = (0..n).map(|j| logit(i, j).exp()).sum::<f64>().ln();
        let col = (0..n).map(|j| logit(j, i).exp()).sum::<f64>().ln();
        total += (row - logit(i, i)) + (col - logit(i, i));
    }
    let expected = total / (2.0 * n as f64);
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
}

#[test]
fn targets_rows_sum_to_one_and_are_symmetric() {
    let g = multi_positive_targets::<B>(&[3, 1, 3, 3, 2], &Default::default());
    let data: Vec<f32> = g.into_data().into_vec().unwrap();
    for i in 0..5 {
        let sum: f32 = data[i * 5..(i + 1) * 5].iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        for j in 0..5 {
            assert_eq!(data[i * 5 + j], data[j * 5 + i]);
        }
    }
    assert!((data[0] - 1.0 / 3.0).abs() < 1e-7);
    assert_eq!(data[1], 0.0);
}
