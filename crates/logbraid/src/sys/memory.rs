//! Mapping memory in ahead of use.

/// Asks the kernel to map in every whole page of `[base, base + len)` for
/// writing, leaving its content as it is (`MADV_POPULATE_WRITE`, Linux
/// 5.14 and later). False where the kernel cannot: the pages are then
/// mapped in by their first write, as usual.
pub(crate) fn populate_write(base: *mut u8, len: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => return false,
        };
        let start = (base as usize).next_multiple_of(page);
        let end = (base as usize + len) / page * page;
        if end <= start {
            return true;
        }
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        // SAFETY: the range lies inside an allocation the caller owns;
        // MADV_POPULATE_WRITE only faults its pages in, keeping their
        // content, so no byte any thread reads changes.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, MADV_POPULATE_WRITE) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (base, len);
        false
    }
}
