"""One process: a rotated, gzip-compressed file and the console, both fed by
`logbraid.basicConfig`; a logbraid Logger with `extra=` fields; an
exception with its traceback; and a standard `logging` logger (as a
third-party library would use) landing in the same file.

    python examples/python/single_process.py [--dir DIR] [--records N] [--max-bytes B]

Records go to DIR/app.log (default: ./logs) and, in colour on a terminal,
to stderr; the summary goes to stdout. At the end the program reads every
file back (the compressed backups too) and checks that each record is there
exactly once and in order; it exits 1 if not.
"""

import argparse
import gzip
import logging
import re
import sys
from pathlib import Path

import logbraid

# A record of the default text layout starts with its UTC timestamp:
# 2026-11-22T10:04:05.123456Z INFO  [4242/4242] app: message key=value
RECORD = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (\w+) +\[(\d+)/[^\]]*\] (\S+): (.*)$"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="logs", help="directory of the log files (default: ./logs)")
    ap.add_argument("--records", type=int, default=2000, help="request records to write")
    ap.add_argument("--max-bytes", type=int, default=32 * 1024, help="rotate at this size")
    ap.add_argument("--no-console", action="store_true", help="file only, nothing on stderr")
    args = ap.parse_args()

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "app.log"
    for old in directory.glob("app.log*"):  # a clean slate for the check
        old.unlink()

    logbraid.basicConfig(
        level="INFO",
        file=str(path),
        max_bytes=args.max_bytes,
        backup_count=1000,
        compress="gzip",
        console=not args.no_console,
    )
    log = logbraid.getLogger("app")
    users = ["ada", "grace", "edsger"]

    log.info("starting with %d requests", args.records, extra={"dry_run": False, "config": None})
    log.debug("not written: the level is INFO")
    for i in range(args.records):
        log.info(
            "request %d served in %d ms",
            i,
            i % 17,
            extra={"request_id": f"r-{i:06d}", "user": users[i % 3], "ratio": i / 8},
        )
    try:
        {"known": 1}["missing"]
    except KeyError:
        log.exception("request %d failed", args.records, extra={"request_id": "r-failed"})
    # What a library using the standard module does: its records reach the
    # root logger, where basicConfig put logbraid's handler.
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying (%s) after connection broken", "Retry(total=2)"
    )
    logbraid.shutdown()  # flushes and finishes the compression

    expected = args.records + 3
    files = rotated_files(path)
    compressed = sum(1 for f in files if f.suffix == ".gz")
    print(f"single_process: {expected} records into {path}")
    print(
        f"  files      {len(files)} ({len(files) - 1} rotated at {args.max_bytes} bytes,"
        f" {compressed} gzip-compressed)"
    )
    problems = check(files, args.records)
    if problems:
        for p in problems[:20]:
            print(f"  problem    {p}")
        print(f"  check      FAILED: {len(problems)} problems")
        return 1
    print(f"  check      {expected} of {expected} records, each once and in order: OK")
    return 0


def rotated_files(active: Path) -> "list[Path]":
    """app.log.N[.gz] (oldest) ... app.log.1[.gz], then app.log."""

    def index(p: Path) -> int:
        return int(p.name[len(active.name) + 1 :].split(".")[0])

    backups = [p for p in active.parent.glob(active.name + ".*") if not p.name.endswith(".tmp")]
    return sorted(backups, key=index, reverse=True) + ([active] if active.exists() else [])


def read_records(files: "list[Path]") -> "list[list[str]]":
    """Each record as its lines (a traceback follows its record's line, indented)."""
    records: "list[list[str]]" = []
    for f in files:
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        for line in data.decode("utf-8").splitlines():
            if RECORD.match(line) or not records:
                records.append([line])
            else:
                records[-1].append(line)
    return records


def expected_records(n: int) -> "list[tuple[str, str, str]]":
    """(level, logger, message and fields) of every record main() writes."""
    users = ["ada", "grace", "edsger"]
    return (
        [("INFO", "app", f"starting with {n} requests dry_run=false config=None")]
        + [
            (
                "INFO",
                "app",
                f"request {i} served in {i % 17} ms request_id=r-{i:06d}"
                f" user={users[i % 3]} ratio={i / 8!r}",
            )
            for i in range(n)
        ]
        + [
            ("ERROR", "app", f"request {n} failed request_id=r-failed"),
            ("WARN", "urllib3.connectionpool", "Retrying (Retry(total=2)) after connection broken"),
        ]
    )


def check(files: "list[Path]", n: int) -> "list[str]":
    records = read_records(files)
    expected = expected_records(n)
    problems = []
    if len(records) != len(expected):
        problems.append(f"{len(records)} records, expected {len(expected)}")
    for i, (lines, want) in enumerate(zip(records, expected)):
        m = RECORD.match(lines[0])
        if m is None or (m.group(1), m.group(3), m.group(4)) != want:
            problems.append(f"record {i}: expected {want}, found {lines[0]!r}")
        elif want[0] == "ERROR" and (
            lines[1:2] != ["  Traceback (most recent call last):"] or lines[-1] != "  KeyError: 'missing'"
        ):
            problems.append(f"record {i}: no traceback after it: {lines!r}")
        elif want[0] != "ERROR" and len(lines) != 1:
            problems.append(f"record {i}: unexpected lines after it: {lines[1:]!r}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
