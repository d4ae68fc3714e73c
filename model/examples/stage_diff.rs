//! How far two stages' (or KV-cache precisions') logits are apart on llama.cpp's reference
//! lines, teacher-forced: RMS and max over each step's llama.cpp top-5 tokens.
//!
//! Usage: stage_diff MODEL.gguf STAGE_A KV_F16_A(0|1) STAGE_B KV_F16_B(0|1)
//! (run from the workspace root: reads model/tests/data/llama-cpp-reference.jsonl)
use gllm_model::{Model, ModelOptions};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(args.len() == 6, "usage: stage_diff MODEL.gguf STAGE_A 0|1 STAGE_B 0|1");
    let path = &args[1];
    let (sa, fa, sb, fb) = (&args[2], args[3] == "1", &args[4], args[5] == "1");
    let text = std::fs::read_to_string("model/tests/data/llama-cpp-reference.jsonl").unwrap();
    let v: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "greedy")
        .collect();
    let mut a = Model::load(
        path,
        sa,
        &ModelOptions { threads: 2, max_positions: Some(512), kv_f16: fa, ..Default::default() },
    )
    .unwrap();
    let mut b = Model::load(
        path,
        sb,
        &ModelOptions { threads: 2, max_positions: Some(512), kv_f16: fb, ..Default::default() },
    )
    .unwrap();
    for line in &v {
        let p: Vec<u32> = line["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let ids: Vec<u32> =
            line["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let mut seq = p.clone();
        seq.extend_from_slice(&ids[..47]);
        a.reset();
        b.reset();
        let vocab = a.config().vocab_size;
        let la = a.forward(&seq, true).unwrap().to_vec();
        let lb = b.forward(&seq, true).unwrap();
        let mut sq = 0.0f64;
        let mut mx: f32 = 0.0;
        for i in 0..48 {
            let r = (p.len() - 1 + i) * vocab;
            let top = &line["top5"][i];
            for j in 0..5 {
                let id = top[j][0].as_u64().unwrap() as usize;
                let d = la[r + id] - lb[r + id];
                sq += (d * d) as f64;
                mx = mx.max(d.abs());
            }
        }
        println!("{sa}/{fa} vs {sb}/{fb}: rms {:.3} max {:.3}", (sq / 240.0).sqrt(), mx);
    }
}
