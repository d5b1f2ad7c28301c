"""Files kept in the database, sealed, in chunks: the one place uploads' bytes live.

Shaped like GridFS's ``fs.chunks`` (``files_id``, ``n``, ``data``), but each chunk
has a string ``_id`` (``<files_id>.<n>``) and is read by it. GridFS itself works on
the embedded mongoeco server (``AsyncGridFSBucket`` was tried: its collections,
indexes and commands are served), but GridFS reads a file with
``find({"files_id": …}).sort("n")``: the embedded engine answers a sort or a
compound index by decoding every chunk of every file, so reading one photo would
cost more with every photo stored. Reads by ``_id`` stay flat on both databases.

Each chunk is sealed on its own (SM4-GCM, ``FieldCipher.seal``) with a purpose
that names the chunk (``file:<files_id>.<n>``), so a chunk cannot be moved into
another file or position, and the PII key rotation job (``yiwang.keyrotation``)
re-seals file chunks like any other sealed field. The file's metadata (chunk
count, size) lives with its owner (``uploads``), which owns its meaning.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from yiwang.errors import NotFound

if TYPE_CHECKING:
    from yiwang.crypto import FieldCipher
    from yiwang.store import Store

CHUNK_BYTES = 255 * 1024  # GridFS's default
COLLECTION = "file_chunks"


def _purpose(chunk_id: str) -> str:
    return f"file:{chunk_id}"


def chunk_id(files_id: str, n: int) -> str:
    return f"{files_id}.{n}"


def seal_chunks(cipher: FieldCipher, files_id: str, data: bytes) -> list[dict[str, Any]]:
    """Blocking (SM4 over the whole file): the chunk documents for ``data``."""
    out = []
    for n, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES)):
        cid = chunk_id(files_id, n)
        piece = base64.b64encode(data[start : start + CHUNK_BYTES]).decode()
        out.append({"_id": cid, "files_id": files_id, "n": n, "data": cipher.seal(_purpose(cid), piece)})
    return out


def open_chunks(cipher: FieldCipher, docs: list[dict[str, Any]]) -> bytes:
    """Blocking: the file's bytes from its chunk documents, in order."""
    return b"".join(base64.b64decode(cipher.open(_purpose(d["_id"]), d["data"])) for d in docs)


async def write(store: Store, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Store sealed chunks; returns the file's reference (kept by the owner's document)."""
    if docs:
        await store[COLLECTION].insert_many(docs, ordered=True)
    return {"files_id": docs[0]["files_id"] if docs else "", "chunks": len(docs)}


async def read_docs(store: Store, ref: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk documents of one file, each read by ``_id``."""
    docs = []
    for n in range(int(ref["chunks"])):
        doc = await store[COLLECTION].find_one({"_id": chunk_id(ref["files_id"], n)})
        if doc is None:
            raise NotFound("file.missing", "文件内容缺失")
        docs.append(doc)
    return docs


async def exists(store: Store, files_id: str) -> bool:
    return await store[COLLECTION].find_one({"_id": chunk_id(files_id, 0)}, projection={"_id": 1}) is not None
