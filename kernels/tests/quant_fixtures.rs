//! The block formats against gguf-py (see `tests/data/README.md`): fixture blocks dequantize
//! to gguf-py's f32 bit for bit with every variant, quantizing the fixture sources reproduces
//! the fixture blocks, and the blocks read out of a real GGUF file (`all-types.gguf`, at their
//! unaligned data offsets) dequantize the same.

use std::path::PathBuf;

use gllm_kernels::quant::{self, QuantType};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

const FIXTURES: [(&str, QuantType); 10] = [
    ("q4_0", QuantType::Q4_0),
    ("q4_1", QuantType::Q4_1),
    ("q5_0", QuantType::Q5_0),
    ("q5_1", QuantType::Q5_1),
    ("q8_0", QuantType::Q8_0),
    ("q2_k", QuantType::Q2K),
    ("q3_k", QuantType::Q3K),
    ("q4_k", QuantType::Q4K),
    ("q5_k", QuantType::Q5K),
    ("q6_k", QuantType::Q6K),
];

/// The first element whose bits differ, as "index got want".
fn first_bit_difference(got: &[f32], want: &[f32]) -> Option<String> {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits())
        .map(|i| format!("value {i} (block {}): got {:e} want {:e}", i / 32, got[i], want[i]))
}

#[test]
fn manifest_matches_our_block_sizes_and_files() {
    let manifest: serde_json::Value = serde_json::from_slice(&data("manifest.json")).unwrap();
    for (name, t) in FIXTURES {
        let f = &manifest["formats"][name];
        assert_eq!(f["block_elems"].as_u64(), Some(t.block_elems() as u64), "{name}");
        assert_eq!(f["block_bytes"].as_u64(), Some(t.block_bytes() as u64), "{name}");
        let n_blocks = f["n_blocks"].as_u64().unwrap() as usize;
        assert_eq!(data(&format!("{name}.blocks.bin")).len(), n_blocks * t.block_bytes(), "{name}");
        assert_eq!(
            data(&format!("{name}.f32.bin")).len(),
            4 * n_blocks * t.block_elems(),
            "{name}"
        );
    }
}

#[test]
fn fixture_blocks_dequantize_bit_exactly_with_every_variant() {
    for (name, t) in FIXTURES {
        let blocks = data(&format!("{name}.blocks.bin"));
        let want = f32s(&data(&format!("{name}.f32.bin")));
        for variant in ["naive", "simd", "avx2"] {
            if quant::dequant_fn(t, variant).is_none() {
                continue;
            }
            let mut got = vec![f32::NAN; want.len()];
            quant::dequantize_row_variant(t, variant, &blocks, &mut got);
            if let Some(d) = first_bit_difference(&got, &want) {
                panic!("{name}/{variant}: {d}");
            }
        }
        // The dispatching entry point, reading the blocks at an odd (unaligned) address.
        let mut shifted = vec![0u8; blocks.len() + 1];
        shifted[1..].copy_from_slice(&blocks);
        let mut got = vec![f32::NAN; want.len()];
        quant::dequantize_row(t, &shifted[1..], &mut got);
        assert_eq!(first_bit_difference(&got, &want), None, "{name} via dequantize_row, unaligned");
    }
}

#[test]
fn quantizing_the_fixture_sources_reproduces_the_fixture_blocks() {
    for (name, t) in FIXTURES.iter().copied().filter(|(_, t)| t.block_elems() == 32) {
        let src = f32s(&data(&format!("{name}.src.f32.bin")));
        let want = data(&format!("{name}.blocks.bin"));
        let mut got = vec![0u8; want.len()];
        quant::quantize_row(t, &src, &mut got).unwrap();
        let bb = t.block_bytes();
        let differing: Vec<usize> = (0..want.len() / bb)
            .filter(|&b| got[b * bb..(b + 1) * bb] != want[b * bb..(b + 1) * bb])
            .collect();
        assert!(
            differing.is_empty(),
            "{name}: blocks {differing:?} differ from gguf-py's (first: got {:?} want {:?})",
            differing.first().map(|&b| &got[b * bb..(b + 1) * bb]),
            differing.first().map(|&b| &want[b * bb..(b + 1) * bb]),
        );
    }
}

/// A GGUF v3 reader just big enough to find tensors: returns (name, type id, dims, absolute
/// data offset). Every length is bounds-checked by slice indexing.
fn gguf_tensors(file: &[u8]) -> Vec<(String, u32, Vec<u64>, usize)> {
    struct Cursor<'a> {
        b: &'a [u8],
        at: usize,
    }
    impl Cursor<'_> {
        fn take(&mut self, n: usize) -> &[u8] {
            let s = &self.b[self.at..self.at + n];
            self.at += n;
            s
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.take(4).try_into().unwrap())
        }
        fn u64(&mut self) -> u64 {
            u64::from_le_bytes(self.take(8).try_into().unwrap())
        }
        fn string(&mut self) -> String {
            let n = self.u64() as usize;
            String::from_utf8(self.take(n).to_vec()).unwrap()
        }
        fn skip_value(&mut self, ty: u32) -> Option<u64> {
            match ty {
                0 | 1 | 7 => self.take(1)[0] as u64,
                2 | 3 => {
                    self.take(2);
                    0
                }
                4..=6 => self.u32() as u64,
                10..=12 => self.u64(),
                8 => {
                    self.string();
                    0
                }
                9 => {
                    let (elem, n) = (self.u32(), self.u64());
                    for _ in 0..n {
                        self.skip_value(elem);
                    }
                    0
                }
                other => panic!("unknown GGUF value type {other}"),
            };
            None
        }
    }
    let mut c = Cursor { b: file, at: 0 };
    assert_eq!(c.take(4), b"GGUF");
    assert_eq!(c.u32(), 3, "GGUF version");
    let (n_tensors, n_kv) = (c.u64(), c.u64());
    let mut alignment = 32usize;
    for _ in 0..n_kv {
        let key = c.string();
        let ty = c.u32();
        if key == "general.alignment" && ty == 4 {
            alignment = c.u32() as usize;
        } else {
            c.skip_value(ty);
        }
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string();
        let n_dims = c.u32();
        let dims: Vec<u64> = (0..n_dims).map(|_| c.u64()).collect();
        let (ty, offset) = (c.u32(), c.u64() as usize);
        infos.push((name, ty, dims, offset));
    }
    let data_start = c.at.div_ceil(alignment) * alignment;
    infos.into_iter().map(|(n, t, d, o)| (n, t, d, data_start + o)).collect()
}

#[test]
fn blocks_read_out_of_a_gguf_file_dequantize_like_gguf_py() {
    let file = data("all-types.gguf");
    let tensors = gguf_tensors(&file);
    let mut checked = 0;
    for (name, want_type) in FIXTURES {
        let (_, id, dims, offset) = tensors
            .iter()
            .find(|(n, ..)| n == name)
            .unwrap_or_else(|| panic!("all-types.gguf has no tensor `{name}`"));
        let t = QuantType::from_id(*id).unwrap_or_else(|| panic!("{name}: unknown type id {id}"));
        assert_eq!(t, want_type, "{name}: GGUF type id {id}");
        let elems: u64 = dims.iter().product();
        let bytes = t.bytes_for(elems).unwrap() as usize;
        let src = &file[*offset..*offset + bytes];
        assert_eq!(src, &data(&format!("{name}.blocks.bin"))[..], "{name}: tensor bytes");
        // One row at a time, as a model reads a matrix: rows of dims[0] values.
        let row = dims[0] as usize;
        let row_bytes = t.row_bytes(row).unwrap();
        let want = f32s(&data(&format!("{name}.f32.bin")));
        let mut got = vec![f32::NAN; elems as usize];
        for (r, (s, y)) in src.chunks_exact(row_bytes).zip(got.chunks_exact_mut(row)).enumerate() {
            quant::try_dequantize_row(t, s, y).unwrap_or_else(|e| panic!("{name} row {r}: {e}"));
        }
        assert_eq!(first_bit_difference(&got, &want), None, "{name} from the GGUF file");
        checked += 1;
    }
    // The F16 tensor [2, 33]: 66 values, each exactly representable after conversion.
    let (_, id, dims, offset) = tensors.iter().find(|(n, ..)| n == "f16").expect("an f16 tensor");
    assert_eq!(QuantType::from_id(*id), Some(QuantType::F16));
    let n = dims.iter().product::<u64>() as usize;
    let src = &file[*offset..*offset + 2 * n];
    let mut fast = vec![f32::NAN; n];
    let mut naive = vec![f32::NAN; n];
    quant::dequantize_row(QuantType::F16, src, &mut fast);
    quant::dequantize_row_variant(QuantType::F16, "naive", src, &mut naive);
    assert_eq!(first_bit_difference(&fast, &naive), None);
    assert!(naive.iter().all(|v| v.is_finite()));
    assert_eq!(checked, FIXTURES.len());
}
