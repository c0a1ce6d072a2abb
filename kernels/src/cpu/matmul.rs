//! Linear layers and multi-head attention for `NdArray` in f32, with their backward passes, as
//! strided matrix products. burn-ndarray's matmul first copies a transposed operand element by
//! element, which a linear layer's weight gradient (xᵀ·g) and attention's Q·Kᵀ and their
//! backward passes all need; the `gemm` crate reads any strides, so nothing is copied here.

use rayon::prelude::*;

use super::layer_ops::{softmax_backward_rows, softmax_rows};
use super::real::Real;

/// A matrix inside a slice: element (r, c) at `offset + r·row_stride + c·col_stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl View {
    /// `rows × cols` with rows `row_stride` apart and contiguous columns.
    pub fn rows(offset: usize, rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { offset, rows, cols, row_stride, col_stride: 1 }
    }

    /// The transposed matrix, same memory.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Panics unless every element lies inside a slice of `len`.
    fn check(&self, len: usize, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < len, "{what}: a {}×{} view ends at {last}, past the slice of {len}", self.rows, self.cols);
        }
    }
}

/// Whether a product runs on the rayon pool or on the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    Pool,
    Caller,
}

/// c ← alpha·a·b + beta·c (the `gemm` crate, after checking every view's bounds).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Real>(alpha: T, a: &[T], av: View, b: &[T], bv: View, beta: T, c: &mut [T], cv: View, threads: Threads) {
    assert!(av.cols == bv.rows && av.rows == cv.rows && bv.cols == cv.cols, "gemm: {av:?} · {bv:?} → {cv:?}");
    av.check(a.len(), "gemm a");
    bv.check(b.len(), "gemm b");
    cv.check(c.len(), "gemm c");
    if cv.rows == 0 || cv.cols == 0 {
        return;
    }
    let parallelism = match threads {
        Threads::Pool => gemm::Parallelism::Rayon(rayon::current_num_threads()),
        Threads::Caller => gemm::Parallelism::None,
    };
    // SAFETY: the views were checked to lie inside their slices, and `c` is borrowed mutably.
    // `gemm` computes dst ← α·dst + β·lhs·rhs, reading dst only when asked to.
    unsafe {
        gemm::gemm(
            cv.rows,
            cv.cols,
            av.cols,
            c.as_mut_ptr().add(cv.offset),
            cv.col_stride as isize,
            cv.row_stride as isize,
            beta != T::ZERO,
            a.as_ptr().add(av.offset),
            av.col_stride as isize,
            av.row_stride as isize,
            b.as_ptr().add(bv.offset),
            bv.col_stride as isize,
            bv.row_stride as isize,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// y = x·W (+ b): x `[rows, d_in]`, W `[d_in, d_out]` (burn's layout), b `[d_out]`.
pub(crate) fn linear(x: &[f32], weight: &[f32], bias: Option<&[f32]>, d_in: usize, d_out: usize) -> Vec<f32> {
    let rows = x.len() / d_in.max(1);
    let mut y = match bias {
        Some(bias) => bias.iter().copied().cycle().take(rows * d_out).collect(),
        None => vec![0.0; rows * d_out],
    };
    gemm(1.0, x, View::rows(0, rows, d_in, d_in), weight, View::rows(0, d_in, d_out, d_out), 1.0, &mut y, View::rows(0, rows, d_out, d_out), Threads::Pool);
    y
}

/// The gradients of [`linear`] for x, W and b: g·Wᵀ, xᵀ·g and the column sums of g.
pub(crate) fn linear_backward(x: &[f32], weight: &[f32], grad: &[f32], d_in: usize, d_out: usize) -> [Vec<f32>; 3] {
    let rows = x.len() / d_in.max(1);
    let (x_view, w_view, g_view) = (View::rows(0, rows, d_in, d_in), View::rows(0, d_in, d_out, d_out), View::rows(0, rows, d_out, d_out));
    let mut dx = vec![0.0; rows * d_in];
    gemm(1.0, grad, g_view, weight, w_view.t(), 0.0, &mut dx, x_view, Threads::Pool);
    let mut dw = vec![0.0; d_in * d_out];
    gemm(1.0, x, x_view.t(), grad, g_view, 0.0, &mut dw, w_view, Threads::Pool);
    let mut db = vec![0.0; d_out];
    for row in grad.chunks_exact(d_out.max(1)) {
        db.iter_mut().zip(row).for_each(|(sum, g)| *sum += g);
    }
    [dx, dw, db]
}

/// The shape of one attention call: `batch` sequences of `tokens`, `heads` heads of `head_dim`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    pub batch: usize,
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Heads {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Head `h` of one sequence's `[tokens, width]` block.
    fn head(&self, h: usize) -> View {
        View::rows(h * self.head_dim, self.tokens, self.head_dim, self.width())
    }

    fn square(&self, h: usize) -> View {
        View::rows(h * self.tokens * self.tokens, self.tokens, self.tokens, self.tokens)
    }
}

/// softmax(Q·Kᵀ/√d + mask) · V for every head. q, k, v are `[batch, tokens, heads·head_dim]`;
/// `mask_bias` (`[batch, tokens]`) is added to every query's score for each key. Returns the output
/// (`[batch, tokens, heads·head_dim]`) and the weights (`[batch, heads, tokens, tokens]`).
pub(crate) fn attention(q: &[f32], k: &[f32], v: &[f32], mask_bias: Option<&[f32]>, shape: Heads) -> (Vec<f32>, Vec<f32>) {
    let Heads { tokens, heads, .. } = shape;
    let (block, square) = (tokens * shape.width(), heads * tokens * tokens);
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let mut out = vec![0.0; q.len()];
    let mut weights = vec![0.0; shape.batch * square];
    out.par_chunks_mut(block.max(1)).zip(weights.par_chunks_mut(square.max(1))).enumerate().for_each(|(b, (out, weights))| {
        let (q, k, v) = (&q[b * block..(b + 1) * block], &k[b * block..(b + 1) * block], &v[b * block..(b + 1) * block]);
        let mut scores = vec![0.0; tokens * tokens];
        for h in 0..heads {
            let s_view = View::rows(0, tokens, tokens, tokens);
            gemm(scale, q, shape.head(h), k, shape.head(h).t(), 0.0, &mut scores, s_view, Threads::Caller);
            if let Some(bias) = mask_bias {
                let bias = &bias[b * tokens..(b + 1) * tokens];
                scores.chunks_exact_mut(tokens).for_each(|row| row.iter_mut().zip(bias).for_each(|(s, m)| *s += m));
            }
            let probabilities = &mut weights[h * tokens * tokens..(h + 1) * tokens * tokens];
            softmax_rows(&scores, tokens, probabilities);
            gemm(1.0, probabilities, s_view, v, shape.head(h), 0.0, out, shape.head(h), Threads::Caller);
        }
    });
    (out, weights)
}

/// The gradients of [`attention`] for q, k and v, from its saved weights.
pub(crate) fn attention_backward(q: &[f32], k: &[f32], v: &[f32], weights: &[f32], grad: &[f32], shape: Heads) -> [Vec<f32>; 3] {
    let Heads { tokens, heads, .. } = shape;
    let (block, square) = (tokens * shape.width(), heads * tokens * tokens);
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    let chunks = dq.par_chunks_mut(block.max(1)).zip(dk.par_chunks_mut(block.max(1))).zip(dv.par_chunks_mut(block.max(1)));
    chunks.enumerate().for_each(|(b, ((dq, dk), dv))| {
        let range = b * block..(b + 1) * block;
        let (q, k, v, grad) = (&q[range.clone()], &k[range.clone()], &v[range.clone()], &grad[range]);
        let weights = &weights[b * square..(b + 1) * square];
        let (mut d_weights, mut d_scores) = (vec![0.0; tokens * tokens], vec![0.0; tokens * tokens]);
        let local = View::rows(0, tokens, tokens, tokens);
        for h in 0..heads {
            let (head, p) = (shape.head(h), shape.square(h));
            // dP = dO·Vᵀ, dV = Pᵀ·dO.
            gemm(1.0, grad, head, v, head.t(), 0.0, &mut d_weights, local, Threads::Caller);
            gemm(1.0, weights, p.t(), grad, head, 0.0, dv, head, Threads::Caller);
            // dS = P ∘ (dP − Σ dP∘P), then dQ = dS·K/√d and dK = dSᵀ·Q/√d.
            softmax_backward_rows(&weights[p.offset..p.offset + tokens * tokens], &d_weights, tokens, &mut d_scores);
            gemm(scale, &d_scores, local, k, head, 0.0, dq, head, Threads::Caller);
            gemm(scale, &d_scores, local.t(), q, head, 0.0, dk, head, Threads::Caller);
        }
    });
    [dq, dk, dv]
}
