//! The collector benchmark's results live in a marked section of
//! `RESULTS.md`: the collector bench replaces that section, and the main
//! bench, which rewrites the rest of the file, carries it over.

const BEGIN: &str = "<!-- collector results: written by the collector bench -->";
const END: &str = "<!-- end of collector results -->";

/// The marked section of `doc`, markers included.
fn find(doc: &str) -> Option<&str> {
    let start = doc.find(BEGIN)?;
    let end = doc[start..].find(END)? + start + END.len();
    Some(&doc[start..end])
}

/// What the marked section of `doc` holds, markers excluded.
#[allow(dead_code)] // used by the main bench only
pub(crate) fn body(doc: &str) -> Option<&str> {
    find(doc).map(|s| s[BEGIN.len()..s.len() - END.len()].trim())
}

/// `doc` with its marked section replaced by `body` (appended when there
/// is none).
pub(crate) fn replace(doc: &str, body: &str) -> String {
    let section = format!("{BEGIN}\n\n{}\n\n{END}", body.trim());
    match find(doc) {
        Some(old) => doc.replacen(old, &section, 1),
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}
