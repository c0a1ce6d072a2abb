//! Recall@K, ranks and MAP on constructed score matrices.

use otclip::eval::retrieval_metrics;

#[test]
fn perfect_and_reversed_rankings() {
    // 3 images, 1 caption each; identity scores rank everything first.
    let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let m = retrieval_metrics(&identity, &[0, 1, 2], 3);
    assert_eq!(m.t2i_recall, [1.0, 1.0, 1.0]);
    assert_eq!(m.i2t_recall, [1.0, 1.0, 1.0]);
    assert_eq!(m.t2i_median_rank, 1.0);
    assert_eq!(m.mean_recall(), 1.0);
    assert!((m.rsum() - 600.0).abs() < 1e-9);

    // The positive always scores lowest: rank 3 of 3.
    let reversed = [0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0];
    let m = retrieval_metrics(&reversed, &[0, 1, 2], 3);
    assert_eq!(m.t2i_recall[0], 0.0);
    assert_eq!(m.t2i_median_rank, 3.0);
    assert!((m.t2i_map - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn ties_count_against_the_query() {
    // All scores equal: a collapsed model. Every positive ties with every negative.
    let flat = [0.5f32; 12];
    let m = retrieval_metrics(&flat, &[0, 0, 1, 2], 3);
    assert_eq!(m.t2i_recall[0], 0.0);
    assert_eq!(m.t2i_median_rank, 3.0);
    assert_eq!(m.i2t_recall[0], 0.0);
    // Image 0 has two positives tied with two negatives: first positive at rank 3.
    assert_eq!(m.i2t_median_rank, 4.0);
}

#[test]
fn nan_scores_rank_last() {
    let scores = [f32::NAN, 0.0, 0.0, f32::NAN];
    let m = retrieval_metrics(&scores, &[0, 1], 2);
    assert_eq!(m.t2i_recall[0], 0.0);
}

#[test]
fn several_captions_per_image() {
    // 2 images; captions 0,1,2 belong to image 0 and caption 3 to image 1. Rows are captions.
    let scores = [
        0.9, 0.1, // caption 0 → image 0 first
        0.2, 0.8, // caption 1 → image 1 first (a miss at 1)
        0.7, 0.3, // caption 2 → image 0
        0.4, 0.6, // caption 3 → image 1
    ];
    let m = retrieval_metrics(&scores, &[0, 0, 0, 1], 2);
    assert_eq!(m.captions, 4);
    assert_eq!(m.images, 2);
    assert!((m.t2i_recall[0] - 0.75).abs() < 1e-12);
    assert_eq!(m.t2i_recall[1], 1.0);
    // Image 0's column: 0.9 (pos), 0.2 (pos), 0.7 (pos), 0.4 (neg) → first positive at rank 1.
    // Image 1's column: 0.1, 0.8, 0.3 (neg), 0.6 (pos) → rank 2.
    assert_eq!(m.i2t_recall[0], 0.5);
    assert_eq!(m.i2t_recall[1], 1.0);
    assert_eq!(m.i2t_median_rank, 1.5);
    // AP of image 0: positives at ranks 1, 2, 4 → (1/1 + 2/2 + 3/4) / 3; image 1: 1/2.
    let expected = ((1.0 + 1.0 + 0.75) / 3.0 + 0.5) / 2.0;
    assert!((m.i2t_map - expected).abs() < 1e-12, "{}", m.i2t_map);
}
