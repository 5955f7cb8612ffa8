//! PyO3 bindings: the module `aiorequestful._native`.
use pyo3::prelude::*;

/// must match KERNEL_API in python/aiorequestful/_native_py.py
const KERNEL_API: u32 = 0;

#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("KERNEL_API", KERNEL_API)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
