// SPDX-License-Identifier: MIT
//! `DispatchTable`: the Python face of `aiorequestful_kernels::dispatch` (twin: `DispatchTable` in
//! `python/aiorequestful/_native_py.py`, same constructor, methods, `repr` and pickling).

use aiorequestful_kernels::dispatch::DispatchTable;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use crate::convert::{status_code, status_int};

/// Map each status code to the index of the first handler that lists it; built once per handler set.
#[pyclass(name = "DispatchTable", module = "aiorequestful._native", frozen)]
pub struct PyDispatchTable {
    table: DispatchTable,
}

#[pymethods]
impl PyDispatchTable {
    #[new]
    #[pyo3(signature = (handler_codes, /))]
    fn new(handler_codes: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut table = DispatchTable::new();
        // Iterated as Python iterables, so a bad item fails where the twin's `for` loop fails.
        for (index, codes) in handler_codes.try_iter()?.enumerate() {
            for code in codes?.try_iter()? {
                table.claim(status_code(&code?)?, index);
            }
        }
        Ok(Self { table })
    }

    /// The handler index for ``status``, or None when no handler claims it (any int may be asked about).
    #[pyo3(signature = (status, /))]
    fn lookup(&self, status: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
        Ok(status_int(status)?.and_then(|status| self.table.lookup(status)))
    }

    /// A new dict of status code -> handler index, in ascending code order.
    fn mapping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (code, index) in self.table.entries() {
            dict.set_item(code, index)?;
        }
        Ok(dict)
    }

    fn __len__(&self) -> usize {
        self.table.len()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.table)
    }

    /// Pickle/copy support: the code lists, by handler index, that rebuild the same table.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let width = self.table.entries().map(|(_, index)| index + 1).max().unwrap_or(0);
        let mut groups: Vec<Vec<u16>> = vec![Vec::new(); width];
        for (code, index) in self.table.entries() {
            if let Some(group) = groups.get_mut(index) {
                group.push(code);
            }
        }
        let groups = PyList::new(py, groups)?;
        Ok((py.get_type::<Self>(), PyTuple::new(py, [groups])?))
    }
}
