//! What the demos check: each source's records of a run are in the files
//! once each, in the order they were logged.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;

use anyhow::Context;
use logbraid::read::read_decompressed;

/// Counts, per source, the records found against the records expected.
#[derive(Debug)]
pub(crate) struct Tally<K> {
    seen: HashMap<K, Vec<bool>>,
    next: HashMap<K, u64>,
    pub(crate) found: u64,
    pub(crate) duplicated: u64,
    pub(crate) out_of_order: u64,
    pub(crate) per_source: HashMap<K, u64>,
}

impl<K: Hash + Eq + Clone> Tally<K> {
    /// Expects records `0..n` of each source.
    pub(crate) fn new(expected: impl IntoIterator<Item = (K, u64)>) -> Self {
        Tally {
            seen: expected
                .into_iter()
                .map(|(k, n)| (k, vec![false; n as usize]))
                .collect(),
            next: HashMap::new(),
            found: 0,
            duplicated: 0,
            out_of_order: 0,
            per_source: HashMap::new(),
        }
    }

    /// Reads `files` (oldest first) and counts every line that `parse`
    /// turns into a source and a record number.
    pub(crate) fn read(
        &mut self,
        files: &[PathBuf],
        mut parse: impl FnMut(&str) -> Option<(K, u64)>,
    ) -> anyhow::Result<()> {
        for f in files {
            let bytes =
                read_decompressed(f).with_context(|| format!("cannot read {}", f.display()))?;
            for line in bytes.split(|&b| b == b'\n') {
                let Some((k, i)) = std::str::from_utf8(line).ok().and_then(&mut parse) else {
                    continue;
                };
                self.see(k, i);
            }
        }
        Ok(())
    }

    /// Counts record `i` of source `k`; ignores records not expected.
    fn see(&mut self, k: K, i: u64) {
        let Some(slot) = self.seen.get_mut(&k).and_then(|s| s.get_mut(i as usize)) else {
            return;
        };
        self.found += 1;
        if std::mem::replace(slot, true) {
            self.duplicated += 1;
        }
        *self.per_source.entry(k.clone()).or_insert(0) += 1;
        let n = self.next.entry(k).or_insert(0);
        if i != *n {
            self.out_of_order += 1;
        }
        *n = i + 1;
    }

    /// Expected records not found.
    pub(crate) fn missing(&self) -> u64 {
        self.seen.values().flatten().filter(|s| !**s).count() as u64
    }

    /// Every expected record found once, in order.
    pub(crate) fn clean(&self) -> bool {
        self.missing() == 0 && self.duplicated == 0 && self.out_of_order == 0
    }
}

/// Writes the demo's last line, `result OK` or `result FAILED`, and gives
/// the exit code that goes with it.
pub(crate) fn verdict(
    out: &mut impl std::io::Write,
    ok: bool,
) -> anyhow::Result<std::process::ExitCode> {
    writeln!(out, "  result      {}", if ok { "OK" } else { "FAILED" })?;
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}
