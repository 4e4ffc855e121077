"""The logging cookbook's multiprocessing recipe with logbraid as the real
handler: workers put records on a queue through a QueueHandler on their
root logger, a QueueListener hands them to logbraid. Each record reaches
the file once, whatever the start method, as without logbraid; the one
exception is the standard library's own: a fork child of a parent whose
root logger has a handler inherits that handler too."""

import pytest

RECIPE = """
import logging, logging.handlers, sys, logbraid, multiprocessing as mp

WORKERS, PER = 3, 200

def worker(q, k):
    root = logging.getLogger()
    root.addHandler(logging.handlers.QueueHandler(q))
    root.setLevel(logging.INFO)
    for i in range(PER):
        logging.getLogger(f"w{k}").info("QW k=%d i=%d", k, i)

def listen(q, setup):
    if setup == "handler":
        handlers = [logbraid.Handler(file="app.log", format="%(message)s")]
    else:
        logbraid.basicConfig(level="INFO", console=False, file="app.log", format="%(message)s")
        handlers = logging.getLogger().handlers
    listener = logging.handlers.QueueListener(q, *handlers)
    listener.start()
    return listener

def listener_process(q, setup, ready, done):
    listener = listen(q, setup)
    ready.set()
    done.wait()
    listener.stop()
    logbraid.shutdown()

if __name__ == "__main__":
    method, setup, where = sys.argv[1:4]
    ctx = mp.get_context(method)
    q = ctx.Queue()
    if where == "main":
        listener = listen(q, setup)
    else:
        ready, done = ctx.Event(), ctx.Event()
        lp = ctx.Process(target=listener_process, args=(q, setup, ready, done))
        lp.start()
        assert ready.wait(60)
    ps = [ctx.Process(target=worker, args=(q, k)) for k in range(WORKERS)]
    for p in ps: p.start()
    for p in ps: p.join()
    assert [p.exitcode for p in ps] == [0] * WORKERS
    if where == "main":
        listener.stop()
        logbraid.shutdown()
    else:
        done.set()
        lp.join()
        assert lp.exitcode == 0
"""


@pytest.mark.parametrize("where", ["main", "process"])
@pytest.mark.parametrize("setup", ["handler", "basicconfig"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_queue_listener_recipe_writes_each_record_once(run, tmp_path, method, setup, where):
    run(RECIPE, method, setup, where)
    lines = (tmp_path / "app.log").read_text().splitlines()
    want = sorted(f"QW k={k} i={i}" for k in range(3) for i in range(200))
    if method == "fork" and setup == "basicconfig" and where == "main":
        # As with the standard library's own handlers: the forked worker's
        # root logger is a copy of the parent's, basicConfig's handler on
        # it included, beside the QueueHandler the worker adds.
        assert sorted(lines) == sorted(want * 2)
        return
    assert sorted(lines) == want
    # Per worker, in the order logged.
    for k in range(3):
        mine = [l for l in lines if l.startswith(f"QW k={k} ")]
        assert mine == sorted(mine, key=lambda l: int(l.rsplit("=", 1)[1]))


CHILD_WITHOUT_HANDLERS = """
import logging, sys, logbraid, multiprocessing as mp

def child():
    logging.getLogger("std").info("std record")
    logging.getLogger("std").debug("below the parent's level")
    logbraid.getLogger("lb").info("lb record")

if __name__ == "__main__":
    logbraid.basicConfig(level="INFO", console=False, file="app.log", format="%(name)s %(message)s")
    p = mp.get_context(sys.argv[1]).Process(target=child)
    p.start()
    p.join()
    assert p.exitcode == 0
    logbraid.shutdown()
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_child_without_handlers_of_its_own_still_forwards_everything(run, tmp_path, method):
    run(CHILD_WITHOUT_HANDLERS, method)
    lines = sorted((tmp_path / "app.log").read_text().splitlines())
    assert lines == ["lb lb record", "std std record"]
