//! The hidden `gllm-bench worker` subcommand and its client.
//!
//! The gate measures two builds of gllm-bench in the same job. Each build runs as a
//! long-lived child process (`gllm-bench worker`) that speaks JSON lines on stdin/stdout:
//! one request per line, one response per line. The gate process decides the order (ABBA
//! rounds) and asks one worker at a time to run a batch of iterations, so both builds are
//! measured interleaved with warm caches and never at the same time.
//!
//! Requests (`op` field) and responses:
//! - `{"op":"hello"}` → `{"ok":true,"protocol":1,"version":…,"fingerprint":{…},"git":{…}}`
//! - `{"op":"list"}` → `{"ok":true,"cases":["add(variant=simd,n=576,cache=hot)",…]}`
//! - `{"op":"prepare","case":ID,"warmup_ms":30}` → `{"ok":true,"ns_per_iter":…,"verification":"passed"}`
//! - `{"op":"run","case":ID,"iters":N}` → `{"ok":true,"ns":…}` (elapsed wall time of the batch)
//! - `{"op":"release","case":ID}` → `{"ok":true}`
//! - any failure → `{"ok":false,"error":"…"}`; end of input ends the worker.
//!
//! `gllm-bench worker --count ID --iters N` instead runs N iterations of one case inside
//! [`gllm_bench_measured_region`], for instruction counting under callgrind.
//!
//! The catalog always contains a *calibration* case: a dependent integer chain whose
//! length is multiplied by `GLLM_CALIBRATION_WORK` (default 1). It is not a production
//! kernel: it is the gate's control case and the only way the gate's own tests inject a
//! slowdown of known size.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::baseline::{self, GitInfo, VerificationStatus};
use crate::cases::{self, CacheSelect, CaseSelect, CaseSpec};
use crate::error::HarnessError;
use crate::machine::{Caches, Fingerprint};
use crate::measure::{warm_up, Routine};

/// Version of the worker protocol; both builds of a gate must speak the same one.
pub const PROTOCOL: u32 = 1;

/// Steps of the calibration chain at work factor 1 (about 20-40 µs per iteration here).
pub const CALIBRATION_STEPS: u64 = 20_000;
/// The calibration case's id.
pub const CALIBRATION_ID: &str = "calibration(kernel=lcg-chain,steps=20000)";
/// Environment variable scaling the calibration case's work (tests of the gate only).
pub const CALIBRATION_ENV: &str = "GLLM_CALIBRATION_WORK";

/// Reads the calibration work factor from the environment: a positive number, default 1.
pub fn calibration_factor() -> Result<f64, HarnessError> {
    match std::env::var(CALIBRATION_ENV) {
        Err(_) => Ok(1.0),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(f),
            _ => Err(HarnessError::Usage(format!(
                "{CALIBRATION_ENV}={text:?}: expected a positive number (work factor, e.g. 1.1)"
            ))),
        },
    }
}

/// The calibration chain: `steps` dependent multiply-add-xorshift steps.
#[inline(never)]
pub fn calibration_chain(seed: u64, steps: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..steps {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x ^= x >> 29;
    }
    x
}

/// A routine running the calibration chain with `steps` steps per iteration.
pub fn calibration_routine(steps: u64) -> impl Routine {
    move |iters: u64| {
        for i in 0..iters {
            black_box(calibration_chain(black_box(i), black_box(steps)));
        }
    }
}

/// Which cases a worker offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSpec {
    /// The stage whose variants are measured (default: the last built-in stage).
    pub stage: Option<String>,
    pub cases: CaseSelect,
    pub cache: CacheSelect,
}

enum Entry {
    Calibration,
    Op(CaseSpec, &'static gllm_kernels::registry::Variant),
}

/// The cases of this build: every op case of the stage's variants, and the calibration case.
fn catalog(spec: &CatalogSpec) -> Result<Vec<(String, Entry)>, HarnessError> {
    let stages = gllm_kernels::stage::builtin();
    let name = match &spec.stage {
        Some(s) => s.clone(),
        None => stages
            .last()
            .map(|s| s.name.clone())
            .ok_or_else(|| HarnessError::Harness("this build has no built-in stages".into()))?,
    };
    let resolved = gllm_kernels::stage::resolve(&stages, &name)
        .map_err(|e| HarnessError::Usage(format!("--stage {name}: {e}")))?;
    let caches = Caches::detect();
    let mut out = vec![(CALIBRATION_ID.to_string(), Entry::Calibration)];
    for case in plan_cases(spec, caches.l2) {
        let variant = resolved.variant(case.op_name());
        if !(variant.available)().is_available() {
            continue;
        }
        out.push((case.id(variant.name), Entry::Op(case, variant)));
    }
    Ok(out)
}

/// The op cases of a catalog. Hot-only catalogs are built without preparing any case (a
/// worker starts in milliseconds); other cache selections need each case's working set,
/// so they go through [`cases::plan`].
fn plan_cases(spec: &CatalogSpec, l2: usize) -> Vec<CaseSpec> {
    use gllm_kernels::registry::{self, CaseSet};
    if spec.cache != CacheSelect::Hot {
        return cases::plan(spec.cases, spec.cache, l2);
    }
    let sets: &[CaseSet] = match spec.cases {
        CaseSelect::Model => &[CaseSet::Model],
        CaseSelect::Sweep => &[CaseSet::Sweep],
        CaseSelect::All => &[CaseSet::Model, CaseSet::Sweep],
    };
    let mut out = Vec::new();
    for op in registry::ops() {
        for &set in sets {
            for shape in (op.shapes)(set) {
                out.push(CaseSpec::Op(cases::OpCase {
                    op,
                    shape,
                    case_set: set,
                    cache: cases::Cache::Hot,
                    // Only cold rotations use the working set.
                    working_set: 0,
                }));
            }
        }
    }
    out
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Hello,
    List,
    Prepare { case: String, warmup_ms: f64 },
    Run { case: String, iters: u64 },
    Release { case: String },
}

/// What `hello` answers.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Hello {
    pub protocol: u32,
    pub version: String,
    pub fingerprint: Fingerprint,
    pub git: GitInfo,
    pub rustc: String,
    pub profile: String,
    pub calibration_factor: f64,
}

fn ok(mut v: serde_json::Value) -> serde_json::Value {
    v["ok"] = serde_json::Value::Bool(true);
    v
}

/// Serves requests from `input` until end of input.
pub fn serve(
    spec: &CatalogSpec,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<(), HarnessError> {
    let factor = calibration_factor()?;
    let catalog = catalog(spec)?;
    let l3 = Caches::detect().l3;
    let mut prepared: BTreeMap<String, Box<dyn Routine>> = BTreeMap::new();
    let stdout_err = |e: std::io::Error| HarnessError::io("<stdout>", "write", e);
    for line in input.lines() {
        let line = line.map_err(|e| HarnessError::io("<stdin>", "read", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Err(e) => serde_json::json!({"ok": false, "error": format!("bad request: {e}")}),
            Ok(req) => handle(req, &catalog, &mut prepared, factor, l3),
        };
        writeln!(output, "{response}").map_err(stdout_err)?;
        output.flush().map_err(stdout_err)?;
    }
    Ok(())
}

/// The routine measuring `entry`; `None` for a case that has no per-iteration routine (an
/// end-to-end case, which the worker does not serve).
fn routine_for(entry: &Entry, factor: f64, l3: usize) -> Option<Box<dyn Routine>> {
    match entry {
        Entry::Calibration => {
            let steps = ((CALIBRATION_STEPS as f64) * factor).round().max(1.0) as u64;
            Some(Box::new(calibration_routine(steps)))
        }
        Entry::Op(spec, variant) => spec.routine(variant, l3),
    }
}

fn handle(
    req: Request,
    catalog: &[(String, Entry)],
    prepared: &mut BTreeMap<String, Box<dyn Routine>>,
    factor: f64,
    l3: usize,
) -> serde_json::Value {
    let find = |id: &str| catalog.iter().find(|(i, _)| i == id).map(|(_, e)| e);
    match req {
        Request::Hello => {
            let hello = Hello {
                protocol: PROTOCOL,
                version: env!("CARGO_PKG_VERSION").to_string(),
                fingerprint: Fingerprint::detect(),
                git: baseline::git_info(),
                rustc: baseline::rustc_version().to_string(),
                profile: baseline::profile().to_string(),
                calibration_factor: factor,
            };
            ok(serde_json::to_value(hello).unwrap_or_default())
        }
        Request::List => {
            let ids: Vec<&str> = catalog.iter().map(|(i, _)| i.as_str()).collect();
            ok(serde_json::json!({ "cases": ids }))
        }
        Request::Prepare { case, warmup_ms } => {
            let Some(entry) = find(&case) else {
                return serde_json::json!({"ok": false, "error": format!("unknown case `{case}`")});
            };
            let verification = match entry {
                Entry::Calibration => "reference".to_string(),
                Entry::Op(spec, variant) => {
                    let v = spec.verify(variant);
                    if v.status == VerificationStatus::Failed {
                        return serde_json::json!({"ok": false, "error": format!(
                            "`{case}` fails verification against naive: {}",
                            v.detail.unwrap_or_default())});
                    }
                    format!("{:?}", v.status).to_lowercase()
                }
            };
            let Some(mut routine) = routine_for(entry, factor, l3) else {
                return serde_json::json!({"ok": false, "error": format!(
                    "`{case}` has no per-iteration routine (end-to-end cases are not gated here)")});
            };
            let warmup = Duration::from_secs_f64(warmup_ms.clamp(0.0, 10_000.0) / 1e3);
            let est = warm_up(&mut *routine, warmup);
            prepared.insert(case, routine);
            ok(serde_json::json!({ "ns_per_iter": est, "verification": verification }))
        }
        Request::Run { case, iters } => match prepared.get_mut(&case) {
            None => {
                serde_json::json!({"ok": false, "error": format!("case `{case}` is not prepared")})
            }
            Some(r) => {
                let t = Instant::now();
                r.run(iters.max(1));
                ok(serde_json::json!({ "ns": t.elapsed().as_nanos() as f64 }))
            }
        },
        Request::Release { case } => {
            prepared.remove(&case);
            ok(serde_json::json!({}))
        }
    }
}

/// The function callgrind collects inside (`--toggle-collect=*gllm_bench_measured_region*`):
/// exactly `iters` iterations of the routine, nothing else.
#[inline(never)]
#[no_mangle]
pub fn gllm_bench_measured_region(routine: &mut dyn Routine, iters: u64) {
    routine.run(black_box(iters));
}

/// `worker --count ID --iters N`: prepares the case, runs one iteration outside the region
/// (lazy initialisation, first-touch), then `iters` iterations inside it.
pub fn count(spec: &CatalogSpec, id: &str, iters: u64) -> Result<(), HarnessError> {
    let factor = calibration_factor()?;
    let catalog = catalog(spec)?;
    let entry = catalog.iter().find(|(i, _)| i == id).map(|(_, e)| e).ok_or_else(|| {
        HarnessError::Usage(format!(
            "--count `{id}`: no such case in this build (see `gllm-bench list`)"
        ))
    })?;
    // Instruction counts do not depend on the cache state; never allocate cold rotations here.
    let mut routine = routine_for(entry, factor, 0).ok_or_else(|| {
        HarnessError::Usage(format!("--count `{id}`: this case has no per-iteration routine"))
    })?;
    routine.run(1);
    gllm_bench_measured_region(&mut *routine, iters.max(1));
    Ok(())
}

/// A running worker child process.
pub struct WorkerProcess {
    pub label: String,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stdout: BufReader<ChildStdout>,
    pub hello: Hello,
}

/// How to start a worker: the binary and extra environment variables.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub bin: std::path::PathBuf,
    pub env: Vec<(String, String)>,
    /// Pin the worker to this CPU (with `taskset`). Both workers of a gate share one CPU:
    /// they never measure at the same time, and a CPU-dependent speed (a busy sibling
    /// hyperthread, another VM's neighbour) then hits both builds alike.
    pub cpu: Option<usize>,
    /// The source revision `bin` was built from, when the gate knows it: the commit it built
    /// for `--base-ref`, or this checkout for the running binary. Unknown (`None`) for a
    /// binary given by path: the worker's own working directory says nothing about it.
    pub git: GitInfo,
}

impl WorkerCommand {
    /// The worker's command line arguments for a catalog.
    pub fn catalog_args(spec: &CatalogSpec) -> Vec<String> {
        let mut args = vec![
            "worker".to_string(),
            "--cases".into(),
            value_name(&spec.cases),
            "--cache".into(),
            value_name(&spec.cache),
        ];
        if let Some(s) = &spec.stage {
            args.push("--stage".into());
            args.push(s.clone());
        }
        args
    }
}

/// The clap value name of a ValueEnum variant.
pub fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

impl WorkerProcess {
    pub fn spawn(
        label: &str,
        cmd: &WorkerCommand,
        spec: &CatalogSpec,
    ) -> Result<WorkerProcess, HarnessError> {
        Self::spawn_with(label, cmd, spec, false)
    }

    /// A worker run by valgrind (`--tool=none`), so it sees the CPU that callgrind's counting
    /// runs see: its case list names the variants available there (valgrind reports no
    /// AVX-512, so no `avx512` variant), not the ones this CPU would pick.
    pub fn spawn_under_valgrind(
        label: &str,
        cmd: &WorkerCommand,
        spec: &CatalogSpec,
    ) -> Result<WorkerProcess, HarnessError> {
        Self::spawn_with(label, cmd, spec, true)
    }

    fn spawn_with(
        label: &str,
        cmd: &WorkerCommand,
        spec: &CatalogSpec,
        under_valgrind: bool,
    ) -> Result<WorkerProcess, HarnessError> {
        let mut line: Vec<std::ffi::OsString> = Vec::new();
        if let Some(cpu) = cmd.cpu {
            line.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        if under_valgrind {
            line.extend(["valgrind".into(), "--tool=none".into(), "--quiet".into()]);
        }
        line.push(cmd.bin.clone().into_os_string());
        let mut command = Command::new(&line[0]);
        command
            .args(&line[1..])
            .args(WorkerCommand::catalog_args(spec))
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().map_err(|e| HarnessError::io(&cmd.bin, "start", e))?;
        let stdin = Some(BufWriter::new(child.stdin.take().expect("piped stdin")));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let placeholder = Hello {
            protocol: 0,
            version: String::new(),
            fingerprint: Fingerprint::detect(),
            git: GitInfo { sha: None, dirty: None },
            rustc: String::new(),
            profile: String::new(),
            calibration_factor: 1.0,
        };
        let mut w =
            WorkerProcess { label: label.to_string(), child, stdin, stdout, hello: placeholder };
        let hello = w.request(&Request::Hello).map_err(|e| {
            HarnessError::Harness(format!(
                "{label} build {}: does not answer the gate worker protocol ({e}); \
                 a build older than the gate cannot be measured by it",
                cmd.bin.display()
            ))
        })?;
        w.hello = serde_json::from_value(hello)
            .map_err(|e| HarnessError::Harness(format!("{label} worker: bad hello: {e}")))?;
        if w.hello.protocol != PROTOCOL {
            return Err(HarnessError::Harness(format!(
                "{label} worker speaks protocol {}, this gate {PROTOCOL}",
                w.hello.protocol
            )));
        }
        Ok(w)
    }

    pub fn request(&mut self, req: &Request) -> Result<serde_json::Value, HarnessError> {
        let label = self.label.clone();
        let broken = |what: String| HarnessError::Harness(format!("{label} worker: {what}"));
        let line = serde_json::to_string(req).expect("requests serialize");
        let stdin = self.stdin.as_mut().ok_or_else(|| broken("already closed".into()))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| broken(format!("cannot send a request: {e}")))?;
        let mut answer = String::new();
        let n = self
            .stdout
            .read_line(&mut answer)
            .map_err(|e| broken(format!("cannot read its answer: {e}")))?;
        if n == 0 {
            return Err(broken("exited without answering".into()));
        }
        let v: serde_json::Value = serde_json::from_str(answer.trim())
            .map_err(|e| broken(format!("unreadable answer {answer:?}: {e}")))?;
        if v["ok"] != serde_json::Value::Bool(true) {
            return Err(broken(v["error"].as_str().unwrap_or("failed").to_string()));
        }
        Ok(v)
    }

    pub fn list(&mut self) -> Result<Vec<String>, HarnessError> {
        let v = self.request(&Request::List)?;
        Ok(v["cases"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default())
    }

    /// Prepares and warms a case; returns the estimated ns per iteration.
    pub fn prepare(&mut self, case: &str, warmup: Duration) -> Result<f64, HarnessError> {
        let v = self.request(&Request::Prepare {
            case: case.to_string(),
            warmup_ms: warmup.as_secs_f64() * 1e3,
        })?;
        v["ns_per_iter"].as_f64().ok_or_else(|| {
            HarnessError::Harness(format!("{} worker: prepare gave no estimate", self.label))
        })
    }

    /// Runs `iters` iterations; returns ns per iteration.
    pub fn run(&mut self, case: &str, iters: u64) -> Result<f64, HarnessError> {
        let v = self.request(&Request::Run { case: case.to_string(), iters })?;
        let ns = v["ns"].as_f64().ok_or_else(|| {
            HarnessError::Harness(format!("{} worker: run gave no time", self.label))
        })?;
        Ok(ns / iters.max(1) as f64)
    }

    pub fn release(&mut self, case: &str) -> Result<(), HarnessError> {
        self.request(&Request::Release { case: case.to_string() }).map(|_| ())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing stdin ends the worker; wait briefly, then make sure it is gone.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_work_is_linear_in_steps() {
        assert_ne!(calibration_chain(1, 10), calibration_chain(1, 11));
        assert_eq!(calibration_chain(7, 100), calibration_chain(7, 100));
    }

    #[test]
    fn serve_answers_each_request_and_reports_errors() {
        let spec = CatalogSpec { stage: None, cases: CaseSelect::Model, cache: CacheSelect::Hot };
        let prepare = format!(r#"{{"op":"prepare","case":"{CALIBRATION_ID}","warmup_ms":1}}"#);
        let run = format!(r#"{{"op":"run","case":"{CALIBRATION_ID}","iters":3}}"#);
        let input = [
            r#"{"op":"list"}"#,
            &prepare,
            &run,
            r#"{"op":"run","case":"nope","iters":1}"#,
            "not json",
            r#"{"op":"prepare","case":"nope","warmup_ms":1}"#,
        ]
        .join("\n");
        let mut out = Vec::new();
        serve(&spec, input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        let cases = lines[0]["cases"].as_array().unwrap();
        assert!(cases.iter().any(|c| c == CALIBRATION_ID));
        assert!(cases.len() > 1, "op cases are listed too");
        assert!(lines[1]["ns_per_iter"].as_f64().unwrap() > 0.0);
        assert!(lines[2]["ns"].as_f64().unwrap() > 0.0);
        assert_eq!(lines[3]["ok"], false);
        assert!(lines[3]["error"].as_str().unwrap().contains("not prepared"));
        assert!(lines[4]["error"].as_str().unwrap().contains("bad request"));
        assert!(lines[5]["error"].as_str().unwrap().contains("unknown case"));
    }
}
