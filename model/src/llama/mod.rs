//! The llama forward pass: weights prepared for a stage ([`weights`]), matmuls split across a
//! persistent thread pool ([`matmul`]) and the model with its KV cache ([`model`]).

pub mod attention;
pub mod error;
pub mod matmul;
pub mod model;
pub mod rows;
pub mod timing;
pub mod weights;

pub use error::ModelError;
pub use model::{Model, ModelOptions};
