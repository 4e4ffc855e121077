"""basicConfig's file options: file_mode, encoding, sync, per-run files,
and is_configured."""

import re


def test_file_mode_w_empties_the_file_and_a_appends(run, tmp_path):
    (tmp_path / "app.log").write_text("earlier run\n")
    (tmp_path / "app.log.1").write_text("a backup\n")
    prog = """
        import sys, logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False,
                             format="%(message)s", file_mode=sys.argv[1])
        logbraid.getLogger("x").info("run %s", sys.argv[2])
        """
    run(prog, "a", "1")
    assert (tmp_path / "app.log").read_text() == "earlier run\nrun 1\n"
    run(prog, "w", "2")
    assert (tmp_path / "app.log").read_text() == "run 2\n"
    assert (tmp_path / "app.log.1").read_text() == "a backup\n"


def test_file_mode_w_in_a_child_does_not_empty_the_parents_file(run, tmp_path):
    run(
        """
        import multiprocessing as mp, logbraid

        def child():
            h = logbraid.Handler(file="app.log", file_mode="w", format="%(message)s")
            import logging
            log = logging.getLogger("child")
            log.propagate = False
            log.addHandler(h)
            log.warning("from the child")
            h.close()

        if __name__ == "__main__":
            logbraid.basicConfig(level="INFO", file="app.log", console=False, format="%(message)s")
            logbraid.getLogger("p").info("before")
            logbraid.flush()
            for method in ("fork", "spawn"):
                p = mp.get_context(method).Process(target=child)
                p.start(); p.join()
                assert p.exitcode == 0
            logbraid.getLogger("p").info("after")
        """
    )
    assert (tmp_path / "app.log").read_text().splitlines() == [
        "before",
        "from the child",
        "from the child",
        "after",
    ]


def test_bad_file_mode_and_encoding_are_refused_clearly(run):
    p = run(
        """
        import logbraid
        for kw in ({"file_mode": "r"}, {"encoding": "latin-1"}, {"encoding": "no-such-codec"},
                   {"runs": 3}, {"runs": -1}):
            try:
                logbraid.basicConfig(file="app.log", **kw)
            except ValueError as e:
                print(e)
            else:
                print("accepted", kw)
        print(logbraid.is_configured())
        for spelling in ("UTF-8", "utf8", "U8", None):
            logbraid.basicConfig(file="app.log", console=False, encoding=spelling, force=True)
        print(logbraid.is_configured())
        """
    )
    assert p.stdout.splitlines() == [
        "file_mode: expected 'a' (append) or 'w' (truncate), got 'r'",
        "encoding: logbraid writes UTF-8 only; 'latin-1' is not supported "
        "(records from every thread, process and host share one encoding)",
        "encoding: unknown encoding 'no-such-codec'",
        "runs: needs a per-run file name ({prog}, {start} or {pid} in file)",
        "runs: -1: must be 0 (keep every run) or more",
        "False",
        "True",
    ]


def test_sync_writes_on_the_calling_thread_before_the_call_returns(run, tmp_path):
    p = run(
        """
        import threading, logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False,
                             format="%(threadName)s %(message)s", sync=True)
        log = logbraid.getLogger("x")
        names = {t.name for t in threading.enumerate()}
        for i in range(3):
            log.info("line %d", i)
            # On disk already: no writer thread, no flush.
            print(open("app.log").read().count("\\n"))
        print(sorted({t.name for t in threading.enumerate()} - names))
        """
    )
    assert p.stdout.splitlines() == ["1", "2", "3", "[]"]
    assert (tmp_path / "app.log").read_text() == (
        "MainThread line 0\nMainThread line 1\nMainThread line 2\n"
    )


def test_sync_collects_children_too(run, tmp_path):
    run(
        """
        import multiprocessing as mp, logbraid

        def child(i):
            logbraid.getLogger("c").info("child %d", i)

        if __name__ == "__main__":
            logbraid.basicConfig(level="INFO", file="app.log", console=False,
                                 format="%(message)s", sync=True)
            for i, method in enumerate(("fork", "spawn")):
                p = mp.get_context(method).Process(target=child, args=(i,))
                p.start(); p.join()
            logbraid.getLogger("p").info("done")
        """
    )
    assert (tmp_path / "app.log").read_text().splitlines() == ["child 0", "child 1", "done"]


def test_per_run_files_keep_the_last_runs(run, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # Earlier runs, oldest first, and a file of another program.
    old = [logs / f"prog_2024010{i}_000000.log" for i in range(1, 5)]
    for i, f in enumerate(old):
        f.write_text(f"old {i}\n")
    (logs / "prog_20240101_000000.log.1").write_text("old 0 backup\n")
    (logs / "prog_20240101_000000.log.2.gz").write_bytes(b"old 0 older backup")
    (logs / "other_20240101_000000.log").write_text("not ours\n")
    # An operator's copy beside the oldest run: not one of its backups.
    (logs / "prog_20240101_000000.log.bak").write_text("keep me\n")
    p = run(
        """
        import logging, logbraid
        logbraid.basicConfig(level="INFO", file="logs/{prog}_{start}.log", runs=3,
                             console=False, format="%(message)s")
        logbraid.getLogger("x").info("this run")
        print(logging.getLogger().handlers[0].file)
        """
    )
    current = p.stdout.strip()
    assert re.fullmatch(r"logs/prog_\d{8}_\d{6}\.log", current), current
    names = sorted(f.name for f in logs.iterdir())
    assert names == sorted(
        [
            "other_20240101_000000.log",
            "prog_20240101_000000.log.bak",
            old[2].name,
            old[3].name,
            current[5:],
        ]
    )
    assert (logs / "prog_20240101_000000.log.bak").read_text() == "keep me\n"
    assert (tmp_path / current).read_text() == "this run\n"


def test_a_run_in_the_same_second_gets_a_file_of_its_own(run, tmp_path):
    p = run(
        """
        import logging, logbraid
        logbraid.basicConfig(level="INFO", file="{prog}_{start}.log", console=False,
                             format="%(message)s")
        first = logging.getLogger().handlers[0].file
        logbraid.getLogger("x").info("first")
        # A second configuration within the same second is a new run.
        logbraid.basicConfig(level="INFO", file="{prog}_{start}.log", console=False,
                             format="%(message)s", force=True)
        second = logging.getLogger().handlers[0].file
        logbraid.getLogger("x").info("second")
        print(first); print(second)
        """
    )
    first, second = p.stdout.split()
    assert re.fullmatch(r"prog_\d{8}_\d{6}\.log", first), first
    # The same second gives the name _1; the next second a name of its own.
    assert second == first[:-4] + "_1.log" or (
        re.fullmatch(r"prog_\d{8}_\d{6}\.log", second) and second > first
    ), (first, second)
    assert (tmp_path / first).read_text() == "first\n"
    assert (tmp_path / second).read_text() == "second\n"
