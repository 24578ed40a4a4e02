"""SQLite's own cost of the request log's writes by page size and synchronous mode: the ring's
schema (8 tables, 3 secondary indexes each), batches of 2,000 rows in multi-row INSERTs of 250, a
table emptied every 2,500 rows; prints user and system CPU per row. No clawdbot code: SQLite alone.

    taskset -c 1 python3 bench/sqlite_page_size.py PAGE_SIZE NORMAL|OFF"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
import uuid

BATCH, CHUNK, CAPACITY, BATCHES = 2000, 250, 2500, 60
COLUMNS = ("seq INTEGER PRIMARY KEY, id TEXT, at INTEGER, key_id TEXT, model TEXT, status INTEGER, "
           "latency_ms REAL, detail TEXT, request_body TEXT, response_body TEXT")
DETAIL = json.dumps({"method": "POST", "path": "/v1/chat/completions", "principal": "master", "service": "mock",
                     "upstream_model": "mock-model", "prompt_tokens": 3, "completion_tokens": 16,
                     "attempts": [{"service": "mock", "model": "mock-model", "where": "mock/mock-model", "ok": True,
                                   "fallback": False, "error": None, "status": 200, "ms": 1.0}]})


def main(page_size: int, synchronous: str) -> None:
    conn = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "bench.db"), isolation_level=None)
    conn.execute(f"PRAGMA page_size = {page_size}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    for n in range(8):
        conn.execute(f"CREATE TABLE t{n} ({COLUMNS})")
        for i, cols in enumerate(("at, seq", "key_id, at", "model, at")):
            conn.execute(f"CREATE INDEX i{n}_{i} ON t{n} ({cols})")
    insert = ("INSERT INTO t{} (id, at, key_id, model, status, latency_ms, detail, request_body, response_body) VALUES "
              + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * CHUNK))
    at = 1
    batches = []
    for _ in range(4):
        values: list[object] = []
        for _ in range(BATCH):
            values += [uuid.uuid4().hex, at, None, "mock-model", 200, 1.5, DETAIL, None, None]
            at += 1
        batches.append(values)
    segment = held = 0
    before = os.times()
    for b in range(BATCHES):
        if held + BATCH > CAPACITY:  # the next table, emptied
            segment = (segment + 1) % 8
            conn.execute(f"DELETE FROM t{segment}")
            held = 0
        conn.execute("BEGIN IMMEDIATE")
        values = batches[b % 4]
        for start in range(0, BATCH, CHUNK):
            conn.execute(insert.format(segment), values[start * 9:(start + CHUNK) * 9])
        conn.execute("COMMIT")
        held += BATCH
    after = os.times()
    rows = BATCHES * BATCH
    print(f"page_size {page_size}, synchronous {synchronous}: user {(after.user - before.user) / rows * 1e6:.2f} "
          f"+ system {(after.system - before.system) / rows * 1e6:.2f} us/row")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
