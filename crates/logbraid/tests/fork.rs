//! A logger started before `fork()` is orphaned in the child: its writer
//! thread stayed in the parent. The child must not hang on it (flush,
//! shutdown, the exit hook) and must not write into its queues; what it
//! logs there is counted as dropped. The parent goes on unaffected.

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::{Builder, Callsite, Level};

#[test]
fn a_forked_child_neither_hangs_nor_writes_through_the_parents_logger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (logger, guard) = Builder::new()
        .level("trace")
        .children(false)
        .file(
            RollingFile::builder(&path)
                .layout(LayoutSpec::parse("%(message)s", None).unwrap().build(false)),
        )
        .unwrap()
        .build()
        .unwrap();
    let site = Callsite::new(Level::Info, "fork");
    for i in 0..10 {
        logger.log_with(&site, format_args!("parent {i}"), &mut |_| {});
    }
    logger.flush();

    // SAFETY: the child only logs, flushes, reads counters and leaves with
    // _exit; the pipeline's fork handler is async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        for i in 0..5 {
            logger.log_with(&site, format_args!("child {i}"), &mut |_| {});
        }
        logger.flush();
        logger.shutdown();
        logbraid::flush_all();
        let st = logger.stats();
        // 10 logged by the parent before the fork, 5 dropped here.
        let code = if st.dropped == 5 && st.logged == 15 {
            0
        } else {
            1
        };
        // SAFETY: ends the child without running the parent's exit hooks
        // twice; always sound.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child did not exit: {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child counted wrongly");

    for i in 10..20 {
        logger.log_with(&site, format_args!("parent {i}"), &mut |_| {});
    }
    drop(guard);
    let text = std::fs::read_to_string(&path).unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("parent {i}")).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
    assert_eq!(logger.stats().dropped, 0);
}
