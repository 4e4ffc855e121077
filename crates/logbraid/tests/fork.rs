//! A logger started before `fork()` is orphaned in the child: its writer
//! thread stayed in the parent. The child must not hang on it (flush,
//! shutdown, the exit hook) and must not write into its queues; what it
//! logs there is counted as dropped. The parent goes on unaffected.

mod common;

use common::{message_file, thread_counts};
use logbraid::{Builder, Callsite, Level};

#[test]
fn a_forked_child_neither_hangs_nor_writes_through_the_parents_logger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (logger, guard) = Builder::new()
        .level("trace")
        .children(false)
        .file(message_file(&path))
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

/// Regression: a lock another thread held at the moment of `fork()` stayed
/// locked in the child, whose first record then hung it. Here one thread
/// renames the process in a loop (taking the source and name locks most of
/// the time) and four log through a pipeline whose writer reads the source
/// per batch, while the main thread forks 300 times. Every child builds a
/// pipeline of its own, logs one record and leaves; none may hang.
#[test]
fn forking_while_threads_log_and_rename_never_hangs_the_child() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const FORKS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let (logger, guard) = Builder::new()
        .level("info")
        .children(false)
        .file(message_file(dir.path().join("parent.log")))
        .unwrap()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (logger, stop) = (logger.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let site = Callsite::new(Level::Info, "spin");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                logger.log_with(&site, format_args!("t{t} {i}"), &mut |_| {});
                i += 1;
                if i % 64 == 0 {
                    // Paced, so that the forks, not the file, are the work.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            i
        }));
    }
    let renamer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                logbraid::set_process_name(if i % 2 == 0 { "even" } else { "odd" });
                let _ = logbraid::Source::current();
                i += 1;
                if i % 256 == 0 {
                    // Leaves the child, the one thing the test waits for,
                    // a share of the two cores CI machines have.
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        })
    };

    let mut hung = Vec::new();
    for k in 0..FORKS {
        if !hung.is_empty() {
            break;
        }
        let path = dir.path().join(format!("child-{k}.log"));
        // SAFETY: the child builds a pipeline, logs, and leaves with _exit;
        // the locks it uses were held across the fork by its own thread.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            logbraid::set_process_name("child");
            let (child, child_guard) = Builder::new()
                .level("info")
                .children(false)
                .file(message_file(&path))
                .unwrap()
                .build()
                .unwrap();
            child.log_with(
                &Callsite::new(Level::Info, "child"),
                format_args!("child {k} {}", logbraid::Source::current().process_name),
                &mut |_| {},
            );
            drop(child_guard);
            // SAFETY: always sound.
            unsafe { libc::_exit(0) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: polls the child forked above.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
                break;
            }
            if Instant::now() > deadline {
                hung.push(k);
                // SAFETY: kills and reaps the hung child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    renamer.join().unwrap();
    drop(guard);
    assert_eq!(hung, Vec::<usize>::new(), "children that hung");
    for k in 0..FORKS {
        let text = std::fs::read_to_string(dir.path().join(format!("child-{k}.log"))).unwrap();
        assert_eq!(text, format!("child {k} child\n"));
    }
    // The parent lost nothing meanwhile: each thread's records once, in order.
    let text = std::fs::read_to_string(dir.path().join("parent.log")).unwrap();
    assert_eq!(thread_counts(&text, 4), counts);
}
