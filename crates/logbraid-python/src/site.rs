//! Python call sites made `'static`, as a logbraid macro's are: a
//! `Logger` call whose site (logger name, file, function, module, line)
//! is here queues the address of its [`Site`] instead of copies of the
//! five strings, and the writer reads them from there.
//!
//! A site is made once per process and never freed, like the names of a
//! `logging` registry's loggers; each string is kept once whatever number
//! of sites use it. The table is bounded ([`MAX_SITES`], [`MAX_BYTES`]): a
//! program that makes code without end (`exec` of ever new sources) fills
//! it, and its further sites take the first way, copying their strings,
//! with the same record written.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use logbraid::macros::Site;

use crate::cpython::CodeNames;

/// Most sites made static.
const MAX_SITES: usize = 1 << 16;
/// Most bytes of strings kept for them.
const MAX_BYTES: usize = 16 << 20;

/// Site key: the addresses of its kept strings, and its line.
type Key = (usize, usize, usize, usize, u32);

#[derive(Default)]
struct Table {
    strs: HashSet<&'static str>,
    bytes: usize,
    sites: HashMap<Key, &'static Site>,
}

impl Table {
    fn keep(&mut self, s: &str) -> Option<&'static str> {
        if let Some(&kept) = self.strs.get(s) {
            return Some(kept);
        }
        if self.bytes + s.len() > MAX_BYTES {
            return None;
        }
        self.bytes += s.len();
        let kept: &'static str = Box::leak(s.into());
        self.strs.insert(kept);
        Some(kept)
    }
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// The static site of a record of logger `target` at `line` of the code
/// `names` describes. `None` when the table is full, or held by another
/// thread at this instant (never waited for: a fork may have left it held
/// in the child for good); the caller then copies the strings.
pub(crate) fn of(target: &str, names: &CodeNames, line: u32) -> Option<&'static Site> {
    let mut guard = TABLE.try_lock().ok()?;
    let table = guard.get_or_insert_with(Table::default);
    let target = table.keep(target)?;
    let file = table.keep(&names.file)?;
    let function = table.keep(&names.function)?;
    let module = table.keep(&names.module)?;
    let key = (
        target.as_ptr() as usize,
        file.as_ptr() as usize,
        function.as_ptr() as usize,
        module.as_ptr() as usize,
        line,
    );
    if let Some(&site) = table.sites.get(&key) {
        return Some(site);
    }
    if table.sites.len() >= MAX_SITES {
        return None;
    }
    let site: &'static Site = Box::leak(Box::new(Site {
        target,
        module,
        file,
        line,
        format: "",
        function: Some(function),
    }));
    table.sites.insert(key, site);
    Some(site)
}
