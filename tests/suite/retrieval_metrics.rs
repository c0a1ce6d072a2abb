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

/// AP@K computed by walking the ranked gallery, as `ml_metrics.apk` does: precision at each
/// relevant item within the top K, summed, over min(K, relevant). Ties with a negative put the
/// positive after it (they count against the query); `k = usize::MAX` is plain AP.
fn walked_ap(scores: &[f32], relevant: &[bool], k: usize) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(relevant[a].cmp(&relevant[b])));
    let (mut hits, mut sum) = (0usize, 0.0);
    for (position, &item) in order.iter().enumerate().take(k.min(order.len())) {
        if relevant[item] {
            hits += 1;
            sum += hits as f64 / (position + 1) as f64;
        }
    }
    sum / relevant.iter().filter(|&&r| r).count().min(k).max(1) as f64
}

#[test]
fn map_at_k_matches_a_walk_down_the_ranking() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (images, captions) = (9, 31);
    let caption_image: Vec<usize> = (0..captions).map(|c| if c < images { c } else { rng.random_range(0..images) }).collect();
    // Coarse scores, so that ties happen.
    let scores: Vec<f32> = (0..captions * images).map(|_| (rng.random_range(0..6) as f32) / 5.0).collect();
    let m = retrieval_metrics(&scores, &caption_image, images);
    for (index, &k) in otclip::eval::RECALL_KS.iter().enumerate() {
        let t2i: f64 = (0..captions)
            .map(|c| walked_ap(&scores[c * images..(c + 1) * images], &(0..images).map(|i| i == caption_image[c]).collect::<Vec<_>>(), k))
            .sum::<f64>()
            / captions as f64;
        let i2t: f64 = (0..images)
            .map(|i| {
                let column: Vec<f32> = (0..captions).map(|c| scores[c * images + i]).collect();
                walked_ap(&column, &caption_image.iter().map(|&ci| ci == i).collect::<Vec<_>>(), k)
            })
            .sum::<f64>()
            / images as f64;
        assert!((m.t2i_map_at[index] - t2i).abs() < 1e-12, "t2i MAP@{k}: {} vs {t2i}", m.t2i_map_at[index]);
        assert!((m.i2t_map_at[index] - i2t).abs() < 1e-12, "i2t MAP@{k}: {} vs {i2t}", m.i2t_map_at[index]);
    }
    let plain: f64 = (0..images)
        .map(|i| {
            let column: Vec<f32> = (0..captions).map(|c| scores[c * images + i]).collect();
            walked_ap(&column, &caption_image.iter().map(|&ci| ci == i).collect::<Vec<_>>(), usize::MAX)
        })
        .sum::<f64>()
        / images as f64;
    assert!((m.i2t_map - plain).abs() < 1e-12, "i2t MAP: {} vs {plain}", m.i2t_map);
}

#[test]
fn map_at_k_by_hand() {
    // One image with captions at ranks 1 and 3 of 4 (scores 0.9, 0.7 vs a negative at 0.8), and
    // a second image whose one caption ranks second.
    let scores = [
        0.9, 0.0, // caption 0 (image 0)
        0.8, 0.5, // caption 1 (image 1): image 0 scores higher
        0.7, 0.1, // caption 2 (image 0)
        0.1, 0.2, // caption 3 (image 0)
    ];
    let m = retrieval_metrics(&scores, &[0, 1, 0, 0], 2);
    // Image 0's column ranks captions 0 (+), 1 (−), 2 (+), 3 (+): AP@1 = 1, AP@5 = (1 + 2/3 + 3/4) / 3.
    // Image 1's column ranks caption 1 (+) first: AP = 1.
    assert!((m.i2t_map_at[0] - 1.0).abs() < 1e-12);
    assert!((m.i2t_map_at[1] - (1.0 + (1.0 + 2.0 / 3.0 + 0.75) / 3.0) / 2.0).abs() < 1e-12, "{:?}", m.i2t_map_at);
    // t2i: captions 0 and 2 find their image first, captions 1 and 3 second.
    assert!((m.t2i_map_at[0] - 2.0 / 4.0).abs() < 1e-12, "{:?}", m.t2i_map_at);
    assert!((m.t2i_map_at[1] - (1.0 + 0.5 + 1.0 + 0.5) / 4.0).abs() < 1e-12, "{:?}", m.t2i_map_at);
}
