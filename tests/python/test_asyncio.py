"""asyncio and threads mixed: event loops in several threads, coroutines
logging through the logbraid Logger and through stdlib loggers, callbacks
scheduled with `call_soon_threadsafe`, functions run by `asyncio.to_thread`.
Each record once, in order per (thread, coroutine)."""

import json

import pytest

K = 400


def check_keys(lines, expected):
    """`<name> <key> <k>` lines: each key's k = 0, 1, ... expected[key] - 1,
    each once; returns the logger names each key used."""
    nxt = {}
    names = {}
    for line in lines:
        name, key, k = line.split(" ")
        assert key in expected, line
        assert nxt.get(key, 0) == int(k), f"{key}: expected {nxt.get(key, 0)}, found {k}"
        nxt[key] = int(k) + 1
        names.setdefault(key, set()).add(name)
    assert nxt == expected
    assert len(lines) == sum(expected.values())
    return names


@pytest.mark.parametrize("queue", ["default", "small"])
def test_loops_in_threads_with_coroutines(run, tmp_path, queue):
    # queue_size=4096 (the smallest) makes producers wait for room often:
    # nothing may be lost or reordered then either.
    qs = "queue_size=4096, " if queue == "small" else ""
    p = run(
        f"""
        import asyncio, logging, threading, logbraid

        logbraid.basicConfig(level="INFO", file="a.log", console=False, {qs}
                             format="%(name)s %(message)s")
        K = {K}

        async def coro(key, c):
            lb = logbraid.getLogger("lb")
            std = logging.getLogger("std")
            for k in range(K):
                # c % 3: 0 the logbraid Logger, 1 a stdlib logger, 2 both in turn
                log = (lb, std, lb if k % 2 == 0 else std)[c % 3]
                log.info("%s %d", key, k)
                if k % 7 == 0:
                    await asyncio.sleep(0)

        async def loop_main(t):
            await asyncio.gather(*(coro(f"{{t}}c{{c}}", c) for c in range(5)))

        threads = [threading.Thread(target=lambda t=t: asyncio.run(loop_main(f"t{{t}}")))
                   for t in range(4)]
        for th in threads:
            th.start()
        asyncio.run(loop_main("main"))
        for th in threads:
            th.join()
        logbraid.shutdown()
        print(logbraid.stats()["dropped"])
        """
    )
    assert p.stdout.split() == ["0"]
    lines = (tmp_path / "a.log").read_text().splitlines()
    keys = [f"{t}c{c}" for t in ["main", "t0", "t1", "t2", "t3"] for c in range(5)]
    names = check_keys(lines, {key: K for key in keys})
    for key in keys:
        assert names[key] == [{"lb"}, {"std"}, {"lb", "std"}][int(key[-1]) % 3], key


def test_call_soon_threadsafe_and_to_thread(run, tmp_path):
    p = run(
        f"""
        import asyncio, logging, threading, logbraid

        logbraid.basicConfig(level="INFO", file="a.log", console=False,
                             format="%(name)s %(message)s")
        K = {K}
        lb = logbraid.getLogger("lb")
        std = logging.getLogger("std")

        def blocking(i):
            # runs in the loop's default executor
            for k in range(K):
                (lb if k % 2 == 0 else std).info("tt%d %d", i, k)
            return threading.get_ident()

        async def coro(c):
            for k in range(K):
                lb.info("mc%d %d", c, k)
                await asyncio.sleep(0)

        async def main():
            loop = asyncio.get_running_loop()
            senders_done = asyncio.Event()
            left = [3]

            def callback(s, k):
                # runs on the loop's thread, in the order it was scheduled
                (std if s == 1 else lb).info("cs%d %d", s, k)

            def finished():
                left[0] -= 1
                if left[0] == 0:
                    senders_done.set()

            def sender(s):
                for k in range(K):
                    loop.call_soon_threadsafe(callback, s, k)
                loop.call_soon_threadsafe(finished)

            threads = [threading.Thread(target=sender, args=(s,)) for s in range(3)]
            for th in threads:
                th.start()
            idents = await asyncio.gather(
                *(asyncio.to_thread(blocking, i) for i in range(6)),
                *(coro(c) for c in range(3)),
            )
            await senders_done.wait()
            for th in threads:
                th.join()
            return idents[:6]

        idents = asyncio.run(main())
        logbraid.shutdown()
        print(threading.get_ident() not in idents)
        """
    )
    assert p.stdout.split() == ["True"]
    lines = (tmp_path / "a.log").read_text().splitlines()
    expected = {f"cs{s}": K for s in range(3)}
    expected.update({f"tt{i}": K for i in range(6)})
    expected.update({f"mc{c}": K for c in range(3)})
    names = check_keys(lines, expected)
    assert names["cs0"] == {"lb"} and names["cs1"] == {"std"} and names["tt0"] == {"lb", "std"}


def test_exception_and_extra_inside_tasks(run, tmp_path):
    """`log.exception` in a task that caught an error, and `extra=` with the
    task's name: each record whole, with its own traceback."""
    run(
        """
        import asyncio, json, logging, logbraid

        logbraid.basicConfig(level="INFO", file="a.jsonl", console=False, json=True)

        async def failing(i):
            log = logbraid.getLogger("lb") if i % 2 == 0 else logging.getLogger("std")
            await asyncio.sleep(0)
            try:
                raise ValueError(f"bad input {i}")
            except ValueError:
                log.exception("task %d failed", i, extra={"task": asyncio.current_task().get_name()})

        async def main():
            await asyncio.gather(*(asyncio.create_task(failing(i), name=f"job-{i}") for i in range(10)))

        asyncio.run(main())
        logbraid.shutdown()
        """
    )
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 10
    by_task = {r["fields"]["task"]: r for r in rows}
    assert sorted(by_task) == sorted(f"job-{i}" for i in range(10))
    for i in range(10):
        r = by_task[f"job-{i}"]
        target = "lb" if i % 2 == 0 else "std"
        assert (r["level"], r["target"], r["msg"]) == ("ERROR", target, f"task {i} failed")
        assert r["function"] == "failing"
        tb = r["fields"]["exc_text"]
        assert tb.startswith("Traceback (most recent call last):\n"), tb
        assert tb.endswith(f"ValueError: bad input {i}"), tb
