"""Measures, in a process of its own, what mongoeco does on one insert and a few reads.

    python -m tests.support.mongoeco_probe patched|unpatched DIR

Prints one JSON object: how many stored documents one string-``_id`` insert decoded (``_load_documents``
calls), whether a duplicate string ``_id`` and a numeric ``_id`` equal to a stored one (``1`` vs ``1.0``)
are refused, how many SQLite connections twenty multi-document reads opened, and how many full-collection
type probes a read on an indexed field ran after a write.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    mode, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "patched":
        from yiwang import embedded_compat

        assert embedded_compat.apply()
    from mongoeco import MongoClient
    from mongoeco.engines.sqlite import SQLiteEngine
    from pymongo.errors import DuplicateKeyError

    engine = SQLiteEngine(str(folder / "probe.sqlite"), executor_workers=1)
    client: Any = MongoClient(engine=engine)
    coll = client["probe"]["docs"]
    coll.create_index("resident")
    coll.insert_many([{"_id": f"a{i:05d}", "resident": f"r{i % 50}"} for i in range(300)])
    coll.insert_one({"_id": 1, "resident": "numeric"})

    loads = 0
    original_load = SQLiteEngine._load_documents

    def counting_load(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal loads
        loads += 1
        return original_load(self, *args, **kwargs)

    SQLiteEngine._load_documents = counting_load  # type: ignore[method-assign]
    coll.insert_one({"_id": "new-string-id", "resident": "r1"})
    string_insert_loads = loads

    def refused(doc: dict[str, Any]) -> bool:
        try:
            coll.insert_one(doc)
        except DuplicateKeyError:
            return True
        return False

    duplicate_string_refused = refused({"_id": "a00001", "resident": "x"})
    loads = 0
    equal_number_refused = refused({"_id": 1.0, "resident": "x"})
    numeric_insert_loads = loads

    connects = 0
    original_connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal connects
        connects += 1
        return original_connect(*args, **kwargs)

    sqlite3.connect = counting_connect  # type: ignore[assignment]
    for k in range(20):
        assert len(list(coll.find({"resident": f"r{k + 10}"}))) == 6
    sqlite3.connect = original_connect

    from mongoeco.engines._sqlite_connection import SQLiteConnection

    probes: list[tuple[str, Any]] = []
    original_execute = SQLiteConnection.execute

    def tracing_execute(self: Any, sql: str, *args: Any) -> Any:
        probes.append((sql, args))
        return original_execute(self, sql, *args)

    coll.update_one({"_id": "a00002"}, {"$set": {"seen": True}})
    SQLiteConnection.execute = tracing_execute  # type: ignore[method-assign]
    assert len(list(coll.find({"resident": "r3"}))) == 6
    SQLiteConnection.execute = original_execute  # type: ignore[method-assign]
    type_scans = sum(1 for sql, _ in probes if "AND json_extract(document, ?) = ?" in sql)

    # Multi-document finds by string equality: does SQLite answer them from the field's index?
    coll.create_index([("applicant.index", 1), ("updated_at", -1)])
    coll.update_many({}, {"$set": {"applicant": {"index": "p1"}, "updated_at": 1}})

    def find_plans(query: dict[str, Any]) -> tuple[int, bool]:
        probes.clear()
        SQLiteConnection.execute = tracing_execute  # type: ignore[method-assign]
        found = len(list(coll.find(query)))
        found = len(list(coll.find(query)))  # the second time: features probed after the write are known
        SQLiteConnection.execute = original_execute  # type: ignore[method-assign]
        selects = [(sql, args) for sql, args in probes if "FROM documents" in sql and "SELECT document" in sql]
        plain = sqlite3.connect(folder / "probe.sqlite")
        plan = " ".join(
            str(row) for sql, args in selects[-1:] for row in plain.execute("EXPLAIN QUERY PLAN " + sql, *args)
        )
        plain.close()
        return found, "<expr>=?" in plan

    resident_found, resident_indexed = find_plans({"resident": "r3"})
    dotted_found, _ = find_plans({"applicant.index": "p1", "resident": "r4"})
    dotted_only_found, dotted_only_indexed = find_plans({"applicant.index": "p1"})
    coll.insert_one({"_id": "array-holder", "resident": ["r3", "r9"]})  # now the index has multikey entries
    array_found, _ = find_plans({"resident": "r3"})
    print(
        json.dumps(
            {
                "string_insert_loads": string_insert_loads,
                "duplicate_string_refused": duplicate_string_refused,
                "equal_number_refused": equal_number_refused,
                "numeric_insert_loads": numeric_insert_loads,
                "reader_connects": connects,
                "type_scans_after_write": type_scans,
                "resident_find": [resident_found, resident_indexed],
                "dotted_find": [dotted_only_found, dotted_only_indexed],
                "dotted_and_field_find": dotted_found,
                "array_value_found": array_found,
            }
        )
    )
    client.close()


if __name__ == "__main__":
    main()
