"""Forking while other threads log never hangs the child or loses its
records: locks another thread held at the moment of fork() (the process
source, the process name, the package's list of pipelines) are usable in
the child."""

FORKS = 300

PROGRAM = """
import logging, os, sys, threading, time, logbraid

FORKS, THREADS = int(sys.argv[1]), 4
logbraid.basicConfig(level="INFO", console=False, file="fork.log", format="%(message)s")
stop = threading.Event()
counts = [0] * THREADS

def spin(t):
    lb = logbraid.getLogger(f"t{t}")
    std = logging.getLogger(f"s{t}")
    i = 0
    while not stop.is_set():
        # Both loggers: every lock a fork can catch is being taken.
        (lb if i % 2 else std).info("t%d %d", t, i)
        i += 1
        if i % 20 == 0:
            # Paced, so that the fork loop, not the file, is the test's work.
            time.sleep(0.001)
    counts[t] = i

def churn():
    # Pipelines made and closed without pause: the package's list of
    # pipelines and the core's are locked much of the time.
    while not stop.is_set():
        logbraid.Handler(console=False).close()

threads = [threading.Thread(target=spin, args=(t,)) for t in range(THREADS)]
threads.append(threading.Thread(target=churn))
for th in threads:
    th.start()
hung = []
for k in range(FORKS):
    pid = os.fork()
    if pid == 0:
        logbraid.getLogger("child").info("child %d", k)
        logging.getLogger("child").info("stdchild %d", k)
        os._exit(0 if logbraid.flush(30) else 3)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, (k, status)
            break
        if time.monotonic() > deadline:
            hung.append(k)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.001)
stop.set()
for th in threads:
    th.join()
logbraid.shutdown()
print(" ".join(map(str, counts)))
print("hung", hung)
"""


def test_forks_while_threads_log(run, tmp_path):
    p = run(PROGRAM, str(FORKS), timeout=900)
    counts_line, hung_line = p.stdout.splitlines()
    assert hung_line == "hung []"
    counts = list(map(int, counts_line.split()))
    lines = (tmp_path / "fork.log").read_text().splitlines()
    children = sorted(int(l.split()[1]) for l in lines if l.startswith("child "))
    std_children = sorted(int(l.split()[1]) for l in lines if l.startswith("stdchild "))
    assert children == list(range(FORKS))
    assert std_children == list(range(FORKS))
    # Each thread's records once each, in order.
    nxt = {}
    for line in lines:
        if line.startswith("t"):
            t, i = line.split()
            assert int(i) == nxt.get(t, 0), f"{t}: expected {nxt.get(t, 0)}, found {i}"
            nxt[t] = int(i) + 1
    assert nxt == {f"t{t}": c for t, c in enumerate(counts)}
