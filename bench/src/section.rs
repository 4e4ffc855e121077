//! Benchmarks other than the main one keep their results in marked sections
//! of `RESULTS.md`, one per name: the collector bench (`collector`) and the
//! Python bench (`python`, written by `bench/python/bench.py` with the same
//! markers and rule) each replace their own section, and the main bench,
//! which rewrites the rest of the file, carries every section over.
//!
//! The markers of section `name` are
//! `<!-- {name} results: written by the {name} bench -->` and
//! `<!-- end of {name} results -->`.

/// The sections the main bench carries over, in the order they are appended
/// to a file that has none of them.
#[allow(dead_code)] // used by the main bench only
pub(crate) const NAMES: [&str; 2] = ["collector", "python"];

fn begin(name: &str) -> String {
    format!("<!-- {name} results: written by the {name} bench -->")
}

fn end(name: &str) -> String {
    format!("<!-- end of {name} results -->")
}

/// Where the section `name` of `doc` is, markers included.
fn find(doc: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let (begin, end) = (begin(name), end(name));
    let start = doc.find(&begin)?;
    let stop = doc[start..].find(&end)? + start + end.len();
    Some(start..stop)
}

/// What the section `name` of `doc` holds, markers excluded.
#[allow(dead_code)] // used by the main bench only
pub(crate) fn body<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let range = find(doc, name)?;
    Some(doc[range.start + begin(name).len()..range.end - end(name).len()].trim())
}

/// `doc` with its section `name` replaced by `body` (appended when there is
/// none).
pub(crate) fn replace(doc: &str, name: &str, body: &str) -> String {
    let section = format!("{}\n\n{}\n\n{}", begin(name), body.trim(), end(name));
    match find(doc, name) {
        Some(range) => format!("{}{section}{}", &doc[..range.start], &doc[range.end..]),
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

/// `fresh` with every section of `old` carried over, in the order they
/// appear in `old`.
#[allow(dead_code)] // used by the main bench only
pub(crate) fn carry_over(old: &str, fresh: &str) -> String {
    let mut kept: Vec<(usize, &str, &str)> = NAMES
        .iter()
        .filter_map(|&name| {
            let at = find(old, name)?.start;
            Some((at, name, body(old, name)?))
        })
        .collect();
    kept.sort_by_key(|&(at, _, _)| at);
    kept.into_iter()
        .fold(fresh.to_string(), |doc, (_, name, body)| {
            replace(&doc, name, body)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_markers_are_unchanged() {
        assert_eq!(
            begin("collector"),
            "<!-- collector results: written by the collector bench -->"
        );
        assert_eq!(end("collector"), "<!-- end of collector results -->");
        assert_eq!(
            begin("python"),
            "<!-- python results: written by the python bench -->"
        );
        assert_eq!(end("python"), "<!-- end of python results -->");
    }

    #[test]
    fn sections_are_replaced_and_carried_over_independently() {
        let doc = replace("# Results\n\ntext\n", "collector", "## C\n\none");
        let doc = replace(&doc, "python", "## P\n\ntwo");
        assert_eq!(body(&doc, "collector"), Some("## C\n\none"));
        assert_eq!(body(&doc, "python"), Some("## P\n\ntwo"));
        let doc = replace(&doc, "collector", "## C\n\nthree");
        assert_eq!(body(&doc, "collector"), Some("## C\n\nthree"));
        assert_eq!(body(&doc, "python"), Some("## P\n\ntwo"));
        assert!(doc.find("## C").unwrap() < doc.find("## P").unwrap());

        let fresh = carry_over(&doc, "# Results\n\nnew text\n");
        assert!(fresh.starts_with("# Results\n\nnew text\n"));
        assert_eq!(body(&fresh, "collector"), Some("## C\n\nthree"));
        assert_eq!(body(&fresh, "python"), Some("## P\n\ntwo"));
        assert!(fresh.find("## C").unwrap() < fresh.find("## P").unwrap());
        // Carrying over twice changes nothing.
        assert_eq!(carry_over(&fresh, &fresh), fresh);
        assert_eq!(carry_over("", "x\n"), "x\n");
    }
}
