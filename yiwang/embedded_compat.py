"""Compatibility fixes for mongoeco 4.11.0, applied only inside the embedded database's child process.

Two costs in mongoeco 4.11.0 grow with the data (see ``docs/mongoeco-patch.md`` for the upstream note):

1. **Every single-document insert decodes every stored document.** The unique-``_id`` check
   (``SQLiteEngine._validate_document_against_unique_indexes`` and ``MemoryEngine._ensure_unique_indexes``)
   is called with ``scan_payload_id=True`` on the one-document insert and merge paths, and then compares
   ``bson_equality_key(_id)`` against every document in the collection. The scan exists for ids whose BSON
   equality is wider than their storage key (numbers: ``1 == 1.0 == Int64(1)``; documents and arrays holding
   numbers). For a ``str`` or an ``ObjectId`` the storage key (``repr(canonical_document_id(v))``) is equal
   exactly when the BSON values are equal, so the indexed storage-key probe that runs just before the scan
   has already answered the question. The fix: for those ids, call the original with ``scan_payload_id=False``;
   numeric ids keep the scan (the original still scans them through ``id_contains_numeric_value``).

2. **Every multi-document read opens and closes a SQLite connection** (``SQLiteScanReader._open`` calls
   ``engine._create_sqlite_connection()``: connect, two PRAGMAs, and a cold per-connection index catalogue).
   The fix: readers take a connection from a small per-engine pool and give it back (rolled back, so the
   next reader begins a fresh snapshot) instead of closing it; the pool is emptied when the engine
   disconnects.

3. **After any write, the next query on an indexed field scans the collection three times.** Before it plans
   a comparison the engine asks whether the field holds a Decimal128 anywhere in the collection
   (``_field_contains_tagged_value_type_in_collection``: ``json_extract(document, '$.f."$mongoeco".type') = ?``
   for three type names), and every write clears that answer. The expression is not the one the field's
   ordered index was built on, so SQLite scans. The fix: when an ordered index leads with the field, ask the
   same question with the index's own expression, ``COALESCE(json_extract(...), '') = ?`` (identical for a
   non-empty type name), which is an index probe.

4. **Two commands skip the authentication check.** mongoeco enforces authentication once it has users (every
   data command, ``getMore``, ``killCursors`` answer "Authentication required" on a connection that has not
   completed SCRAM), but ``commitTransaction`` and ``abortTransaction`` go straight to the session store. The fix
   makes them require an authenticated connection too. (``auth_user`` below is not a patch: it is how the
   launcher declares its one user, SCRAM-SHA-256 only, for every mongoeco version.)

5. **A multi-document find by string equality on an indexed field scans the collection.** The engine's
   SQL for ``{f: "text"}`` is ``json_type(document, '$.f') = 'text' AND json_extract(document, '$.f') = ?``,
   while the field's ordered index is built on ``COALESCE(json_extract(document, '$.f."$mongoeco".type'),
   '')`` and ``COALESCE(json_extract(document, '$.f."$mongoeco".value'), json_extract(document, '$.f'))``:
   SQLite cannot use it, and reads every document of the collection (``find_one`` has its own index path,
   which is why it stayed flat). For a single-field index the condition is also OR-ed with an ``EXISTS``
   over the multikey entries (arrays holding the value), which defeats any index. The fix: say the same
   condition with the index's expressions first (``type = '' AND value = ? AND json_type = 'text'``: for a
   string field the first two are exactly ``json_extract = ?``, so the rows are the same), and drop the
   multikey branch when the index has no multikey entry in the collection (no array was ever indexed
   there; the probe is one index lookup, re-asked after every write like the engine's other features).

``apply()`` refuses to patch any mongoeco other than the one these were written against and says so in the
log; ``tests/test_embedded_compat.py`` fails if upstream changes the patched behaviour or the version.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("yiwang.embedded")

SUPPORTED_VERSION = "4.11.0"
READER_POOL_SIZE = 8

_state = {"applied": False}
_reader_open = threading.local()


def mongoeco_version() -> str:
    from importlib.metadata import version

    return version("mongoeco")


def exact_storage_id(value: object) -> bool:
    """Whether storage-key equality is exact BSON equality for this ``_id`` (no scan needed)."""
    from bson import ObjectId

    return type(value) is str or type(value) is ObjectId


def auth_user(user: str, password: str) -> Any:
    """The embedded server's one user: SCRAM-SHA-256 only (no PLAIN, no SCRAM-SHA-1), all privileges."""
    from mongoeco.wire.auth import WireAuthUser

    return WireAuthUser(
        username=user,
        password=password,
        source="admin",
        mechanisms=("SCRAM-SHA-256",),
        roles=({"role": "root", "db": "admin"},),
    )


def apply() -> bool:
    """Patch mongoeco in this process; returns whether the patches are in place."""
    if _state["applied"]:
        return True
    if os.environ.get("YIWANG_MONGOECO_COMPAT", "1") == "0":  # benchmarks measure the unpatched engine this way
        log.warning("YIWANG_MONGOECO_COMPAT=0: mongoeco compatibility fixes not applied")
        return False
    found = mongoeco_version()
    if found != SUPPORTED_VERSION:
        log.warning(
            "mongoeco %s is not %s: compatibility fixes not applied (inserts may scan the collection)",
            found,
            SUPPORTED_VERSION,
        )
        return False
    _patch_unique_id_scan()
    _patch_reader_connections()
    _patch_tagged_type_probe()
    _patch_transaction_auth()
    _patch_string_equality_sql()
    _state["applied"] = True
    log.info("mongoeco %s: compatibility fixes applied (no _id scan for string ids, pooled readers)", found)
    return True


def _patch_unique_id_scan() -> None:
    from mongoeco.engines.memory import MemoryEngine
    from mongoeco.engines.sqlite import SQLiteEngine

    def without_exact_id_scan(original: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(original)
        def validate(self: Any, db_name: str, coll_name: str, document: Any, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("scan_payload_id") and "_id" in document and exact_storage_id(document["_id"]):
                kwargs["scan_payload_id"] = False
            original(self, db_name, coll_name, document, *args, **kwargs)

        validate.__yiwang_compat__ = True  # type: ignore[attr-defined]
        return validate

    SQLiteEngine._validate_document_against_unique_indexes = without_exact_id_scan(  # type: ignore[method-assign]
        SQLiteEngine._validate_document_against_unique_indexes
    )
    MemoryEngine._ensure_unique_indexes = without_exact_id_scan(  # type: ignore[method-assign]
        MemoryEngine._ensure_unique_indexes
    )


class _ReaderPool:
    """Idle reader connections of one engine; a connection is in the pool or in one reader, never both."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[sqlite3.Connection] = []
        self.closed = False

    def take(self) -> sqlite3.Connection | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, connection: sqlite3.Connection) -> bool:
        with self.lock:
            if self.closed or len(self.idle) >= READER_POOL_SIZE:
                return False
            self.idle.append(connection)
            return True

    def drain(self) -> list[sqlite3.Connection]:
        with self.lock:
            idle, self.idle = self.idle, []
            return idle


def _patch_reader_connections() -> None:
    from mongoeco.engines._sqlite_connection import SQLiteConnection
    from mongoeco.engines._sqlite_reader import SQLiteScanReader
    from mongoeco.engines.sqlite import SQLiteEngine

    class PooledReaderConnection(SQLiteConnection):
        """A reader connection whose ``close()`` hands it back to its engine's pool."""

        pool: _ReaderPool | None = None

        def close(self) -> None:
            pool = self.pool
            if pool is not None:
                try:
                    if self.in_transaction:
                        self.rollback()  # end the reader's snapshot; the next reader BEGINs afresh
                except sqlite3.Error:
                    pool = None
                if pool is not None and pool.give(self):
                    return
            super().close()

    def pool_of(engine: Any) -> _ReaderPool:
        pool: _ReaderPool | None = engine.__dict__.get("_yiwang_reader_pool")
        if pool is None or pool.closed:
            pool = engine.__dict__["_yiwang_reader_pool"] = _ReaderPool()
        return pool

    original_create = SQLiteEngine._create_sqlite_connection

    @functools.wraps(original_create)
    def create_connection(self: Any) -> sqlite3.Connection:
        if not getattr(_reader_open, "active", False):
            return original_create(self)
        pool = pool_of(self)
        connection = pool.take()
        if connection is not None:
            return connection
        connection = sqlite3.connect(self._path, check_same_thread=False, factory=PooledReaderConnection)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            sqlite3.Connection.close(connection)
            raise
        connection.pool = pool
        return connection

    original_open = SQLiteScanReader._open

    @functools.wraps(original_open)
    def reader_open(self: Any) -> None:
        _reader_open.active = True
        try:
            original_open(self)
        finally:
            _reader_open.active = False

    original_disconnect = SQLiteEngine._disconnect_sync if hasattr(SQLiteEngine, "_disconnect_sync") else None

    def close_pool(engine: Any) -> None:
        pool: _ReaderPool | None = engine.__dict__.get("_yiwang_reader_pool")
        if pool is None:
            return
        with pool.lock:
            pool.closed = True
        for connection in pool.drain():
            sqlite3.Connection.close(connection)

    if original_disconnect is not None:

        @functools.wraps(original_disconnect)
        def disconnect(self: Any, *args: Any, **kwargs: Any) -> Any:
            close_pool(self)
            return original_disconnect(self, *args, **kwargs)

        SQLiteEngine._disconnect_sync = disconnect  # type: ignore[method-assign]

    SQLiteEngine._create_sqlite_connection = create_connection  # type: ignore[method-assign]
    SQLiteScanReader._open = reader_open  # type: ignore[method-assign]
    SQLiteEngine._yiwang_close_reader_pool = close_pool  # type: ignore[attr-defined]


def _patch_tagged_type_probe() -> None:
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.engines.sqlite_query import type_expression_sql

    original = SQLiteEngine._field_contains_tagged_value_type_in_collection

    @functools.wraps(original)
    def probe(self: Any, db_name: str, coll_name: str, field: str, value_type: str) -> bool:
        feature_key = (db_name, coll_name, f"tagged_type:{field}:{value_type}")
        cache = self._collection_features_cache
        if feature_key in cache:
            return bool(cache[feature_key])
        indexed = any(
            index.get("physical_name") and index["fields"] and index["fields"][0] == field
            for index in self._load_indexes(db_name, coll_name)
        )
        if not value_type or not indexed:
            return bool(original(self, db_name, coll_name, field, value_type))
        row = (
            self._require_connection()
            .execute(
                "SELECT 1 FROM documents WHERE db_name = ? AND coll_name = ?"
                f" AND {type_expression_sql(field)} = ? LIMIT 1",
                (db_name, coll_name, value_type),
            )
            .fetchone()
        )
        result = row is not None
        cache[feature_key] = result
        return result

    SQLiteEngine._field_contains_tagged_value_type_in_collection = probe  # type: ignore[method-assign]


def _patch_transaction_auth() -> None:
    from mongoeco.wire._executor_handlers import WireSpecialCommandHandlers

    def authenticated(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def handle(self: Any, context: Any) -> Any:
            self._auth.require_authenticated(context.connection, context.command_name)
            return await original(self, context)

        handle.__yiwang_compat__ = True  # type: ignore[attr-defined]
        return handle

    for name in ("_handle_commit_transaction", "_handle_abort_transaction"):
        setattr(WireSpecialCommandHandlers, name, authenticated(getattr(WireSpecialCommandHandlers, name)))


def _patch_string_equality_sql() -> None:
    import mongoeco.engines.sqlite as sqlite_module
    from mongoeco.engines import sqlite_query
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.engines.sqlite_query import _path_literal, type_expression_sql, value_expression_sql

    original_equals = sqlite_query._translate_scalar_equals

    @functools.wraps(original_equals)
    def scalar_equals(field: str, value: object, *, null_matches_undefined: bool = False) -> tuple[str, list[Any]]:
        if type(value) is not str:
            return original_equals(field, value, null_matches_undefined=null_matches_undefined)  # type: ignore[no-any-return]
        return (
            f"({type_expression_sql(field)} = '' AND {value_expression_sql(field)} = ?"
            f" AND json_type(document, {_path_literal(field)}) = 'text')",
            [value],
        )

    scalar_equals.__yiwang_compat__ = True  # type: ignore[attr-defined]
    sqlite_query._translate_scalar_equals = scalar_equals
    sqlite_module._translate_scalar_equals = scalar_equals  # type: ignore[attr-defined]

    original_multikey = SQLiteEngine._translate_equals_with_multikey

    @functools.wraps(original_multikey)
    def equals_with_multikey(  # noqa: PLR0917 (upstream's signature)
        self: Any, collection_id: int, db_name: str, coll_name: str, plan: Any, index: Any
    ) -> tuple[str, list[object]]:
        feature_key = (db_name, coll_name, f"multikey_entries:{index['name']}")
        cache = self._collection_features_cache
        if feature_key not in cache:
            row = (
                self._require_connection()
                .execute(
                    "SELECT 1 FROM multikey_entries WHERE collection_id = ? AND index_name = ? LIMIT 1",
                    (collection_id, index["name"]),
                )
                .fetchone()
            )
            cache[feature_key] = row is not None
        if cache[feature_key]:
            return original_multikey(self, collection_id, db_name, coll_name, plan, index)  # type: ignore[no-any-return]
        # No array was ever indexed here: the EXISTS branch can match nothing, and only hides the index.
        sql, params = sqlite_query._translate_scalar_equals(
            plan.field, plan.value, null_matches_undefined=plan.null_matches_undefined
        )
        return f"({sql})", list(params)

    SQLiteEngine._translate_equals_with_multikey = equals_with_multikey  # type: ignore[method-assign]
