// SPDX-License-Identifier: MIT
//! `json_loads`: jiter on the happy path, the stdlib as referee everywhere else (style.md S5, api.md §5).
//!
//! The result must equal `json.loads(data)` on everything the stdlib accepts, and the exception must be the
//! stdlib's on everything it rejects. jiter alone does not meet that, so:
//!
//! * any jiter error -> `json.loads(data)` decides (it raises `JSONDecodeError`/`ValueError`/`RecursionError`, or
//!   accepts what jiter refused: nesting deeper than jiter's 200 levels, lone surrogate escapes (`"\ud800"`),
//!   ints longer than jiter's 4300-digit cap when `sys.set_int_max_str_digits(0)` lifted Python's limit);
//! * inputs jiter would read differently never reach it: a str holding lone surrogates (no UTF-8 form),
//!   bytes the stdlib would not decode as plain UTF-8 (a BOM, UTF-16/32 by `json.detect_encoding`'s NUL-byte
//!   rule), and, when `sys.set_int_max_str_digits()` lowered the limit below jiter's cap, any input with a
//!   digit run longer than that limit (jiter would accept an int the stdlib refuses);
//! * anything but str/bytes/bytearray goes straight to the stdlib, which raises its own `TypeError`.
//!
//! What jiter already does like the stdlib (checked by `tests/test_parity.py`): raw control characters in
//! strings are errors; only `' \t\n\r'` is whitespace; `NaN`, `Infinity`, `-Infinity` are the only non-finite
//! spellings; `-0` is the int 0 and `-0.0` keeps its sign; `1e400` is `inf`; floats round correctly; a
//! duplicate key keeps its first position and takes the last value; invalid UTF-8 is an error.

use jiter::{FloatMode, PartialMode, PythonParse, StringCacheMode};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// The longest int literal jiter decodes (`NumberAny::decode` refuses longer digit runs).
/// Python's default `sys.get_int_max_str_digits()` is the same 4300.
const JITER_INT_DIGITS: usize = 4300;

/// jiter configured as the stdlib: NaN/Infinity accepted (as `json.loads` does), floats as `float`, duplicate
/// keys allowed (last value wins), keys cached (they repeat across the objects of an API response).
static PARSER: PythonParse = PythonParse {
    allow_inf_nan: true,
    cache_mode: StringCacheMode::Keys,
    partial_mode: PartialMode::Off,
    catch_duplicate_keys: false,
    float_mode: FloatMode::Float,
};

/// Decode JSON exactly as `json.loads` does.
#[pyfunction(signature = (data, /))]
pub fn json_loads<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Some(value) = native(py, data)? {
        return Ok(value);
    }
    stdlib_loads(py, data)
}

/// The jiter result, or `None` when the stdlib must decide.
fn native<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(text) = data.cast::<PyString>() {
        // A str with lone surrogates has no UTF-8 form (the stdlib decodes it fine); drop that error.
        return match text.to_str() {
            Ok(text) => parse(py, text.as_bytes()),
            Err(_) => Ok(None),
        };
    }
    if let Ok(bytes) = data.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        return if plain_utf8(bytes) { parse(py, bytes) } else { Ok(None) };
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        // Copied: building Python objects can run arbitrary code (GC, other threads) that resizes the array.
        let bytes = array.to_vec();
        return if plain_utf8(&bytes) {
            parse(py, &bytes)
        } else {
            Ok(None)
        };
    }
    Ok(None)
}

/// Whether `json.detect_encoding` would pick plain `'utf-8'` for these bytes: no BOM (UTF-8 `EF BB BF`, UTF-16/32
/// `FE FF`/`FF FE`) and no NUL in the first two bytes (its UTF-16/32 guess). Valid JSON never starts with those
/// bytes as UTF-8, so this only routes inputs that jiter would refuse anyway; it keeps the rule explicit.
fn plain_utf8(bytes: &[u8]) -> bool {
    !matches!(bytes.first(), Some(0x00 | 0xEF | 0xFE | 0xFF)) && bytes.get(1) != Some(&0)
}

fn parse<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let limit = int_digit_limit(py)?;
    if limit != 0 && limit < JITER_INT_DIGITS && has_digit_run_longer_than(bytes, limit) {
        return Ok(None);
    }
    // Any jiter error is answered by the stdlib (the caller), so the error itself is not needed.
    Ok(PARSER.python_parse(py, bytes).ok())
}

/// `sys.get_int_max_str_digits()` (0 = unlimited); read on every call because it can change at any time.
fn int_digit_limit(py: Python<'_>) -> PyResult<usize> {
    static GET_LIMIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_LIMIT
        .import(py, "sys", "get_int_max_str_digits")?
        .call0()?
        .extract::<usize>()
}

/// Whether some run of ASCII digits is longer than `limit` (digits inside strings count too: a false positive
/// only sends the input to the stdlib).
fn has_digit_run_longer_than(bytes: &[u8], limit: usize) -> bool {
    let mut run = 0usize;
    for byte in bytes {
        if byte.is_ascii_digit() {
            run += 1;
            if run > limit {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// `json.loads(data)`: the referee on every input the fast path does not take.
#[cold]
fn stdlib_loads<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let loads = LOADS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import(intern!(py, "json"))?.getattr(intern!(py, "loads"))?.unbind())
    })?;
    loads.bind(py).call1((data,))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_encoding_rule() {
        assert!(plain_utf8(b"{}"));
        assert!(plain_utf8(b""));
        assert!(plain_utf8(b"1"));
        assert!(plain_utf8("\u{e9}".as_bytes()));
        assert!(!plain_utf8(b"\xef\xbb\xbf{}"));
        assert!(!plain_utf8(b"\xff\xfe1\x00"));
        assert!(!plain_utf8(b"\xfe\xff\x001"));
        assert!(!plain_utf8(b"\x001"));
        assert!(!plain_utf8(b"1\x00"));
        assert!(!plain_utf8(b"[\x00\x00\x00"));
    }

    #[test]
    fn digit_runs() {
        assert!(!has_digit_run_longer_than(b"[123, 4567]", 4));
        assert!(has_digit_run_longer_than(b"[123, 45678]", 4));
        assert!(has_digit_run_longer_than(b"\"12345\"", 4));
        assert!(!has_digit_run_longer_than(b"1234.5678e1234", 4));
        assert!(!has_digit_run_longer_than(b"", 0));
    }

    #[test]
    fn decodes_like_the_stdlib() {
        Python::initialize();
        Python::attach(|py| -> PyResult<()> {
            let json = py.import("json")?;
            for text in [
                "{\"a\": [1, 2.5, null, true]}",
                "\"\\ud800\"",
                "[1e400, -0.0, NaN]",
                "-0",
            ] {
                let ours = json_loads(py, PyString::new(py, text).as_any())?;
                let theirs = json.call_method1("loads", (text,))?;
                assert_eq!(ours.repr()?.to_string(), theirs.repr()?.to_string(), "{text}");
            }
            let err = json_loads(py, PyString::new(py, "[1,]").as_any()).err();
            let decode_error = json.getattr("JSONDecodeError")?;
            assert!(err.is_some_and(|e| e.get_type(py).is(&decode_error)));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
