// SPDX-License-Identifier: MIT
//! `json_loads`: a strict single-pass decoder on the happy path, the stdlib as referee everywhere else.
//!
//! The result must equal `json.loads(data)` on everything the stdlib accepts, and the exception must be the
//! stdlib's on everything it rejects. The fast path therefore only ever *accepts*: it takes the RFC 8259 grammar
//! (plus the stdlib's `NaN`, `Infinity`, `-Infinity`) and builds the same objects the stdlib would; anything it is
//! not sure of makes it give up, drop what it built, and let `json.loads(data)` decide, which raises the
//! stdlib's own `JSONDecodeError`/`ValueError`/`RecursionError`/`UnicodeDecodeError` or accepts what the fast path
//! left alone:
//!
//! * every syntax error, raw control characters in strings, whitespace other than `' \t\n\r'`;
//! * lone surrogate escapes (`"\ud800"`, which the stdlib turns into a lone-surrogate `str`) and a str argument
//!   that itself holds lone surrogates (it has no UTF-8 form);
//! * bytes that are not strict UTF-8 (the stdlib decodes with `surrogatepass`, so UTF-8-encoded surrogates are
//!   its call), and bytes `json.detect_encoding` would not read as plain UTF-8 (a BOM, UTF-16/32 by its NUL rule);
//! * ints the running interpreter's `sys.set_int_max_str_digits()` refuses: long ints are built with
//!   `PyLong_FromString`, which applies that limit exactly as `int()` does, so no per-call lookup is needed;
//! * nesting deeper than [`MAX_DEPTH`] (the stdlib's own limit depends on the Python stack in use);
//! * anything but str/bytes/bytearray (the stdlib raises its own `TypeError`).
//!
//! Where the time goes (and why this is not jiter any more): profiled on API-shaped documents, jiter's generic
//! key cache hashed every key with a keyed hasher and compared hits through `PyUnicode_AsUTF8AndSize`, and its
//! parser re-dispatched on every token; together that was half the decode. Here object keys go through a small
//! direct-mapped cache of interned-like `str` objects (their CPython hash is computed once, so `dict` inserts
//! skip hashing); a key of up to 15 ASCII bytes is found, hashed and matched as two machine words without a byte
//! loop. String bodies are scanned eight bytes at a time, ASCII strings are copied straight into a new `str`,
//! short decimals are computed exactly without the general float parser, and arrays are collected on one shared
//! stack and moved into an exactly sized `list`. The cyclic GC is paused for the parse (see [`GcPause`]).

use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// Containers nested deeper than this go to the stdlib. It recurses on the Python stack, so its own limit moves
/// with the caller's depth; staying far below the default recursion limit keeps the two in agreement.
const MAX_DEPTH: u32 = 200;

/// Key cache size (a power of two) and the longest key it holds. API documents repeat a few dozen key names.
const KEY_SLOTS: usize = 1024;
const KEY_MAX_LEN: usize = 64;

extern "C" {
    /// A dict with room for `minused` items. Not in the documented API, but exported by every CPython this
    /// package supports (3.11-3.13) and used by orjson for the same purpose: objects are read in full before
    /// their dict is made, so it can be made at its final size instead of regrowing as keys arrive.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
    /// `PyDict_SetItem` with the key's hash passed in (same status): the keys are exact strs whose hash CPython
    /// has cached, read straight off the object, so the wrapper's type checks and hash call are skipped.
    fn _PyDict_SetItem_KnownHash(
        dict: *mut ffi::PyObject,
        key: *mut ffi::PyObject,
        value: *mut ffi::PyObject,
        hash: ffi::Py_hash_t,
    ) -> std::os::raw::c_int;
}

/// The hash of an exact str, computed (and cached in the object) if it is not yet known.
#[inline]
unsafe fn str_hash(key: *mut ffi::PyObject) -> ffi::Py_hash_t {
    // SAFETY: `key` is a live str; `PyASCIIObject.hash` is -1 until CPython has computed it.
    let cached = unsafe { (*key.cast::<ffi::PyASCIIObject>()).hash };
    if cached == -1 {
        unsafe { ffi::PyObject_Hash(key) }
    } else {
        cached
    }
}

/// Decode JSON exactly as `json.loads` does.
#[pyfunction(signature = (data, /))]
pub fn json_loads<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Some(value) = native(py, data) {
        return Ok(value);
    }
    stdlib_loads(py, data)
}

/// The cyclic GC paused while a decoder builds a document, and resumed when dropped (also on unwinding).
///
/// A parse runs no Python code and makes no reference cycles, so a collection has nothing to find in it; yet every
/// container it makes counts towards the next one, and a large document would trigger dozens, each traversing
/// all young objects made so far (and a full collection as the young ones pile up). Paused, the count carries on:
/// when the caller keeps the result, the first allocation after the call collects once (the same traversal the
/// small collections would have made, though of memory no longer hot in cache); when it drops an earlier result
/// of similar size, as a client handling one response after another does, freeing that brings the count back
/// down and no collection is due at all.
struct GcPause {
    was_enabled: bool,
}

impl GcPause {
    /// SAFETY: the GIL must be held for the pause's whole life.
    unsafe fn new() -> Self {
        GcPause {
            // SAFETY: the GIL is held; PyGC_Disable returns whether the GC was enabled.
            was_enabled: unsafe { ffi::PyGC_Disable() } != 0,
        }
    }
}

impl Drop for GcPause {
    fn drop(&mut self) {
        if self.was_enabled {
            // SAFETY: created with the GIL held, and dropped before it is released.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

/// The fast-path result, or `None` when the stdlib must decide.
fn native<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if let Ok(text) = data.cast::<PyString>() {
        let mut size: ffi::Py_ssize_t = 0;
        // SAFETY: `text` is a live str; the returned buffer lives as long as it does (we hold a reference).
        let utf8 = unsafe { ffi::PyUnicode_AsUTF8AndSize(text.as_ptr(), &raw mut size) };
        if utf8.is_null() {
            // Lone surrogates have no UTF-8 form (the stdlib decodes such a str fine): its call.
            // SAFETY: the GIL is held; this drops the UnicodeEncodeError just raised.
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        let len = usize::try_from(size).ok()?;
        // SAFETY: CPython guarantees `size` readable bytes at `utf8`, valid UTF-8, for the str's lifetime.
        let bytes = unsafe { std::slice::from_raw_parts(utf8.cast::<u8>(), len) };
        return decode(py, bytes, true);
    }
    if let Ok(bytes) = data.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        return if plain_utf8(bytes) {
            decode(py, bytes, false)
        } else {
            None
        };
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        // Copied: building Python objects can run arbitrary code (GC, other threads) that resizes the array.
        let bytes = array.to_vec();
        return if plain_utf8(&bytes) {
            decode(py, &bytes, false)
        } else {
            None
        };
    }
    None
}

/// Whether `json.detect_encoding` would pick plain `'utf-8'` for these bytes: no BOM (UTF-8 `EF BB BF`, UTF-16/32
/// `FE FF`/`FF FE`) and no NUL in the first two bytes (its UTF-16/32 guess). Valid JSON never starts with those
/// bytes as UTF-8, so this only routes inputs the fast path would refuse anyway; it keeps the rule explicit.
fn plain_utf8(bytes: &[u8]) -> bool {
    !matches!(bytes.first(), Some(0x00 | 0xEF | 0xFE | 0xFF)) && bytes.get(1) != Some(&0)
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

/// Decode `bytes`; `valid_utf8` when they are known to be UTF-8 (a str's own encoding), so strings skip the check.
fn decode<'py>(py: Python<'py>, bytes: &[u8], valid_utf8: bool) -> Option<Bound<'py, PyAny>> {
    // The cache is process-wide. A GC callback or another thread can re-enter while one parse holds it; that
    // parse simply runs without the cache instead of waiting.
    let mut keys = match KEY_CACHE.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    // The element stack is reused from call to call (it lives with the cache), so a small document costs no
    // allocation for it.
    let stack = keys
        .as_deref_mut()
        .map(|cache| std::mem::take(&mut cache.stack))
        .unwrap_or_default();
    let mut decoder = Decoder {
        data: bytes,
        pos: 0,
        depth: 0,
        stack,
        scratch: Vec::new(),
        keys,
        valid_utf8,
    };
    // SAFETY: the GIL is held (`py`) for the whole parse, so also until the pause is dropped right after it;
    // every pointer the decoder makes is an owned reference that ends up in the result or is released.
    let paused = unsafe { GcPause::new() };
    let result = unsafe { decoder.document() };
    drop(paused);
    let result = if let Ok(value) = result {
        Some(value.into_bound(py))
    } else {
        // SAFETY: GIL held; the stack holds owned references of a parse that is being abandoned, and any
        // exception a failed C call left behind is the stdlib's to raise again, not ours.
        unsafe {
            for item in decoder.stack.drain(..) {
                ffi::Py_DECREF(item);
            }
            ffi::PyErr_Clear();
        }
        None
    };
    if let Some(cache) = decoder.keys.as_deref_mut() {
        // Kept for the next call unless a huge document grew it (then its memory goes back).
        if decoder.stack.capacity() <= 1 << 16 {
            cache.stack = std::mem::take(&mut decoder.stack);
        }
    }
    result
}

/// The fast path gives up (the stdlib decides); carries nothing, the input is re-read from the start.
struct Bail;

type Parsed = Result<Owned, Bail>;

/// An owned (strong) reference, released when dropped unless handed on.
struct Owned(NonNull<ffi::PyObject>);

impl Owned {
    /// Take ownership of a new reference; a null (failed C call) gives up.
    #[inline]
    fn new(ptr: *mut ffi::PyObject) -> Parsed {
        NonNull::new(ptr).map(Owned).ok_or(Bail)
    }

    #[inline]
    fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    #[inline]
    fn into_ptr(self) -> *mut ffi::PyObject {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    fn into_bound(self, py: Python<'_>) -> Bound<'_, PyAny> {
        // SAFETY: an owned, non-null reference, and the GIL is held.
        unsafe { Bound::from_owned_ptr(py, self.into_ptr()) }
    }
}

impl Drop for Owned {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: only ever built from an owned reference while the GIL is held (the decoder's lifetime).
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    depth: u32,
    /// Elements of the arrays being built, innermost last (owned references).
    stack: Vec<*mut ffi::PyObject>,
    /// The decoded text of a string with escapes.
    scratch: Vec<u8>,
    keys: Option<MutexGuard<'static, KeyCache>>,
    /// The input came from a str: it is valid UTF-8 already.
    valid_utf8: bool,
}

impl Decoder<'_> {
    /// A whole document: one value between optional whitespace, nothing after it.
    unsafe fn document(&mut self) -> Parsed {
        let value = unsafe { self.value() }?;
        if self.skip_ws() == self.data.len() {
            Ok(value)
        } else {
            Err(Bail)
        }
    }

    /// Skip JSON whitespace; returns the new position.
    #[inline]
    fn skip_ws(&mut self) -> usize {
        let data = self.data;
        let mut pos = self.pos;
        // Most tokens follow no whitespace or one space: test for those before looping.
        if let Some(&byte) = data.get(pos) {
            if byte > b' ' {
                return pos;
            }
            if byte == b' ' && data.get(pos + 1).is_some_and(|&next| next > b' ') {
                self.pos = pos + 1;
                return pos + 1;
            }
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = data.get(pos) {
            pos += 1;
        }
        self.pos = pos;
        pos
    }

    /// The next non-whitespace byte (not consumed).
    #[inline]
    fn peek(&mut self) -> Result<u8, Bail> {
        let pos = self.skip_ws();
        self.data.get(pos).copied().ok_or(Bail)
    }

    unsafe fn value(&mut self) -> Parsed {
        let byte = self.peek()?;
        unsafe {
            match byte {
                b'"' => {
                    self.pos += 1;
                    self.string(false)
                }
                b'{' => self.object(),
                b'[' => self.array(),
                b'-' | b'0'..=b'9' => self.number(),
                b't' => self.literal(b"true", ffi::Py_True()),
                b'f' => self.literal(b"false", ffi::Py_False()),
                b'n' => self.literal(b"null", ffi::Py_None()),
                b'N' => self.constant(b"NaN", f64::NAN),
                b'I' => self.constant(b"Infinity", f64::INFINITY),
                _ => Err(Bail),
            }
        }
    }

    unsafe fn literal(&mut self, word: &[u8], object: *mut ffi::PyObject) -> Parsed {
        if self.data[self.pos..].starts_with(word) {
            self.pos += word.len();
            // SAFETY: a singleton; the new reference is ours.
            unsafe { ffi::Py_INCREF(object) };
            Owned::new(object)
        } else {
            Err(Bail)
        }
    }

    unsafe fn constant(&mut self, word: &[u8], value: f64) -> Parsed {
        if self.data[self.pos..].starts_with(word) {
            self.pos += word.len();
            Owned::new(unsafe { ffi::PyFloat_FromDouble(value) })
        } else {
            Err(Bail)
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), Bail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Bail)
        } else {
            Ok(())
        }
    }

    unsafe fn object(&mut self) -> Parsed {
        self.pos += 1; // '{'
        self.enter()?;
        let base = self.stack.len();
        if self.peek()? != b'}' {
            loop {
                if self.peek()? != b'"' {
                    return Err(Bail);
                }
                self.pos += 1;
                let key = match unsafe { self.short_key() } {
                    Some(key) => key?,
                    None => unsafe { self.string(true) }?,
                };
                self.stack.push(key.into_ptr());
                if self.peek()? != b':' {
                    return Err(Bail);
                }
                self.pos += 1;
                let value = unsafe { self.value() }?;
                self.stack.push(value.into_ptr());
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return Err(Bail),
                }
            }
        }
        self.pos += 1; // the closing brace
                       // Sized once for all its keys (no regrowth while filling), as the stdlib's dict(pairs) would end up.
        let pairs = (self.stack.len() - base) / 2;
        let dict = Owned::new(unsafe { _PyDict_NewPresized(ffi::Py_ssize_t::try_from(pairs).map_err(|_| Bail)?) })?;
        let mut failed = false;
        for pair in self.stack[base..].chunks_exact(2) {
            // Like the stdlib: a repeated key keeps its first position and takes the last value.
            // SAFETY: owned references from the stack; SetItem takes its own, ours are released below.
            failed |= unsafe {
                let hash = str_hash(pair[0]);
                hash == -1 || _PyDict_SetItem_KnownHash(dict.as_ptr(), pair[0], pair[1], hash) < 0
            };
        }
        for item in self.stack.drain(base..) {
            unsafe { ffi::Py_DECREF(item) };
        }
        if failed {
            return Err(Bail);
        }
        self.depth -= 1;
        Ok(dict)
    }

    unsafe fn array(&mut self) -> Parsed {
        self.pos += 1; // '['
        self.enter()?;
        let base = self.stack.len();
        if self.peek()? == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Owned::new(unsafe { ffi::PyList_New(0) });
        }
        loop {
            let value = unsafe { self.value() }?;
            self.stack.push(value.into_ptr());
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Bail),
            }
        }
        let count = self.stack.len() - base;
        let list = Owned::new(unsafe { ffi::PyList_New(ffi::Py_ssize_t::try_from(count).map_err(|_| Bail)?) })?;
        for (index, item) in self.stack.drain(base..).enumerate() {
            // SAFETY: `list` is new with exactly `count` empty slots; SET_ITEM steals the reference.
            #[allow(clippy::cast_possible_wrap)] // index < count, which fits Py_ssize_t (checked above)
            unsafe {
                ffi::PyList_SET_ITEM(list.as_ptr(), index as ffi::Py_ssize_t, item);
            }
        }
        self.depth -= 1;
        Ok(list)
    }

    /// A number by the JSON grammar `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, or `-Infinity`.
    unsafe fn number(&mut self) -> Parsed {
        let data = self.data;
        let start = self.pos;
        let mut i = start;
        let negative = data[i] == b'-';
        if negative {
            i += 1;
            if data.get(i) == Some(&b'I') {
                self.pos = i;
                return unsafe { self.constant(b"Infinity", f64::NEG_INFINITY) };
            }
        }
        let digits_start = i;
        match data.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digit_run(data, i + 1),
            _ => return Err(Bail),
        }
        let digits_end = i;
        let mut fraction = (i, i);
        if data.get(i) == Some(&b'.') {
            i = digit_run(data, i + 1);
            if i == digits_end + 1 {
                return Err(Bail);
            }
            fraction = (digits_end + 1, i);
        }
        let mut exponent = None;
        if let Some(b'e' | b'E') = data.get(i) {
            i += 1;
            let sign = i;
            if let Some(b'+' | b'-') = data.get(i) {
                i += 1;
            }
            let digits = i;
            i = digit_run(data, digits);
            if i == digits {
                return Err(Bail);
            }
            exponent = Some((sign, i));
        }
        self.pos = i;
        let token = &data[start..i];
        if fraction.1 > fraction.0 || exponent.is_some() {
            let value = if let Some(value) = exact_float(data, (digits_start, digits_end), fraction, exponent) {
                value
            } else {
                // Rust's float parsing rounds correctly on any number of digits, as `float()` does; overflow is
                // inf. The sign is applied below, so the magnitude is parsed.
                // SAFETY: the token is ASCII (checked by the grammar above).
                let text = unsafe { std::str::from_utf8_unchecked(&data[digits_start..i]) };
                text.parse().map_err(|_| Bail)?
            };
            return Owned::new(unsafe { ffi::PyFloat_FromDouble(if negative { -value } else { value }) });
        }
        if digits_end - digits_start <= 18 {
            // At most 18 digits always fits an i64.
            let mut value: i64 = 0;
            for &digit in &data[digits_start..digits_end] {
                value = value * 10 + i64::from(digit - b'0');
            }
            if negative {
                value = -value;
            }
            return Owned::new(unsafe { ffi::PyLong_FromLongLong(value) });
        }
        // `PyLong_FromString` is what `int()` uses: it applies `sys.set_int_max_str_digits()` (a refusal is the
        // stdlib's ValueError to raise) and needs a NUL-terminated copy.
        let mut text = Vec::with_capacity(token.len() + 1);
        text.extend_from_slice(token);
        text.push(0);
        Owned::new(unsafe { ffi::PyLong_FromString(text.as_ptr().cast(), ptr::null_mut(), 10) })
    }

    /// An object key of up to 15 plain ASCII bytes (no escapes), read from the 16 bytes at the cursor as two
    /// words: the closing quote is found, the key hashed and compared with its cache slot all in registers. `None`
    /// (nothing consumed) for any other key, near the end of the input, or without the cache: [`Self::string`]
    /// takes those.
    #[inline]
    unsafe fn short_key(&mut self) -> Option<Parsed> {
        let start = self.pos;
        let window = self.data.get(start..start + 16)?;
        let cache = self.keys.as_deref_mut()?;
        let mut first = [0u8; 8];
        let mut second = [0u8; 8];
        first.copy_from_slice(&window[..8]);
        second.copy_from_slice(&window[8..]);
        let (first, second) = (u64::from_le_bytes(first), u64::from_le_bytes(second));
        let stops = special_bytes(first);
        let len = if stops != 0 {
            stops.trailing_zeros() as usize / 8
        } else {
            let stops = special_bytes(second);
            if stops == 0 {
                return None;
            }
            8 + stops.trailing_zeros() as usize / 8
        };
        if window[len] != b'"' {
            return None; // an escape or a control character: the general path decides
        }
        let (mask0, mask1) = match len {
            0..=7 => ((1u64 << (8 * len)) - 1, 0),
            _ => (u64::MAX, (1u64 << (8 * (len - 8))) - 1),
        };
        let words = [first & mask0, second & mask1];
        if (words[0] | words[1]) & HIGH_BITS != 0 {
            return None; // not ASCII
        }
        self.pos = start + len + 1;
        Some(unsafe { cache.get_short(words, len, &window[..len]) })
    }

    /// A string body (the opening quote already consumed). Keys go through the key cache.
    unsafe fn string(&mut self, is_key: bool) -> Parsed {
        let data = self.data;
        let start = self.pos;
        let mut high = 0u64;
        let end = find_special(data, start, &mut high);
        match data.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                let body = &data[start..end];
                if high == 0 {
                    if is_key && body.len() <= KEY_MAX_LEN {
                        if let Some(cache) = self.keys.as_deref_mut() {
                            return unsafe { cache.get(body) };
                        }
                    }
                    unsafe { ascii_str(body) }
                } else {
                    unsafe { utf8_str(body, self.valid_utf8) }
                }
            }
            Some(b'\\') => unsafe { self.escaped_string(start, end, high) },
            _ => Err(Bail), // a raw control character, or no closing quote
        }
    }

    /// The rest of a string that holds escapes: `data[start..at]` is plain text and `data[at]` is a backslash.
    #[cold]
    unsafe fn escaped_string(&mut self, start: usize, mut at: usize, mut high: u64) -> Parsed {
        let data = self.data;
        self.scratch.clear();
        self.scratch.extend_from_slice(&data[start..at]);
        loop {
            let escape = *data.get(at + 1).ok_or(Bail)?;
            at += 2;
            let decoded = match escape {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let unit = hex4(data, at)?;
                    at += 4;
                    let code = match unit {
                        0xD800..=0xDBFF => {
                            // Only a high surrogate followed by a low one makes a character; a lone surrogate
                            // becomes a lone-surrogate str in the stdlib, which has no UTF-8 form here.
                            if data.get(at) != Some(&b'\\') || data.get(at + 1) != Some(&b'u') {
                                return Err(Bail);
                            }
                            let low = hex4(data, at + 2)?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return Err(Bail);
                            }
                            at += 6;
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => return Err(Bail),
                        _ => unit,
                    };
                    let character = char::from_u32(code).ok_or(Bail)?;
                    if code >= 0x80 {
                        high = 1;
                    }
                    let mut utf8 = [0u8; 4];
                    self.scratch
                        .extend_from_slice(character.encode_utf8(&mut utf8).as_bytes());
                    0
                }
                _ => return Err(Bail),
            };
            if escape != b'u' {
                self.scratch.push(decoded);
            }
            let next = find_special(data, at, &mut high);
            self.scratch.extend_from_slice(&data[at..next]);
            match data.get(next) {
                Some(b'"') => {
                    self.pos = next + 1;
                    break;
                }
                Some(b'\\') => at = next,
                _ => return Err(Bail),
            }
        }
        if high == 0 {
            unsafe { ascii_str(&self.scratch) }
        } else {
            // Escapes add only whole UTF-8 sequences, so the text is valid exactly when its raw parts are.
            unsafe { utf8_str(&self.scratch, self.valid_utf8) }
        }
    }
}

/// The end of a run of ASCII digits starting at `i`.
#[inline]
fn digit_run(data: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = data.get(i) {
        i += 1;
    }
    i
}

/// Exact powers of ten up to the largest one a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The magnitude of a float literal when one IEEE operation gives it exactly (Clinger's fast path), else `None`.
///
/// With every digit (integer and fraction part) read as one integer `m` below 2^53 and a decimal exponent `e`
/// within +-22, both `m` and `10^|e|` are exact doubles, so `m * 10^e` (or `m / 10^-e`) is a single correctly
/// rounded operation: the same double `float()` gives. Prices and short decimals take this path; anything longer
/// goes to the general parser. The ranges are `(start, end)` byte offsets; `exponent` includes its sign.
#[inline]
fn exact_float(
    data: &[u8],
    integer: (usize, usize),
    fraction: (usize, usize),
    exponent: Option<(usize, usize)>,
) -> Option<f64> {
    const LIMIT: u64 = 1 << 53;
    let digits = (integer.1 - integer.0) + (fraction.1 - fraction.0);
    if digits > 16 {
        return None; // could be >= 2^53 (10^16 > 2^53 / 2): the general parser decides
    }
    let mut mantissa: u64 = 0;
    for &digit in data[integer.0..integer.1].iter().chain(&data[fraction.0..fraction.1]) {
        mantissa = mantissa * 10 + u64::from(digit - b'0');
    }
    if mantissa >= LIMIT {
        return None;
    }
    let mut exp10 = -i64::try_from(fraction.1 - fraction.0).ok()?;
    if let Some((sign, end)) = exponent {
        let (negative, digits_start) = match data[sign] {
            b'-' => (true, sign + 1),
            b'+' => (false, sign + 1),
            _ => (false, sign),
        };
        if end - digits_start > 4 {
            return None;
        }
        let mut explicit: i64 = 0;
        for &digit in &data[digits_start..end] {
            explicit = explicit * 10 + i64::from(digit - b'0');
        }
        exp10 += if negative { -explicit } else { explicit };
    }
    #[allow(clippy::cast_precision_loss)] // mantissa < 2^53: exact
    let m = mantissa as f64;
    if mantissa == 0 {
        return Some(0.0);
    }
    let power = usize::try_from(exp10.unsigned_abs()).ok()?;
    let scale = *POW10.get(power)?;
    Some(if exp10 < 0 { m / scale } else { m * scale })
}

/// Four hex digits at `at` (either case, as the stdlib takes them).
fn hex4(data: &[u8], at: usize) -> Result<u32, Bail> {
    let digits = data.get(at..at + 4).ok_or(Bail)?;
    let mut value = 0u32;
    for &digit in digits {
        value = value * 16 + char::from(digit).to_digit(16).ok_or(Bail)?;
    }
    Ok(value)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The first index at or after `i` holding `"`, `\` or a control character (or `data.len()`); ORs the high bits
/// of the bytes passed over into `high` (non-zero: the string is not ASCII).
///
/// Eight bytes at a time: for each byte, `(x - k) & !x & 0x80` has its top bit set when `x < k` and `x` < 0x80
/// (for `k = 1` after xor-ing with a byte value, when `x` equals it). A borrow only carries upwards from a byte
/// that already matched, so the lowest flagged byte is exactly the first match.
#[inline]
fn find_special(data: &[u8], mut i: usize, high: &mut u64) -> usize {
    while let Some(chunk) = data.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = special_bytes(word);
        if found != 0 {
            let skip = found.trailing_zeros() as usize / 8;
            if skip > 0 {
                *high |= word & (u64::MAX >> (64 - 8 * skip)) & HIGH_BITS;
            }
            return i + skip;
        }
        *high |= word & HIGH_BITS;
        i += 8;
    }
    while let Some(&byte) = data.get(i) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            return i;
        }
        *high |= u64::from(byte & 0x80);
        i += 1;
    }
    i
}

/// The top bit of each byte of `word` (little-endian) that is `"`, `\\` or a control character, exact for the
/// lowest one (see [`find_special`]).
#[inline]
fn special_bytes(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    ((quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (word.wrapping_sub(ONES * 0x20) & !word))
        & HIGH_BITS
}

/// A new str from ASCII bytes: allocated at its final size and copied in (no decoding).
#[inline]
unsafe fn ascii_str(text: &[u8]) -> Parsed {
    let len = ffi::Py_ssize_t::try_from(text.len()).map_err(|_| Bail)?;
    let string = Owned::new(unsafe { ffi::PyUnicode_New(len, 127) })?;
    // SAFETY: a new compact ASCII str has room for `len` bytes plus the NUL it already carries.
    unsafe {
        ptr::copy_nonoverlapping(
            text.as_ptr(),
            ffi::PyUnicode_DATA(string.as_ptr()).cast::<u8>(),
            text.len(),
        );
    };
    Ok(string)
}

/// A new str from UTF-8 bytes (not all ASCII); invalid UTF-8 (possible in bytes input) gives up.
///
/// `valid` says the bytes are known to be UTF-8 already (they came out of a `str`), so only bytes input pays for
/// the check. A counting pass gives the str's final length and width, so it is allocated once and filled in one
/// more pass, where `PyUnicode_DecodeUTF8` validates separately and widens its buffer as it meets wider
/// characters. The width comes from the widest lead byte: `C2`/`C3` start U+0080..U+00FF (one byte per
/// character), up to `EF` U+0100..U+FFFF (two), `F0`.. the rest. Both passes go a word at a time over ASCII runs,
/// which are most of the text in API documents, even non-English ones.
unsafe fn utf8_str(text: &[u8], valid: bool) -> Parsed {
    // Characters = bytes - continuation bytes (10xxxxxx); the width comes from the widest byte. Words of ASCII
    // have neither, so only the others are looked at byte by byte.
    let mut continuation = 0usize;
    let mut widest = 0u8;
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let bits = u64::from_le_bytes(word);
        if bits & HIGH_BITS != 0 {
            continuation += (bits & !(bits << 1) & HIGH_BITS).count_ones() as usize;
            widest = chunk.iter().fold(widest, |acc, &byte| acc.max(byte));
        }
    }
    for &byte in chunks.remainder() {
        continuation += usize::from(byte & 0xC0 == 0x80);
        widest = widest.max(byte);
    }
    let count = text.len() - continuation;
    let len = ffi::Py_ssize_t::try_from(count).map_err(|_| Bail)?;
    let (max_char, width) = match widest {
        0xF0.. => (0x10_FFFF, 4),
        0xC4.. => (0xFFFF, 2),
        _ => (0xFF, 1),
    };
    let string = Owned::new(unsafe { ffi::PyUnicode_New(len, max_char) })?;
    // SAFETY: a new str with room for `count` units of `width` bytes; `widen` writes at most `count` units, and
    // returns false (the str is dropped, the stdlib decides) unless `text` was valid UTF-8 of exactly `count`
    // characters that all fit the width.
    let data = unsafe { ffi::PyUnicode_DATA(string.as_ptr()) };
    let done = unsafe {
        match (width, valid) {
            (1, true) => widen::<u8, false>(text, data.cast(), count),
            (1, false) => widen::<u8, true>(text, data.cast(), count),
            (2, true) => widen::<u16, false>(text, data.cast(), count),
            (2, false) => widen::<u16, true>(text, data.cast(), count),
            (_, true) => widen::<u32, false>(text, data.cast(), count),
            (_, false) => widen::<u32, true>(text, data.cast(), count),
        }
    };
    if done {
        Ok(string)
    } else {
        Err(Bail)
    }
}

/// A code unit of a str's storage (`u8`, `u16` or `u32`), built from a code point known to fit.
trait Unit: Copy {
    /// Whether the code point fits one unit.
    fn fits(code: u32) -> bool;
    fn from_code(code: u32) -> Self;
}

impl Unit for u8 {
    #[inline]
    fn fits(code: u32) -> bool {
        code <= 0xFF
    }
    #[inline]
    fn from_code(code: u32) -> Self {
        #[allow(clippy::cast_possible_truncation)] // checked by `fits` first
        let unit = code as u8;
        unit
    }
}

impl Unit for u16 {
    #[inline]
    fn fits(code: u32) -> bool {
        code <= 0xFFFF
    }
    #[inline]
    fn from_code(code: u32) -> Self {
        #[allow(clippy::cast_possible_truncation)] // checked by `fits` first
        let unit = code as u16;
        unit
    }
}

impl Unit for u32 {
    #[inline]
    fn fits(_code: u32) -> bool {
        true
    }
    #[inline]
    fn from_code(code: u32) -> Self {
        code
    }
}

/// Decode UTF-8 `text` into `out`, which has room for `count` units of `U`; true when `text` held exactly `count`
/// characters, all of which fit `U`. With `CHECK` every sequence is validated as `str(b, "utf-8")` would (no
/// overlong forms, no surrogates, nothing past U+10FFFF) and a bad one returns false; without it `text` must be
/// UTF-8 already (the bytes of a str). Runs of ASCII are found a word at a time and widened in one tight loop.
///
/// SAFETY: `out` must be writable for `count` units. Writes never pass `count` and reads stay inside `text`
/// (checked indexing), whatever the bytes are.
#[inline]
unsafe fn widen<U: Unit, const CHECK: bool>(text: &[u8], out: *mut U, count: usize) -> bool {
    let mut i = 0;
    let mut o = 0;
    loop {
        let run = &text[i..ascii_end(text, i)];
        if run.len() > count - o {
            return false;
        }
        for (k, &byte) in run.iter().enumerate() {
            unsafe { out.add(o + k).write(U::from_code(u32::from(byte))) };
        }
        i += run.len();
        o += run.len();
        let Some(&lead) = text.get(i) else {
            return o == count;
        };
        let (code, size) = match lead {
            0xC2..=0xDF => (u32::from(lead & 0x1F), 2),
            0xE0..=0xEF => (u32::from(lead & 0x0F), 3),
            0xF0..=0xF4 => (u32::from(lead & 0x07), 4),
            _ => return false, // a stray continuation byte, an overlong C0/C1 lead, or F5..FF
        };
        let Some(rest) = text.get(i + 1..i + size) else {
            return false;
        };
        let mut code = code;
        for &byte in rest {
            if CHECK && byte & 0xC0 != 0x80 {
                return false;
            }
            code = (code << 6) | u32::from(byte & 0x3F);
        }
        if CHECK {
            // The shortest form only, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
            let least = [0, 0, 0x80, 0x800, 0x1_0000][size];
            if code < least || (0xD800..=0xDFFF).contains(&code) || code > 0x10_FFFF {
                return false;
            }
        }
        if !U::fits(code) || o == count {
            return false;
        }
        unsafe { out.add(o).write(U::from_code(code)) };
        i += size;
        o += 1;
    }
}

/// The first index at or after `i` holding a byte >= 0x80 (or `text.len()`), a word at a time.
#[inline]
fn ascii_end(text: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = text.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let high = u64::from_le_bytes(word) & HIGH_BITS;
        if high != 0 {
            return i + high.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while text.get(i).is_some_and(|&byte| byte < 0x80) {
        i += 1;
    }
    i
}

/// Object keys seen before, by content: one slot per hash, the newer key wins a collision. A hit returns the
/// same `str` object, whose CPython hash is already computed, so the dict insert does not hash it again.
struct KeyCache {
    slots: Option<Box<[KeySlot]>>,
    /// The decoder's element stack between calls (always empty here).
    stack: Vec<*mut ffi::PyObject>,
}

#[derive(Clone, Copy)]
struct KeySlot {
    hash: u64,
    /// An owned reference to an ASCII str, or null.
    key: *mut ffi::PyObject,
    /// For a key stored by [`KeyCache::get_short`]: its bytes, zero-padded, and its length plus one (else 0).
    words: [u64; 2],
    short: usize,
}

// SAFETY: the slots are only read or written while the mutex is held *and* the GIL is held (every caller runs
// inside a `#[pyfunction]`); the str objects are immutable.
unsafe impl Send for KeyCache {}

static KEY_CACHE: Mutex<KeyCache> = Mutex::new(KeyCache {
    slots: None,
    stack: Vec::new(),
});

impl KeyCache {
    /// The str for this ASCII key (a new reference).
    unsafe fn get(&mut self, key: &[u8]) -> Parsed {
        let slots = self
            .slots
            .get_or_insert_with(|| vec![EMPTY_SLOT; KEY_SLOTS].into_boxed_slice());
        let hash = key_hash(key);
        #[allow(clippy::cast_possible_truncation)] // only the low bits pick the slot
        let slot = &mut slots[(hash as usize) & (KEY_SLOTS - 1)];
        if slot.hash == hash && !slot.key.is_null() {
            // SAFETY: a live ASCII str owned by the cache: one byte per character at PyUnicode_DATA.
            let same = unsafe {
                let len = usize::try_from(ffi::PyUnicode_GET_LENGTH(slot.key)).unwrap_or(usize::MAX);
                len == key.len()
                    && same_bytes(
                        std::slice::from_raw_parts(ffi::PyUnicode_DATA(slot.key).cast::<u8>(), len),
                        key,
                    )
            };
            if same {
                unsafe { ffi::Py_INCREF(slot.key) };
                return Owned::new(slot.key);
            }
        }
        let string = unsafe { ascii_str(key) }?;
        unsafe {
            ffi::Py_INCREF(string.as_ptr());
            if !slot.key.is_null() {
                ffi::Py_DECREF(slot.key);
            }
        }
        *slot = KeySlot {
            hash,
            key: string.as_ptr(),
            words: [0; 2],
            short: 0,
        };
        Ok(string)
    }

    /// The str for a short ASCII key given as two zero-padded words (a new reference): the slot is picked and
    /// compared by the words alone, so a hit reads nothing but the slot.
    #[inline]
    unsafe fn get_short(&mut self, words: [u64; 2], len: usize, key: &[u8]) -> Parsed {
        const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
        let slots = self
            .slots
            .get_or_insert_with(|| vec![EMPTY_SLOT; KEY_SLOTS].into_boxed_slice());
        let mixed = (words[0] ^ words[1].rotate_left(29) ^ len as u64).wrapping_mul(MULTIPLIER);
        let hash = mixed ^ (mixed >> 32);
        #[allow(clippy::cast_possible_truncation)] // only the low bits pick the slot
        let slot = &mut slots[(hash as usize) & (KEY_SLOTS - 1)];
        if slot.short == len + 1 && slot.words == words && !slot.key.is_null() {
            // SAFETY: a live str owned by the cache.
            unsafe { ffi::Py_INCREF(slot.key) };
            return Owned::new(slot.key);
        }
        let string = unsafe { ascii_str(key) }?;
        unsafe {
            ffi::Py_INCREF(string.as_ptr());
            if !slot.key.is_null() {
                ffi::Py_DECREF(slot.key);
            }
        }
        *slot = KeySlot {
            hash,
            key: string.as_ptr(),
            words,
            short: len + 1,
        };
        Ok(string)
    }
}

const EMPTY_SLOT: KeySlot = KeySlot {
    hash: 0,
    key: ptr::null_mut(),
    words: [0; 2],
    short: 0,
};

/// `a == b` for short slices of equal length, a word at a time (a libc `memcmp` call costs more than the work).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut left = a.chunks_exact(8);
    let mut right = b.chunks_exact(8);
    for (x, y) in (&mut left).zip(&mut right) {
        if x != y {
            return false;
        }
    }
    left.remainder().iter().zip(right.remainder()).all(|(x, y)| x == y)
}

/// A quick multiplicative hash of a short key, eight bytes at a time.
#[inline]
fn key_hash(key: &[u8]) -> u64 {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hash = (key.len() as u64).wrapping_mul(MULTIPLIER);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(MULTIPLIER)
            .rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER);
    }
    hash ^ (hash >> 29)
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
    fn special_bytes_are_found_exactly() {
        // Every position of every kind of stop byte, in runs longer and shorter than a word, with and without
        // non-ASCII bytes before it.
        for len in 0..20 {
            for stop in [b'"', b'\\', 0x00, 0x1f] {
                for filler in [b'a', 0xc3, 0x7f, 0x20, 0x21] {
                    let mut data = vec![filler; len];
                    data.push(stop);
                    data.extend_from_slice(b"\"tail");
                    let mut high = 0;
                    assert_eq!(find_special(&data, 0, &mut high), len, "{len} {stop} {filler}");
                    assert_eq!(high != 0, filler >= 0x80 && len > 0, "{len} {stop} {filler}");
                }
            }
        }
        let mut high = 0;
        assert_eq!(find_special(b"abcdefghijkl", 0, &mut high), 12);
        assert_eq!(high, 0);
    }

    #[test]
    fn exact_floats_round_like_the_general_parser() {
        for text in [
            "0.1",
            "123.45",
            "1e22",
            "9007199254740991.0",
            "4.35",
            "0.000001",
            "1234567890.12345",
            "5e-22",
            "7e+3",
            "0.0",
            "0e9999",
            "1.5e-3",
        ] {
            let parsed: f64 = text.parse().unwrap_or(f64::NAN);
            let bytes = text.as_bytes();
            let dot = bytes.iter().position(|&b| b == b'.');
            let e = bytes.iter().position(|&b| b == b'e' || b == b'E');
            let int_end = dot.or(e).unwrap_or(bytes.len());
            let fraction = dot.map_or((int_end, int_end), |d| (d + 1, e.unwrap_or(bytes.len())));
            let exponent = e.map(|e| (e + 1, bytes.len()));
            let exact = exact_float(bytes, (0, int_end), fraction, exponent);
            assert!(exact.is_none_or(|value| value.to_bits() == parsed.to_bits()), "{text}");
        }
        // Beyond 2^53 or 10^22 the general parser decides.
        assert!(exact_float(b"9007199254740993", (0, 16), (16, 16), None).is_none());
        assert!(exact_float(b"1e23", (0, 1), (1, 1), Some((2, 4))).is_none());
    }

    #[test]
    fn key_hashes_differ() {
        assert_ne!(key_hash(b"id"), key_hash(b"href"));
        assert_ne!(key_hash(b"abcdefgh"), key_hash(b"abcdefgh\0"));
        assert_ne!(key_hash(b""), key_hash(b"\0"));
    }

    #[test]
    fn decodes_like_the_stdlib() {
        Python::initialize();
        Python::attach(|py| -> PyResult<()> {
            let json = py.import("json")?;
            for text in [
                "{\"a\": [1, 2.5, null, true], \"a\": {}, \"b\\n\": \"\\u00e9\\ud83d\\ude00\"}",
                "\"\\ud800\"",
                "[1e400, -0.0, NaN, -Infinity, 123456789012345678901234567890]",
                "-0",
                "[[], {}, [[1]], \"caf\u{e9}\"]",
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
