//! How close a stage comes to llama.cpp on its reference lines, stepping as llama.cpp did:
//! the prompt as one prefill batch, then one decode step per token, teacher-forced on
//! llama.cpp's own tokens. Per line: argmax agreement, the difference of our logit from
//! llama.cpp's at each step's top-5 tokens (RMS and max), the same at the top-1 token, and how
//! many tokens a free-running greedy continuation shares with llama.cpp's.
//!
//! Usage: fidelity MODEL.gguf [STAGE [THREADS]]
//! (run from the workspace root: reads model/tests/data/llama-cpp-reference.jsonl)
use gllm_model::sampler::argmax;
use gllm_model::{Model, ModelOptions};

struct Line {
    prompt: Vec<u32>,
    ids: Vec<u32>,
    /// Per step, llama.cpp's top five `(token, logit)`.
    top5: Vec<Vec<(usize, f32)>>,
}

fn lines() -> Vec<Line> {
    let text = std::fs::read_to_string("model/tests/data/llama-cpp-reference.jsonl")
        .expect("run from the workspace root");
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
    };
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "greedy")
        .map(|v| Line {
            prompt: ids(&v["prompt_ids"]),
            ids: ids(&v["ids"]),
            top5: v["top5"]
                .as_array()
                .unwrap()
                .iter()
                .map(|step| {
                    step.as_array()
                        .unwrap()
                        .iter()
                        .map(|e| (e[0].as_u64().unwrap() as usize, e[1].as_f64().unwrap() as f32))
                        .collect()
                })
                .collect(),
        })
        .collect()
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: fidelity MODEL.gguf [STAGE [THREADS]]");
    let stage = std::env::args().nth(2).unwrap_or_else(|| "quantized".into());
    let threads: usize = std::env::args().nth(3).map_or(1, |t| t.parse().expect("threads"));
    let options = ModelOptions { threads, max_positions: Some(256), ..Default::default() };
    let mut model = Model::load(&path, &stage, &options).unwrap();
    let (mut all_sq, mut all_n, mut all_max, mut all_match, mut all_steps) = (0.0, 0, 0.0f32, 0, 0);
    for (n, line) in lines().iter().enumerate() {
        model.reset();
        let steps = line.ids.len();
        let (mut sq, mut top_sq, mut max, mut top_max, mut matches) =
            (0.0f64, 0.0f64, 0.0f32, 0.0f32, 0);
        let mut first_max = 0.0f32;
        let mut logits = model.prefill(&line.prompt).unwrap().to_vec();
        for i in 0..steps {
            if argmax(&logits) == Some(line.ids[i]) {
                matches += 1;
            }
            for (k, &(id, want)) in line.top5[i].iter().enumerate() {
                let d = logits[id] - want;
                sq += (d * d) as f64;
                max = max.max(d.abs());
                if i == 0 {
                    first_max = first_max.max(d.abs());
                }
                if k == 0 {
                    top_sq += (d * d) as f64;
                    top_max = top_max.max(d.abs());
                }
            }
            if i + 1 < steps {
                logits = model.decode(line.ids[i]).unwrap().to_vec();
            }
        }
        model.reset();
        let mut next = argmax(model.prefill(&line.prompt).unwrap()).unwrap();
        let mut same = 0;
        while same < steps && next == line.ids[same] {
            same += 1;
            next = argmax(model.decode(next).unwrap()).unwrap();
        }
        println!(
            "line {n}: argmax {matches}/{steps}; top-5 logits rms {:.4} max {:.4}; top-1 rms {:.4} max {:.4}; free-running {same}/{steps}; step 0 max {first_max:.6}",
            (sq / (5 * steps) as f64).sqrt(),
            max,
            (top_sq / steps as f64).sqrt(),
            top_max
        );
        all_sq += sq;
        all_n += 5 * steps;
        all_max = all_max.max(max);
        all_match += matches;
        all_steps += steps;
    }
    println!(
        "{stage}: argmax {all_match}/{all_steps}; top-5 logits rms {:.4} max {:.4}",
        (all_sq / all_n as f64).sqrt(),
        all_max
    );
}
