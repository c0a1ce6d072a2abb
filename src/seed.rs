//! Every random stream of a run, derived from the config's one `seed` here and nowhere else.
//!
//! A stream's seed is the parent seed XOR a distinct odd constant times an index, so that
//! neighbouring epochs, batches, samples and images draw independent-looking sequences.

/// The seed's streams for one split of the built-in data (its scenes and captions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitStream {
    Train,
    Val,
    Test,
}

impl SplitStream {
    const fn tag(self) -> u64 {
        match self {
            SplitStream::Train => 0x7472_6169_6E00_0001,
            SplitStream::Val => 0x7661_6C00_0000_0002,
            SplitStream::Test => 0x7465_7374_0000_0003,
        }
    }
}

/// The run's seed, from which each stream below is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSeed(pub u64);

impl RunSeed {
    /// The order of epoch `epoch`'s pairs (which caption each image gets, and the batches).
    pub const fn epoch_pairs(self, epoch: usize) -> u64 {
        self.0 ^ (epoch as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D)
    }

    /// Epoch `epoch`'s augmentation; [`batch_augment`] and [`sample_augment`] split it further.
    pub const fn epoch_augment(self, epoch: usize) -> u64 {
        self.0 ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)
    }

    /// Chunk `chunk` of optimiser step `step`: the towers' dropout, which GradCache's second pass
    /// replays.
    pub const fn dropout(self, step: usize, chunk: usize) -> u64 {
        self.0 ^ (step as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (chunk as u64 + 1).wrapping_mul(0x94D0_49BB_1331_11EB)
    }

    /// One split of the built-in data: its scene list.
    pub const fn split(self, split: SplitStream) -> u64 {
        self.0 ^ split.tag()
    }

    /// Image `index` of one split of the built-in data: its objects and captions.
    pub const fn synthetic_image(self, split: SplitStream, index: usize) -> u64 {
        self.0 ^ split.tag() ^ (index as u64).wrapping_mul(0x9E37_79B9)
    }
}

/// Batch `index` of an epoch's augmentation stream.
pub const fn batch_augment(epoch_seed: u64, index: usize) -> u64 {
    epoch_seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Sample `k` of a batch's augmentation stream.
pub const fn sample_augment(batch_seed: u64, k: usize) -> u64 {
    batch_seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
