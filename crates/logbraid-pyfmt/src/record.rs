//! Attributes `logging.LogRecord` derives from others.

/// `LogRecord.filename`: the last component of a path (after `/` or `\`,
/// so that paths from Windows hosts read the same).
pub fn filename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// `LogRecord.module`: the file name without its extension, as
/// `os.path.splitext` cuts it (leading dots do not start an extension:
/// `.bashrc` stays `.bashrc`).
pub fn module(path: &str) -> &str {
    let name = filename(path);
    let rest = name.trim_start_matches('.');
    let lead = name.len() - rest.len();
    match rest.rfind('.') {
        Some(dot) => &name[..lead + dot],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_and_filename_follow_logging() {
        for (path, file, module) in [
            ("/srv/app/orders.py", "orders.py", "orders"),
            ("C:\\proj\\tool.tar.gz", "tool.tar.gz", "tool.tar"),
            ("/home/u/.bashrc", ".bashrc", ".bashrc"),
            ("noext", "noext", "noext"),
            ("a/..b.c", "..b.c", "..b"),
            ("", "", ""),
        ] {
            assert_eq!(super::filename(path), file);
            assert_eq!(super::module(path), module);
        }
    }
}
