//! Plain-Rust kernels for aiorequestful: no pyo3 here (style.md S1).
