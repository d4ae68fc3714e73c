//! The GGUF reader against `all-types.gguf` (written by gguf-py's GGUFWriter) and the values
//! gguf-py's GGUFReader read from it (`all-types.expected.json`).

mod common;

use common::{data, f16_to_f32};
use gllm_model::gguf::{GgufError, GgufFile, Value, ValueType};

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(data("all-types.expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open_fixture() -> GgufFile {
    GgufFile::open(data("all-types.gguf")).unwrap_or_else(|e| panic!("{e}"))
}

/// gguf-py's type list for a value: ["ARRAY", "INT32"] for an array of i32.
fn py_types(v: &Value) -> Vec<String> {
    match v {
        Value::Array(elem, _) => vec!["ARRAY".into(), elem.name().into()],
        other => vec![other.value_type().name().into()],
    }
}

#[test]
fn all_types_header_matches_gguf_py() {
    let f = open_fixture();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.metadata().len(), 15);
    assert_eq!(f.tensors().len(), 12);
}

#[test]
fn every_metadata_value_matches_gguf_py() {
    let f = open_fixture();
    let want = expected();
    let want = want["metadata"].as_object().unwrap();
    assert_eq!(f.metadata().len(), want.len());
    for (key, value) in f.metadata() {
        let want_value = want.get(key).unwrap_or_else(|| panic!("unexpected key {key}"));
        let want_types: Vec<String> = want_value["type"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(py_types(value), want_types, "{key}");
        assert_eq!(value.to_json(), want_value["value"], "{key}");
    }
}

#[test]
fn typed_accessors_return_the_fixture_values() {
    let f = open_fixture();
    assert_eq!(f.get_str("general.architecture").unwrap(), "fixture");
    assert_eq!(f.get_str("fixture.string").unwrap(), "grüße, κόσμε");
    assert_eq!(f.get_u8("fixture.u8").unwrap(), 200);
    assert_eq!(f.get_i8("fixture.i8").unwrap(), -100);
    assert_eq!(f.get_u16("fixture.u16").unwrap(), 60000);
    assert_eq!(f.get_i16("fixture.i16").unwrap(), -30000);
    assert_eq!(f.get_u32("fixture.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_i32("fixture.i32").unwrap(), -2_000_000_000);
    assert_eq!(f.get_u64("fixture.u64").unwrap(), 9_223_372_036_854_775_813);
    assert_eq!(f.get_i64("fixture.i64").unwrap(), -4_611_686_018_427_387_904);
    assert_eq!(f.get_f32("fixture.f32").unwrap(), 0.15625);
    assert_eq!(f.get_f64("fixture.f64").unwrap(), -1e300);
    assert!(f.get_bool("fixture.bool").unwrap());
    assert_eq!(f.get_int_array("fixture.array_i32").unwrap(), vec![1, -2, 3]);
    assert_eq!(f.get_str_array("fixture.array_str").unwrap(), vec!["a", "", "ccc"]);
    let (elem, items) = f.get_array("fixture.array_i32").unwrap();
    assert_eq!(elem, ValueType::I32);
    assert_eq!(items.len(), 3);
    // lenient unsigned accessor: any integer width, negative refused
    assert_eq!(f.get_uint("fixture.u8").unwrap(), 200);
    assert_eq!(f.get_uint("fixture.u64").unwrap(), 9_223_372_036_854_775_813);
    assert!(f.get_uint("fixture.i8").is_err());
}

#[test]
fn type_errors_name_the_key_and_the_found_type() {
    let f = open_fixture();
    let e = f.get_u32("fixture.string").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, GgufError::WrongType { .. }), "{msg}");
    assert!(
        msg.contains("fixture.string") && msg.contains("STRING") && msg.contains("UINT32"),
        "{msg}"
    );
    let e = f.get_str_array("fixture.array_i32").unwrap_err().to_string();
    assert!(e.contains("fixture.array_i32") && e.contains("ARRAY[INT32]"), "{e}");
    let e = f.get_u32("no.such.key").unwrap_err();
    assert!(matches!(e, GgufError::MissingKey { .. }));
    assert!(e.to_string().contains("no.such.key") && e.to_string().contains("all-types.gguf"));
    let e = f.tensor_bytes("nope").unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn tensor_infos_match_gguf_py() {
    let f = open_fixture();
    let want = expected();
    let want = want["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), want.len());
    for (t, w) in f.tensors().iter().zip(want) {
        assert_eq!(t.name, w["name"].as_str().unwrap());
        assert_eq!(u64::from(t.ty.id()), w["type_id"].as_u64().unwrap(), "{}", t.name);
        let dims: Vec<u64> =
            w["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(t.n_bytes, w["n_bytes"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(f.data_offset() + t.offset, w["data_offset"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(f.tensor(&t.name), Some(t));
    }
}

#[test]
fn block_format_tensors_are_byte_identical_to_the_reference_blocks() {
    let f = open_fixture();
    for fmt in ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"] {
        let blocks = std::fs::read(data(&format!("quants/{fmt}.blocks.bin"))).unwrap();
        let got = f.tensor_bytes(fmt).unwrap();
        assert_eq!(got.len(), blocks.len(), "{fmt}");
        assert!(got == blocks.as_slice(), "{fmt}: bytes differ");
        let info = f.tensor(fmt).unwrap();
        assert_eq!(info.ty.name().to_lowercase(), fmt);
        assert_eq!(
            info.n_elements * info.ty.block_bytes() as u64 / info.ty.block_elems() as u64,
            blocks.len() as u64
        );
    }
}

#[test]
fn f32_and_f16_tensors_match_gguf_py_values() {
    let f = open_fixture();
    let want = expected();
    for t in want["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let Some(values) = t["values"].as_array() else { continue };
        let bytes = f.tensor_bytes(name).unwrap();
        let got: Vec<f32> = match name {
            "f32" => {
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            }
            "f16" => bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            other => panic!("unexpected {other}"),
        };
        assert_eq!(got.len(), values.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(values).enumerate() {
            assert_eq!(*g, w.as_f64().unwrap() as f32, "{name}[{i}]");
        }
    }
    assert_eq!(f.tensor("f32").unwrap().dims, vec![7, 3]);
    assert_eq!(f.tensor("f16").unwrap().dims, vec![33, 2]);
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let e = GgufFile::open("/nonexistent/dir/x.gguf").unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/dir/x.gguf"));
    // a directory and an empty file: clean errors too
    let dir = tempfile::tempdir().unwrap();
    assert!(GgufFile::open(dir.path()).is_err());
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = GgufFile::open(&empty).unwrap_err().to_string();
    assert!(e.contains("empty.gguf") && e.contains("truncated"), "{e}");
}

#[test]
fn info_text_and_json_describe_the_file() {
    let f = open_fixture();
    let text = gllm_model::gguf::info_text(&f);
    assert!(text.contains("version:     3"), "{text}");
    assert!(text.contains("fixture.u32 (UINT32) = 4000000000"), "{text}");
    assert!(text.contains("q4_k") && text.contains("[256, 64]"), "{text}");
    let json = gllm_model::gguf::info_json(&f, None);
    assert_eq!(json["version"], 3);
    assert_eq!(json["metadata"]["fixture.array_str"]["value"], serde_json::json!(["a", "", "ccc"]));
    assert_eq!(json["metadata"]["fixture.array_str"]["type"], "ARRAY[STRING]");
    assert_eq!(json["tensors"].as_array().unwrap().len(), 12);
    assert_eq!(json["tensors"][1]["type"], "q4_1");
    assert_eq!(json["metadata"]["fixture.array_str"]["len"], 3);
    let short = gllm_model::gguf::info_json(&f, Some(2));
    assert_eq!(short["metadata"]["fixture.array_str"]["value"], serde_json::json!(["a", ""]));
    assert_eq!(short["metadata"]["fixture.array_str"]["truncated"], true);
    assert_eq!(short["metadata"]["fixture.array_str"]["len"], 3);
    assert_eq!(short["metadata"]["fixture.array_i32"]["value"], serde_json::json!([1, -2]));
    let long = gllm_model::gguf::info_json(&f, Some(3));
    assert!(long["metadata"]["fixture.array_i32"].get("truncated").is_none());
}
