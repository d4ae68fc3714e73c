//! GGML tensor types as they appear in GGUF: type id, elements per block, bytes per block.

use std::fmt;

/// A GGML tensor type this project can size (and, for the block formats, compute with).
///
/// The discriminants are the GGUF/ggml type ids (`ggml_type`); ids 4 and 5 (the removed
/// Q4_2/Q4_3) and the i-quants are not supported and are reported as unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum QuantType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    Q4K = 12,
    Q5K = 13,
    Q6K = 14,
    Q8K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
}

/// Every supported type, in id order.
pub const ALL_TYPES: [QuantType; 20] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q8_1,
    QuantType::Q2K,
    QuantType::Q3K,
    QuantType::Q4K,
    QuantType::Q5K,
    QuantType::Q6K,
    QuantType::Q8K,
    QuantType::I8,
    QuantType::I16,
    QuantType::I32,
    QuantType::I64,
    QuantType::F64,
    QuantType::BF16,
];

impl QuantType {
    /// The type with GGUF id `id`, or `None` for ids this project does not support.
    pub fn from_id(id: u32) -> Option<Self> {
        ALL_TYPES.iter().copied().find(|t| t.id() == id)
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// ggml's lower-case name (`q4_1`, `q3_K`, `f32`).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "f32",
            QuantType::F16 => "f16",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q5_0 => "q5_0",
            QuantType::Q5_1 => "q5_1",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q8_1 => "q8_1",
            QuantType::Q2K => "q2_K",
            QuantType::Q3K => "q3_K",
            QuantType::Q4K => "q4_K",
            QuantType::Q5K => "q5_K",
            QuantType::Q6K => "q6_K",
            QuantType::Q8K => "q8_K",
            QuantType::I8 => "i8",
            QuantType::I16 => "i16",
            QuantType::I32 => "i32",
            QuantType::I64 => "i64",
            QuantType::F64 => "f64",
            QuantType::BF16 => "bf16",
        }
    }

    /// Elements per block (1 for plain scalar types).
    pub fn block_elems(self) -> usize {
        match self {
            QuantType::Q4_0
            | QuantType::Q4_1
            | QuantType::Q5_0
            | QuantType::Q5_1
            | QuantType::Q8_0
            | QuantType::Q8_1 => 32,
            QuantType::Q2K
            | QuantType::Q3K
            | QuantType::Q4K
            | QuantType::Q5K
            | QuantType::Q6K
            | QuantType::Q8K => 256,
            _ => 1,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantType::F32 | QuantType::I32 => 4,
            QuantType::F16 | QuantType::BF16 | QuantType::I16 => 2,
            QuantType::I8 => 1,
            QuantType::I64 | QuantType::F64 => 8,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q5_0 => 22,
            QuantType::Q5_1 => 24,
            QuantType::Q8_0 => 34,
            QuantType::Q8_1 => 36,
            QuantType::Q2K => 84,
            QuantType::Q3K => 110,
            QuantType::Q4K => 144,
            QuantType::Q5K => 176,
            QuantType::Q6K => 210,
            QuantType::Q8K => 292,
        }
    }

    /// Bytes of `elems` values, or `None` if `elems` is not a whole number of blocks (or the
    /// size overflows).
    pub fn bytes_for(self, elems: u64) -> Option<u64> {
        let per = self.block_elems() as u64;
        if !elems.is_multiple_of(per) {
            return None;
        }
        (elems / per).checked_mul(self.block_bytes() as u64)
    }

    /// A block format (as opposed to a plain scalar type).
    pub fn is_block(self) -> bool {
        self.block_elems() > 1
    }

    /// The activation format a weight format's quantized dot product pairs with (ggml's
    /// `vec_dot_type`): Q4_0, Q5_0, Q8_0 → Q8_0; Q4_1, Q5_1 → Q8_1; K-quants → Q8_K. `None` for
    /// types without a quantized dot product here (f32, f16, bf16, integers, Q8_1, Q8_K).
    pub fn activation_type(self) -> Option<QuantType> {
        match self {
            QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => Some(QuantType::Q8_0),
            QuantType::Q4_1 | QuantType::Q5_1 => Some(QuantType::Q8_1),
            QuantType::Q2K | QuantType::Q3K | QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => {
                Some(QuantType::Q8K)
            }
            _ => None,
        }
    }

    /// Bytes of one row of `elems` values, or an error naming the type and the lengths when
    /// `elems` is not a whole number of blocks.
    pub fn row_bytes(self, elems: usize) -> Result<usize, super::QuantError> {
        let per = self.block_elems();
        if !elems.is_multiple_of(per) {
            return Err(super::QuantError::NotWholeBlocks { ty: self, elems, block_elems: per });
        }
        Ok(elems / per * self.block_bytes())
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_are_none() {
        for t in ALL_TYPES {
            assert_eq!(QuantType::from_id(t.id()), Some(t));
        }
        for id in [4, 5, 16, 23, 31, 39, 1000] {
            assert_eq!(QuantType::from_id(id), None, "id {id}");
        }
    }

    #[test]
    fn sizes_match_ggml() {
        assert_eq!(QuantType::Q4_1.bytes_for(576), Some(18 * 20));
        assert_eq!(QuantType::Q3K.bytes_for(256), Some(110));
        assert_eq!(QuantType::Q4_1.bytes_for(33), None);
        assert_eq!(QuantType::F16.bytes_for(3), Some(6));
    }
}
