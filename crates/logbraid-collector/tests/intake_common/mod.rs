//! Runs real Python 3 and real `logger` for the intake tests.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// Runs `python3 -c script` and returns what it wrote to stdout.
pub fn python(script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("python3 must be installed to run these tests");
    assert!(
        out.status.success(),
        "python3 failed: {}\n--- script ---\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a script that prints one JSON document.
pub fn python_json(script: &str) -> serde_json::Value {
    let out = python(script);
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// Bytes from the lower-case hex that Python's `bytes.hex()` writes.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// A JSON string member as bytes from hex.
pub fn hex_of(v: &serde_json::Value) -> Vec<u8> {
    unhex(v.as_str().expect("hex string"))
}
