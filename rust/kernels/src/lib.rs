// SPDX-License-Identifier: MIT
//! Plain-Rust kernels for aiorequestful: no pyo3 here (the bindings crate holds all of it).
//!
//! Each module is the Rust half of a kernel whose pure-Python twin lives in
//! `python/aiorequestful/_native_py.py`; `rust/bindings` exposes them as `aiorequestful._native`.
//! JSON decoding builds Python objects, so it lives in the bindings crate (a decoder of its own, `json.rs`).

pub mod bucket;
pub mod cache_key;
pub mod dispatch;
pub mod error;
pub mod timer;

pub use error::{ErrorKind, KernelError, KernelResult};
