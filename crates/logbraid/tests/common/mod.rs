//! What several test programs share: a file of bare messages, and the
//! check that each thread's `t<k> <i>` records arrived once each, in order.

use std::path::Path;

use logbraid::layout::{Layout, LayoutSpec};
use logbraid::sink::RollingFileBuilder;

/// The `%(message)s` layout: a file holds exactly what was logged.
pub fn message_layout() -> Box<dyn Layout> {
    LayoutSpec::parse("%(message)s", None).unwrap().build(false)
}

/// A rolling file of bare messages at `path`.
pub fn message_file(path: impl AsRef<Path>) -> RollingFileBuilder {
    logbraid::sink::RollingFile::builder(path.as_ref()).layout(message_layout())
}

/// Checks that the `t<k> <i>` lines of `threads` threads hold each
/// thread's records once, in order, without a gap; returns how many each
/// thread has.
pub fn thread_counts(text: &str, threads: usize) -> Vec<u64> {
    let mut next = vec![0u64; threads];
    for line in text.lines() {
        let (t, i) = line.split_once(' ').unwrap();
        let t: usize = t[1..].parse().unwrap();
        assert_eq!(i.parse::<u64>().unwrap(), next[t], "thread {t}");
        next[t] += 1;
    }
    next
}
