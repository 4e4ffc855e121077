//! What the tests of `/metrics`, `/health` and `/ready` share: plain
//! HTTP/1 requests over a socket, and samples read from a scrape.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `GET path` on `addr`: the status and the body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

/// Sends `raw` to `addr` and reads the answer to its end: the status and
/// the body (0 and nothing when the server closed without an answer).
pub fn request(addr: &str, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    let text = String::from_utf8_lossy(&back).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample `series` (name and labels, as exposed) in
/// `/metrics`; panics when it is not there.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

/// Polls `path` until its status is `want`, for 30 s at most; the last
/// answer.
pub fn wait_for_status(addr: &str, path: &str, want: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = get(addr, path);
        if got.0 == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The metrics a table of the README's section `heading` lists (rows
/// that begin with a `` `logbraid_…` `` cell, names in it separated by
/// `, `): each name without labels and without `_total`.
pub fn readme_metrics(heading: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading} in the README"));
    section
        .lines()
        .take_while(|l| !l.starts_with("## ") && !l.starts_with("### "))
        .filter_map(|l| l.strip_prefix("| `logbraid_"))
        .flat_map(|l| l.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|n| {
            let n = n.trim_matches('`').trim_start_matches("logbraid_");
            let n = n.split('{').next().unwrap();
            format!("logbraid_{}", n.strip_suffix("_total").unwrap_or(n))
        })
        .collect()
}

/// Those of `names` that `scrape` does not describe with a `# TYPE` line.
pub fn missing_from(names: &[String], scrape: &str) -> Vec<String> {
    names
        .iter()
        .filter(|name| !scrape.contains(&format!("# TYPE {name} ")))
        .cloned()
        .collect()
}
