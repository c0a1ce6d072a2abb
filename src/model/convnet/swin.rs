//! Swin Transformer v1 (Liu et al., 2021), LowCLIP's "Tiny Swin": patch embedding, stages of
//! window attention with relative position bias, every second block on windows shifted by half
//! a window, and patch merging between stages; the mean of the final normed map is pooled.
//! Field names follow timm (`layers.N.downsample` at the start of stage N, `blocks.M.attn.qkv`);
//! torchvision's `features.*` load through key maps.
//!
//! Where a feature map is not larger than a window, timm shrinks the window to the map and does
//! not shift; torchvision keeps the window, pads the map with zeros and does not shift. Both are
//! here ([`SwinSmallMaps`]), so that either library's weights compute what they computed there.

use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use otclip_kernels::layer_ops::{gelu, softmax};
use serde::{Deserialize, Serialize};

use crate::model::in_dtype_of;
use crate::model::norm::{LayerNorm, LayerNormConfig};

/// What a stage does when its feature map is not larger than a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SwinSmallMaps {
    /// Shrink the window to the map (timm).
    Shrink,
    /// Keep the window and pad the map with zeros (torchvision).
    Pad,
}

#[derive(Config, Debug, PartialEq)]
pub struct SwinConfig {
    /// The first stage's width (96 for Swin-T); each stage doubles it.
    pub embed_dim: usize,
    /// Blocks per stage (Swin-T: `[2, 2, 6, 2]`).
    pub depths: Vec<usize>,
    /// Attention heads per stage (Swin-T: `[3, 6, 12, 24]`).
    pub num_heads: Vec<usize>,
    #[config(default = 7)]
    pub window_size: usize,
    #[config(default = 4)]
    pub patch_size: usize,
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    #[config(default = 1e-5)]
    pub norm_eps: f64,
    pub small_maps: SwinSmallMaps,
}

impl SwinConfig {
    /// Swin-T.
    pub fn tiny(small_maps: SwinSmallMaps) -> Self {
        Self::new(96, vec![2, 2, 6, 2], vec![3, 6, 12, 24], small_maps)
    }

    pub fn output_width(&self) -> usize {
        self.embed_dim << self.depths.len().saturating_sub(1)
    }

    /// The tower for `image_size` pixel images: timm sizes its windows (and their bias tables)
    /// from the feature maps that size gives.
    pub fn init<B: Backend>(&self, image_size: usize, device: &B::Device) -> SwinNet<B> {
        let norm = |d: usize| LayerNormConfig::new(d).with_epsilon(self.norm_eps).init(device);
        let mut resolution = image_size.div_ceil(self.patch_size);
        let layers = (0..self.depths.len())
            .map(|stage| {
                let dim = self.embed_dim << stage;
                if stage > 0 {
                    resolution = resolution.div_ceil(2);
                }
                let (window, shift) = match self.small_maps {
                    SwinSmallMaps::Shrink if resolution <= self.window_size => (resolution, 0),
                    _ => (self.window_size, self.window_size / 2),
                };
                let heads = self.num_heads[stage];
                SwinStage {
                    downsample: (stage > 0).then(|| PatchMerging {
                        norm: norm(2 * dim),
                        reduction: LinearConfig::new(2 * dim, dim).with_bias(false).init(device),
                    }),
                    blocks: (0..self.depths[stage])
                        .map(|i| SwinBlock {
                            norm1: norm(dim),
                            attn: WindowAttention {
                                qkv: LinearConfig::new(dim, 3 * dim).init(device),
                                proj: LinearConfig::new(dim, dim).init(device),
                                relative_position_bias_table: Initializer::Normal { mean: 0.0, std: 0.02 }.init([(2 * window - 1) * (2 * window - 1), heads], device),
                                heads,
                            },
                            norm2: norm(dim),
                            mlp: SwinMlp {
                                fc1: LinearConfig::new(dim, (dim as f64 * self.mlp_ratio) as usize).init(device),
                                fc2: LinearConfig::new((dim as f64 * self.mlp_ratio) as usize, dim).init(device),
                            },
                            window,
                            shift: if i % 2 == 1 { shift } else { 0 },
                            small_maps: self.small_maps,
                        })
                        .collect(),
                }
            })
            .collect();
        SwinNet {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([3, self.embed_dim], [self.patch_size; 2]).with_stride([self.patch_size; 2]).init(device),
                norm: norm(self.embed_dim),
            },
            layers,
            norm: norm(self.output_width()),
        }
    }
}

#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    pub proj: Conv2d<B>,
    pub norm: LayerNorm<B>,
}

/// 2×2 neighbours concatenated (channels 4·C), normed and reduced to 2·C.
#[derive(Module, Debug)]
pub struct PatchMerging<B: Backend> {
    pub norm: LayerNorm<B>,
    pub reduction: Linear<B>,
}

#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    /// `[(2W − 1)², heads]`: a bias per relative offset within a window.
    pub relative_position_bias_table: Param<Tensor<B, 2>>,
    #[module(skip)]
    heads: usize,
}

#[derive(Module, Debug)]
pub struct SwinMlp<B: Backend> {
    pub fc1: Linear<B>,
    pub fc2: Linear<B>,
}

#[derive(Module, Debug)]
pub struct SwinBlock<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn: WindowAttention<B>,
    pub norm2: LayerNorm<B>,
    pub mlp: SwinMlp<B>,
    #[module(skip)]
    window: usize,
    #[module(skip)]
    shift: usize,
    #[module(skip)]
    small_maps: SwinSmallMaps,
}

#[derive(Module, Debug)]
pub struct SwinStage<B: Backend> {
    pub downsample: Option<PatchMerging<B>>,
    pub blocks: Vec<SwinBlock<B>>,
}

#[derive(Module, Debug)]
pub struct SwinNet<B: Backend> {
    pub patch_embed: PatchEmbed<B>,
    pub layers: Vec<SwinStage<B>>,
    pub norm: LayerNorm<B>,
}

impl<B: Backend> SwinNet<B> {
    /// The mean of the final normed feature map, `[batch, output_width]`.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = self.patch_embed.norm.forward(self.patch_embed.proj.forward(pixels).permute([0, 2, 3, 1]));
        for stage in &self.layers {
            if let Some(merge) = &stage.downsample {
                x = merge.forward(x);
            }
            for block in &stage.blocks {
                x = block.forward(x);
            }
        }
        let [batch, height, width, channels] = x.dims();
        self.norm.forward(x).reshape([batch, height * width, channels]).mean_dim(1).reshape([batch, channels])
    }
}

impl<B: Backend> PatchMerging<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, height, width, channels] = x.dims();
        let x = pad_bottom_right(x, height % 2, width % 2);
        let (h, w) = (height.div_ceil(2), width.div_ceil(2));
        // [B, h, 2 (row offset), w, 2 (column offset), C] → channels ordered (0,0), (1,0), (0,1), (1,1).
        let x = x.reshape([batch, h, 2, w, 2, channels]).permute([0, 1, 3, 4, 2, 5]).reshape([batch, h, w, 4 * channels]);
        self.reduction.forward(self.norm.forward(x))
    }
}

impl<B: Backend> SwinBlock<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = x.clone() + self.window_attention(self.norm1.forward(x));
        x.clone() + self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(self.norm2.forward(x))))
    }

    fn window_attention(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, height, width, _] = x.dims();
        let w = self.window;
        let (pad_h, pad_w) = ((w - height % w) % w, (w - width % w) % w);
        let (padded_h, padded_w) = (height + pad_h, width + pad_w);
        match self.small_maps {
            // torchvision: pad, then shift (no shift along a side the window covers).
            SwinSmallMaps::Pad => {
                let shift = [if w >= padded_h { 0 } else { self.shift }, if w >= padded_w { 0 } else { self.shift }];
                let x = roll(pad_bottom_right(x, pad_h, pad_w), [-(shift[0] as isize), -(shift[1] as isize)]);
                let y = self.attend(x, shift);
                roll(y, [shift[0] as isize, shift[1] as isize]).narrow(1, 0, height).narrow(2, 0, width)
            }
            // timm: shift, then pad; the window and shift were fixed for the stage's map.
            SwinSmallMaps::Shrink => {
                let shift = [self.shift; 2];
                let x = pad_bottom_right(roll(x, [-(shift[0] as isize), -(shift[1] as isize)]), pad_h, pad_w);
                let y = self.attend(x, shift).narrow(1, 0, height).narrow(2, 0, width);
                roll(y, [shift[0] as isize, shift[1] as isize])
            }
        }
    }

    /// Attention within each window of a map `[B, H, W, C]` whose sides are multiples of the
    /// window, masked across the seams of a shift.
    fn attend(&self, x: Tensor<B, 4>, shift: [usize; 2]) -> Tensor<B, 4> {
        let [batch, height, width, channels] = x.dims();
        let (w, heads) = (self.window, self.attn.heads);
        let (rows, cols, tokens, head_dim) = (height / w, width / w, w * w, channels / self.attn.heads);
        let windows = batch * rows * cols;
        let x = x.reshape([batch, rows, w, cols, w, channels]).permute([0, 1, 3, 2, 4, 5]).reshape([windows, tokens, channels]);
        let qkv = self.attn.qkv.forward(x).reshape([windows, tokens, 3, heads, head_dim]).permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([windows, heads, tokens, head_dim]);
        let (q, k, v) = (part(0) * (head_dim as f64).powf(-0.5), part(1), part(2));
        let device = q.device();
        let mut scores = q.matmul(k.swap_dims(2, 3)) + self.relative_position_bias(&device).unsqueeze::<4>();
        if shift[0] > 0 || shift[1] > 0 {
            let mask = shift_mask::<B>(height, width, w, shift, &device).reshape([1, rows * cols, 1, tokens, tokens]);
            scores = (scores.reshape([batch, rows * cols, heads, tokens, tokens]) + mask).reshape([windows, heads, tokens, tokens]);
        }
        let out = softmax(scores).matmul(v).swap_dims(1, 2).reshape([windows, tokens, channels]);
        self.attn.proj.forward(out).reshape([batch, rows, cols, w, w, channels]).permute([0, 1, 3, 2, 4, 5]).reshape([batch, height, width, channels])
    }

    /// `[heads, N, N]`: the table's bias for each pair of positions in a window.
    fn relative_position_bias(&self, device: &B::Device) -> Tensor<B, 3> {
        let w = self.window as i64;
        let tokens = (w * w) as usize;
        let index: Vec<i64> = (0..w * w)
            .flat_map(|i| (0..w * w).map(move |j| (i / w - j / w + w - 1) * (2 * w - 1) + (i % w - j % w + w - 1)))
            .collect();
        let index = Tensor::<B, 1, Int>::from_ints(index.as_slice(), device);
        let heads = self.attn.heads;
        self.attn.relative_position_bias_table.val().select(0, index).reshape([tokens, tokens, heads]).permute([2, 0, 1])
    }
}

/// −100 between positions of a shifted window that come from different regions of the map (the
/// libraries' mask), `[windows, N, N]`.
fn shift_mask<B: Backend>(height: usize, width: usize, w: usize, shift: [usize; 2], device: &B::Device) -> Tensor<B, 3> {
    // Region labels as the libraries assign them: slices (0, −w), (−w, −s), (−s, end) per side,
    // Python's negative indices included (−0 is 0, so an unshifted side is all the last slice).
    let bounds = |size: usize, s: usize| -> [(usize, usize); 3] {
        let at = |i: isize| if i < 0 { (size as isize + i).max(0) as usize } else { (i as usize).min(size) };
        [(0, at(-(w as isize))), (at(-(w as isize)), at(-(s as isize))), (at(-(s as isize)), size)]
    };
    let mut label = vec![0f32; height * width];
    let mut count = 0.0;
    for (h0, h1) in bounds(height, shift[0]) {
        for (w0, w1) in bounds(width, shift[1]) {
            for y in h0..h1 {
                for x in w0..w1 {
                    label[y * width + x] = count;
                }
            }
            count += 1.0;
        }
    }
    let (rows, cols, tokens) = (height / w, width / w, w * w);
    let mut mask = Vec::with_capacity(rows * cols * tokens * tokens);
    for r in 0..rows {
        for c in 0..cols {
            let at = |t: usize| label[(r * w + t / w) * width + c * w + t % w];
            for i in 0..tokens {
                for j in 0..tokens {
                    mask.push(if at(i) == at(j) { 0.0 } else { -100.0 });
                }
            }
        }
    }
    Tensor::<B, 1>::from_floats(mask.as_slice(), device).reshape([rows * cols, tokens, tokens])
}

/// `x` `[B, H, W, C]` with zero rows below and zero columns to the right.
fn pad_bottom_right<B: Backend>(x: Tensor<B, 4>, rows: usize, cols: usize) -> Tensor<B, 4> {
    if rows == 0 && cols == 0 {
        return x;
    }
    let [batch, height, width, channels] = x.dims();
    let device = x.device();
    let zeros = |shape: [usize; 4], like: &Tensor<B, 4>| in_dtype_of(Tensor::<B, 4>::zeros(shape, &device), like);
    let x = if cols > 0 { Tensor::cat(vec![x.clone(), zeros([batch, height, cols, channels], &x)], 2) } else { x };
    if rows > 0 {
        Tensor::cat(vec![x.clone(), zeros([batch, rows, width + cols, channels], &x)], 1)
    } else {
        x
    }
}

/// `torch.roll(x, shifts, dims=(1, 2))` on `[B, H, W, C]`.
fn roll<B: Backend>(x: Tensor<B, 4>, shifts: [isize; 2]) -> Tensor<B, 4> {
    let mut x = x;
    for (dim, shift) in [(1usize, shifts[0]), (2, shifts[1])] {
        let size = x.dims()[dim] as isize;
        let shift = shift.rem_euclid(size) as usize;
        if shift != 0 {
            let size = size as usize;
            x = Tensor::cat(vec![x.clone().narrow(dim, size - shift, shift), x.narrow(dim, 0, size - shift)], dim);
        }
    }
    x
}
