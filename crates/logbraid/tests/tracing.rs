//! The `tracing` layer: event and span fields become record fields.
#![cfg(feature = "tracing")]

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::Builder;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn events_and_span_fields_become_record_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let file = RollingFile::builder(&path)
        .layout(LayoutSpec::Json.build(false))
        .build()
        .unwrap();
    let (logger, guard) = Builder::new()
        .level("info,noisy=warn")
        .sink(file)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(logbraid::bridge::tracing::layer(logger));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", id = 42u64, path = "/x");
        let _e = span.enter();
        tracing::info!(
            user = "ada",
            ok = true,
            ratio = 0.5,
            n = -3i64,
            "served {} bytes",
            512
        );
        tracing::debug!("filtered out");
        tracing::info!(target: "noisy", "filtered by target");
        tracing::warn!(target: "noisy", err = ?std::io::ErrorKind::NotFound, "kept");
    });
    drop(guard);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let a = &lines[0];
    assert_eq!(a["msg"], "served 512 bytes");
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["target"], "tracing");
    assert_eq!(
        a["fields"],
        serde_json::json!({"user": "ada", "ok": true, "ratio": 0.5, "n": -3, "id": 42, "path": "/x"})
    );
    let b = &lines[1];
    assert_eq!(b["level"], "WARN");
    assert_eq!(b["target"], "noisy");
    assert_eq!(
        b["fields"],
        serde_json::json!({"err": "NotFound", "id": 42, "path": "/x"})
    );
}
