// SPDX-License-Identifier: MIT
//! Status dispatch: status code -> index of the first handler that lists it.
//!
//! The first handler listed for a code wins, and a new handler set replaces the table
//! rather than merging into it, so a table is built once per handler set and then only read.
//! The pure-Python twin is `DispatchTable` in `python/aiorequestful/_native_py.py`.

use crate::error::{KernelError, KernelResult};

/// The smallest status code a table accepts (three digits, RFC 9110 §15).
pub const MIN_STATUS: u16 = 100;
/// The largest status code a table accepts.
pub const MAX_STATUS: u16 = 999;

const SLOTS: usize = (MAX_STATUS - MIN_STATUS + 1) as usize;
const EMPTY: u32 = u32::MAX;

/// Validate one status code.
///
/// # Errors
/// [`KernelError::InvalidStatus`] outside `100..=999`.
pub fn check_status(code: i64) -> KernelResult<u16> {
    match u16::try_from(code) {
        Ok(status) if (MIN_STATUS..=MAX_STATUS).contains(&status) => Ok(status),
        _ => Err(KernelError::InvalidStatus(code.to_string())),
    }
}

/// A finished status -> handler-index table; lookups are one array read.
#[derive(Clone, PartialEq, Eq)]
pub struct DispatchTable {
    /// `slots[code - 100]` is the handler index, or `EMPTY`.
    slots: Box<[u32; SLOTS]>,
    /// How many codes are claimed.
    len: usize,
}

impl Default for DispatchTable {
    fn default() -> Self {
        Self::new()
    }
}

impl DispatchTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self {
            slots: Box::new([EMPTY; SLOTS]),
            len: 0,
        }
    }

    /// Build a table from handler code lists, in handler order.
    ///
    /// # Errors
    /// [`KernelError::InvalidStatus`] for the first code outside `100..=999`.
    pub fn from_groups<G, C>(groups: G) -> KernelResult<Self>
    where
        G: IntoIterator<Item = C>,
        C: IntoIterator<Item = i64>,
    {
        let mut table = Self::new();
        for (index, codes) in groups.into_iter().enumerate() {
            for code in codes {
                table.claim(check_status(code)?, index);
            }
        }
        Ok(table)
    }

    /// Give `status` to handler `index` unless an earlier handler already claimed it (first listed wins).
    /// Indexes beyond `u32::MAX - 1` cannot occur in practice (one per handler object) and are ignored.
    pub fn claim(&mut self, status: u16, index: usize) {
        let Ok(index) = u32::try_from(index) else {
            return;
        };
        if index == EMPTY {
            return;
        }
        if let Some(slot) = Self::slot(status).and_then(|i| self.slots.get_mut(i)) {
            if *slot == EMPTY {
                *slot = index;
                self.len += 1;
            }
        }
    }

    fn slot(status: u16) -> Option<usize> {
        status.checked_sub(MIN_STATUS).map(usize::from)
    }

    /// The handler index for `status`, or `None` when no handler claims it (any int is a valid question).
    #[must_use]
    pub fn lookup(&self, status: i64) -> Option<usize> {
        let status = u16::try_from(status).ok()?;
        let slot = *self.slots.get(Self::slot(status)?)?;
        (slot != EMPTY).then_some(slot as usize)
    }

    /// `(code, index)` pairs in ascending code order.
    pub fn entries(&self) -> impl Iterator<Item = (u16, usize)> + '_ {
        (MIN_STATUS..=MAX_STATUS)
            .zip(self.slots.iter())
            .filter(|(_, slot)| **slot != EMPTY)
            .map(|(code, slot)| (code, *slot as usize))
    }

    /// How many codes are claimed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no code is claimed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for DispatchTable {
    /// `DispatchTable({200: 0, 401: 1})`, the twin's `repr`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DispatchTable({")?;
        for (i, (code, index)) in self.entries().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{code}: {index}")?;
        }
        f.write_str("})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(groups: &[&[i64]]) -> KernelResult<DispatchTable> {
        DispatchTable::from_groups(groups.iter().map(|codes| codes.iter().copied()))
    }

    #[test]
    fn first_listed_handler_wins() -> KernelResult<()> {
        let table = build(&[&[401], &[429], &[400, 401, 404, 429]])?;
        assert_eq!(table.lookup(401), Some(0));
        assert_eq!(table.lookup(429), Some(1));
        assert_eq!(table.lookup(400), Some(2));
        assert_eq!(table.lookup(404), Some(2));
        assert_eq!(table.lookup(200), None);
        assert_eq!(table.len(), 4);
        assert_eq!(
            table.entries().collect::<Vec<_>>(),
            vec![(400, 2), (401, 0), (404, 2), (429, 1)]
        );
        assert_eq!(format!("{table:?}"), "DispatchTable({400: 2, 401: 0, 404: 2, 429: 1})");
        Ok(())
    }

    #[test]
    fn duplicates_within_a_handler_count_once() -> KernelResult<()> {
        let table = build(&[&[500, 500, 503], &[], &[500]])?;
        assert_eq!(table.len(), 2);
        assert_eq!(table.lookup(500), Some(0));
        Ok(())
    }

    #[test]
    fn empty_table() -> KernelResult<()> {
        let table = build(&[])?;
        assert!(table.is_empty());
        assert_eq!(format!("{table:?}"), "DispatchTable({})");
        assert_eq!(table, DispatchTable::default());
        Ok(())
    }

    #[test]
    fn bounds() -> KernelResult<()> {
        let table = build(&[&[100, 999]])?;
        assert_eq!(table.lookup(100), Some(0));
        assert_eq!(table.lookup(999), Some(0));
        for status in [99, 1000, 0, -1, i64::MIN, i64::MAX, 65_536 + 200] {
            assert_eq!(table.lookup(status), None, "{status}");
        }
        for code in [99, 1000, 0, -200, i64::MAX] {
            assert_eq!(check_status(code), Err(KernelError::InvalidStatus(code.to_string())));
        }
        assert_eq!(
            build(&[&[200], &[404, 42]]).err(),
            Some(KernelError::InvalidStatus("42".into()))
        );
        Ok(())
    }
}
