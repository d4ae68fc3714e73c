//! GGUF writer: round trips through the reader, and re-writing gguf-py's fixture byte for byte.

mod common;

use common::data;
use gllm_kernels::quant::{QuantType, ALL_TYPES};
use gllm_model::gguf::{GgufFile, GgufWriter, Value, ValueType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn rewriting_the_gguf_py_fixture_is_byte_identical() {
    let original = std::fs::read(data("all-types.gguf")).unwrap();
    let f = GgufFile::from_bytes(original.clone(), "all-types.gguf").unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add(k.clone(), v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(t.name.clone(), &t.dims, t.ty, f.tensor_data(t).to_vec()).unwrap();
    }
    let bytes = w.to_bytes().unwrap();
    assert_eq!(bytes.len(), original.len());
    assert!(
        bytes == original,
        "differs at byte {:?}",
        bytes.iter().zip(&original).position(|(a, b)| a != b)
    );
}

fn every_value() -> Vec<(String, Value)> {
    vec![
        ("t.u8".into(), Value::U8(255)),
        ("t.i8".into(), Value::I8(-128)),
        ("t.u16".into(), Value::U16(65535)),
        ("t.i16".into(), Value::I16(-32768)),
        ("t.u32".into(), Value::U32(u32::MAX)),
        ("t.i32".into(), Value::I32(i32::MIN)),
        ("t.u64".into(), Value::U64(u64::MAX)),
        ("t.i64".into(), Value::I64(i64::MIN)),
        ("t.f32".into(), Value::F32(f32::MIN_POSITIVE)),
        ("t.f64".into(), Value::F64(f64::NEG_INFINITY)),
        ("t.bool.false".into(), Value::Bool(false)),
        ("t.bool.true".into(), Value::Bool(true)),
        ("t.string".into(), Value::String("ünïcødé 🦀\n\0".into())),
        ("t.empty".into(), Value::String(String::new())),
        ("t.array.empty".into(), Value::Array(ValueType::F64, vec![])),
        (
            "t.array.f32".into(),
            Value::Array(ValueType::F32, vec![Value::F32(1.5), Value::F32(-0.0)]),
        ),
        (
            "t.array.nested".into(),
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::String, vec![Value::String("x".into())]),
                    Value::Array(ValueType::U8, vec![Value::U8(1), Value::U8(2)]),
                    Value::Array(
                        ValueType::Array,
                        vec![Value::Array(ValueType::Bool, vec![Value::Bool(true)])],
                    ),
                ],
            ),
        ),
    ]
}

#[test]
fn every_value_type_and_tensor_type_round_trips_through_a_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round.gguf");
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    for (k, v) in every_value() {
        w.add(k, v);
    }
    let mut want = Vec::new();
    for (i, ty) in ALL_TYPES.iter().enumerate() {
        let dims = vec![ty.block_elems() as u64 * (1 + i as u64 % 3), 1 + i as u64 % 4];
        let n = ty.bytes_for(dims.iter().product()).unwrap() as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        w.add_tensor(format!("tensor.{}", ty.name()), &dims, *ty, bytes.clone()).unwrap();
        want.push((format!("tensor.{}", ty.name()), dims, *ty, bytes));
    }
    // scalar (0-d) and 1-d tensors too
    w.add_tensor("scalar", &[], QuantType::F32, 1.0f32.to_le_bytes().to_vec()).unwrap();
    w.write(&path).unwrap();
    // no temporary file left behind
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("round.gguf")]);

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.get_u32("general.alignment").unwrap(), 64);
    for (k, v) in every_value() {
        let got = f.get(&k).unwrap_or_else(|| panic!("{k} missing"));
        match (&v, got) {
            (Value::F64(a), Value::F64(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            _ => assert_eq!(got, &v, "{k}"),
        }
    }
    for (name, dims, ty, bytes) in &want {
        let t = f.tensor(name).unwrap();
        assert_eq!(&t.dims, dims);
        assert_eq!(t.ty, *ty);
        assert_eq!(t.offset % 64, 0);
        assert!(f.tensor_data(t) == bytes.as_slice(), "{name}");
    }
    assert_eq!(f.tensor_bytes("scalar").unwrap(), 1.0f32.to_le_bytes());
    assert_eq!(f.data_offset() % 64, 0);
}

#[test]
fn writer_refuses_inconsistent_input() {
    let mut w = GgufWriter::new();
    assert!(w.add_tensor("a", &[31], QuantType::Q4_1, vec![0u8; 20]).is_err());
    assert!(w.add_tensor("a", &[32], QuantType::Q4_1, vec![0u8; 19]).is_err());
    assert!(w.add_tensor("a", &[1, 1, 1, 1, 1], QuantType::F32, vec![0u8; 4]).is_err());
    w.add_tensor("a", &[32], QuantType::Q4_1, vec![0u8; 20]).unwrap();
    let e = w.add_tensor("a", &[32], QuantType::Q4_1, vec![0u8; 20]).unwrap_err();
    assert!(e.to_string().contains("duplicate tensor name `a`"), "{e}");
    assert!(w.set_alignment(48).is_err());
    let mut w = GgufWriter::new();
    w.add("mixed", Value::Array(ValueType::U8, vec![Value::U8(1), Value::I8(1)]));
    let e = w.to_bytes().unwrap_err().to_string();
    assert!(e.contains("mixed") && e.contains("INT8"), "{e}");
    w.add("mixed", Value::Array(ValueType::U8, vec![]));
    w.add("general.alignment", Value::U64(32));
    assert!(w.to_bytes().is_err());
}

#[test]
fn a_failed_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing-dir").join("x.gguf");
    let w = GgufWriter::new();
    let e = w.write(&target).unwrap_err();
    assert!(e.to_string().contains("x.gguf"), "{e}");
    assert!(!target.exists());
    // replacing an existing file keeps the old one until the rename
    let path = dir.path().join("y.gguf");
    std::fs::write(&path, b"old").unwrap();
    let mut w = GgufWriter::new();
    w.add("k", Value::Bool(true));
    w.write(&path).unwrap();
    assert!(GgufFile::open(&path).unwrap().get_bool("k").unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
