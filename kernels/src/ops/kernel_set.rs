//! [`KernelSet`]: a resolved stage turned into plain function pointers, once.
//!
//! The model builds one `KernelSet` from a [`ResolvedStage`] at start-up and calls its fields
//! in the hot loop: a direct call through a function pointer, no lookup, no dispatch.
//!
//! ```
//! use gllm_kernels::ops::linear::LinearShape;
//! use gllm_kernels::ops::KernelSet;
//! use gllm_kernels::stage;
//!
//! let stages = stage::builtin();
//! let mm = stage::resolve_with_force(&stages, "matrixmultiply", None).unwrap();
//! let k = KernelSet::from_stage(&mm);
//! assert_eq!(k.variant_of("linear"), Some("matrixmultiply"));
//! // y[1, 2] = x[1, 3] · W[2, 3]ᵀ
//! let (x, w) = ([1.0f32, 2.0, 3.0], [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0]);
//! let mut y = [0.0f32; 2];
//! (k.linear)(&mut y, &x, &w, None, LinearShape::new(1, 2, 3));
//! assert_eq!(y, [1.0, 3.0]);
//! ```

use super::activations::{self, SiluInplaceFn, SiluMulFn, UnaryFn};
use super::attention::{self, AttentionFn};
use super::elementwise::{self, AddFn, MulFn, ScaleFn};
use super::layer_norm::{self, LayerNormFn};
use super::linear::{self, LinearFn};
use super::linear_packed;
use super::rms_norm::{self, RmsNormFn};
use super::rope::{self, RopeFn};
use super::softmax::{self, SoftmaxFn};
use crate::stage::ResolvedStage;

/// One function pointer per f32 op, as chosen by a stage.
#[derive(Clone, Copy)]
pub struct KernelSet {
    pub linear: LinearFn,
    /// `linear` on W packed in panels ([`linear_packed`]); the model packs its f32 matrices
    /// for it when the stage chose a variant other than `naive`.
    pub linear_packed: LinearFn,
    pub rms_norm: RmsNormFn,
    pub layer_norm: LayerNormFn,
    pub add: AddFn,
    pub mul: MulFn,
    pub scale: ScaleFn,
    pub sigmoid: UnaryFn,
    pub silu: UnaryFn,
    pub silu_inplace: SiluInplaceFn,
    pub silu_mul: SiluMulFn,
    pub gelu: UnaryFn,
    pub rope: RopeFn,
    pub softmax: SoftmaxFn,
    pub attention: AttentionFn,
    /// `(op, variant)` of every field, for logs and result files.
    pub names: [(&'static str, &'static str); 15],
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.names.iter().map(|(op, v)| (op, v))).finish()
    }
}

fn pick<F>(
    stage: &ResolvedStage,
    op: &'static str,
    select: fn(&str) -> Option<F>,
) -> (F, (&'static str, &'static str)) {
    let name = stage.variant(op).name;
    let f = select(name).unwrap_or_else(|| {
        panic!(
            "stage `{}` chose `{op}` variant `{name}`, which has no typed entry point here",
            stage.name
        )
    });
    (f, (op, name))
}

impl KernelSet {
    /// The variants `stage` chose, as function pointers. Panics if the stage names a variant
    /// with no typed entry point (every registered f32 variant has one; a test checks it).
    pub fn from_stage(stage: &ResolvedStage) -> KernelSet {
        let (linear, n0) = pick(stage, "linear", linear::select);
        let (rms_norm, n1) = pick(stage, "rms_norm", rms_norm::select);
        let (layer_norm, n2) = pick(stage, "layer_norm", layer_norm::select);
        let (add, n3) = pick(stage, "add", elementwise::select_add);
        let (mul, n4) = pick(stage, "mul", elementwise::select_mul);
        let (scale, n5) = pick(stage, "scale", elementwise::select_scale);
        let (sigmoid, n6) = pick(stage, "sigmoid", activations::select_sigmoid);
        let (silu, n7) = pick(stage, "silu", activations::select_silu);
        let (silu_inplace, n8) = pick(stage, "silu_inplace", activations::select_silu_inplace);
        let (silu_mul, n9) = pick(stage, "silu_mul", activations::select_silu_mul);
        let (gelu, n10) = pick(stage, "gelu", activations::select_gelu);
        let (rope, n11) = pick(stage, "rope", rope::select);
        let (softmax, n12) = pick(stage, "softmax", softmax::select);
        let (attention, n13) = pick(stage, "attention", attention::select);
        let (linear_packed, n14) = pick(stage, "linear_packed", linear_packed::select);
        KernelSet {
            linear,
            linear_packed,
            rms_norm,
            layer_norm,
            add,
            mul,
            scale,
            sigmoid,
            silu,
            silu_inplace,
            silu_mul,
            gelu,
            rope,
            softmax,
            attention,
            names: [n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11, n12, n13, n14],
        }
    }

    /// The variant chosen for `op`, if `op` is one of the set's fields.
    pub fn variant_of(&self, op: &str) -> Option<&'static str> {
        self.names.iter().find(|(o, _)| *o == op).map(|(_, v)| *v)
    }
}

/// Whether `(op, variant)` has a typed entry point (`select` returns `Some`). Tests use it to
/// prove every registered f32 variant can be put in a [`KernelSet`].
pub fn has_typed_entry(op: &str, variant: &str) -> bool {
    match op {
        "linear" => linear::select(variant).is_some(),
        "linear_packed" => linear_packed::select(variant).is_some(),
        "rms_norm" => rms_norm::select(variant).is_some(),
        "layer_norm" => layer_norm::select(variant).is_some(),
        "add" => elementwise::select_add(variant).is_some(),
        "mul" => elementwise::select_mul(variant).is_some(),
        "scale" => elementwise::select_scale(variant).is_some(),
        "sigmoid" => activations::select_sigmoid(variant).is_some(),
        "silu" => activations::select_silu(variant).is_some(),
        "silu_inplace" => activations::select_silu_inplace(variant).is_some(),
        "silu_mul" => activations::select_silu_mul(variant).is_some(),
        "gelu" => activations::select_gelu(variant).is_some(),
        "rope" => rope::select(variant).is_some(),
        "softmax" => softmax::select(variant).is_some(),
        "attention" => attention::select(variant).is_some(),
        _ => false,
    }
}
