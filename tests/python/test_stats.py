"""logbraid.stats(): exact counts of what the default pipeline logged,
wrote, rotated and had acknowledged, read after flush()."""

import json


def test_stats_count_records_bytes_and_rotations_exactly(run, tmp_path):
    p = run(
        """
        import json, logbraid
        before = logbraid.stats()
        assert set(before) >= {"logged", "written", "dropped", "bytes", "rotations",
                               "forward_acked", "forward_resent", "write_count",
                               "write_ns", "write_ns_max", "sync_count", "sync_ns",
                               "sync_ns_max"}, before
        assert all(v == 0 for v in before.values()), before
        logbraid.basicConfig(level="INFO", console=False, file="app.log",
                             format="%(message)s", max_bytes=4096, sync=False)
        log = logbraid.getLogger("s")
        for i in range(3000):
            log.info("record %05d", i)
        log.debug("filtered out: not counted")
        assert logbraid.flush()
        print(json.dumps(logbraid.stats()))
        """
    )
    s = json.loads(p.stdout)
    files = [f for f in tmp_path.iterdir() if f.name.startswith("app.log")]
    assert (s["logged"], s["written"], s["dropped"]) == (3000, 3000, 0)
    # "record 00000\n": 13 bytes each, in the active file and its backups.
    assert s["bytes"] == 13 * 3000 == sum(f.stat().st_size for f in files)
    assert s["rotations"] == len(files) - 1 >= 9
    assert s["write_count"] >= 1 and s["write_ns_max"] <= s["write_ns"]
    assert (s["sync_count"], s["forward_acked"], s["forward_resent"]) == (0, 0, 0)


def test_a_child_forwarding_counts_what_the_parent_acknowledged(run, tmp_path):
    (tmp_path / "child.py").write_text(
        "import json, logbraid\n"
        "log = logbraid.getLogger('c')\n"
        "for k in range(2000):\n"
        "    log.info('c %d', k)\n"
        "assert logbraid.flush()\n"
        "print(json.dumps(logbraid.stats()))\n"
    )
    p = run(
        """
        import subprocess, sys, logbraid
        logbraid.basicConfig(level="INFO", console=False, file="out.log",
                             format="%(message)s")
        out = subprocess.run([sys.executable, "child.py"], capture_output=True,
                             text=True, check=True).stdout
        print(out, end="")
        """
    )
    s = json.loads(p.stdout)
    assert (s["logged"], s["written"], s["forward_acked"]) == (2000, 2000, 2000), s
    assert (s["dropped"], s["rotations"]) == (0, 0)
    assert len((tmp_path / "out.log").read_text().splitlines()) == 2000
