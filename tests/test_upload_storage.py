"""Uploads live in the database (sealed chunks), not on one host's disk; uploads an earlier
version sealed under DATA_DIR/uploads are still read, and are moved in by migration 3."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import secrets

import pytest
from PIL import Image

from yiwang import audit, filestore, keyrotation, migrations, uploads
from yiwang.boot import open_services
from yiwang.config import Config
from yiwang.crypto import FieldCipher
from yiwang.errors import InvalidInput
from yiwang.store import Store
from yiwang.timeutil import utcnow

OWNER = "owner-index"


def noisy_jpeg(side: int = 1400) -> bytes:
    """A photo whose re-encoded JPEG spans several chunks."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


async def test_an_upload_is_kept_sealed_in_database_chunks_and_nothing_on_disk(services, config: Config) -> None:
    view = await uploads.store_upload(services, OWNER, audit.SYSTEM, noisy_jpeg())
    doc = await services.store["uploads"].find_one({"_id": view["id"]})
    main = doc["files"]["main"]
    assert main["chunks"] > 1 and doc["files"]["thumb"]["chunks"] == 1
    chunks = [c async for c in services.store["file_chunks"].find({"files_id": main["files_id"]})]
    assert len(chunks) == main["chunks"]
    assert all(b"\xff\xd8" not in base64.b64decode(c["data"])[:64] for c in chunks)  # sealed, not JPEG
    assert not (config.data_dir / "uploads").exists()
    content_type, data = await uploads.read_upload(services, OWNER, audit.SYSTEM, view["id"])
    assert content_type == "image/jpeg" and len(data) == view["size"]
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (view["width"], view["height"])
    # A chunk cannot be moved to another position: its purpose names it.
    first, second = chunks[0], chunks[1]
    await services.store["file_chunks"].update_one({"_id": first["_id"]}, {"$set": {"data": second["data"]}})
    with pytest.raises(InvalidInput):
        await uploads.read_upload(services, OWNER, audit.SYSTEM, view["id"])


def legacy_upload(config: Config, cipher: FieldCipher, upload_id: str, jpeg: bytes) -> dict:
    """An upload as an earlier version kept it: sealed whole under DATA_DIR/uploads."""
    directory = config.data_dir / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    for name in (f"{upload_id}.jpg.sealed", f"{upload_id}.thumb.jpg.sealed"):
        (directory / name).write_text(cipher.seal("upload", base64.b64encode(jpeg).decode()))
    return {"_id": upload_id, "owner": OWNER, "uploaded_by": "system", "created_at": utcnow(),
            "content_type": "image/jpeg", "size": len(jpeg), "width": 10, "height": 10, "thumbnail": True}


async def test_a_disk_upload_is_still_read_then_moved_into_the_database(services, config: Config) -> None:
    jpeg = noisy_jpeg(64)
    upload_id = secrets.token_hex(16)
    await services.store["uploads"].insert_one(legacy_upload(config, services.cipher, upload_id, jpeg))
    assert (await uploads.read_upload(services, OWNER, audit.SYSTEM, upload_id))[1] == jpeg  # from the disk
    counts = await uploads.import_disk_uploads(services.store, services.cipher, config.data_dir)
    assert counts == {"moved": 1, "already": 0, "orphans": 0}
    assert not list((config.data_dir / "uploads").iterdir())
    assert (await uploads.read_upload(services, OWNER, audit.SYSTEM, upload_id))[1] == jpeg  # from the database
    again = await uploads.import_disk_uploads(services.store, services.cipher, config.data_dir)
    assert again["moved"] == 0


async def test_migration_3_moves_this_hosts_disk_uploads_at_start_up(config: Config, store: Store) -> None:
    meta = await store["meta"].find_one({"_id": "schema_version"})
    assert meta["version"] == 2  # prepared without DATA_DIR and keys: migration 3 waits for the server
    cipher = FieldCipher(config.pii_key, config.blind_index_key)
    jpeg = noisy_jpeg(48)
    await store["uploads"].insert_one(legacy_upload(config, cipher, "a" * 32, jpeg))
    services = await open_services(config, store=store)
    try:
        assert (await store["meta"].find_one({"_id": "schema_version"}))["version"] == len(migrations.MIGRATIONS)
        doc = await store["uploads"].find_one({"_id": "a" * 32})
        assert doc["files"]["main"]["chunks"] == 1
        assert (await uploads.read_upload(services, OWNER, audit.SYSTEM, "a" * 32))[1] == jpeg
    finally:
        await services.close(close_store=False)


async def test_pii_key_rotation_reseals_file_chunks(services, config: Config) -> None:
    view = await uploads.store_upload(services, OWNER, audit.SYSTEM, noisy_jpeg(200))
    new_key = secrets.token_bytes(16)
    rotating = FieldCipher(new_key, config.blind_index_key, (config.pii_key,))
    assert await keyrotation.reseal_collection(services.store, rotating, filestore.COLLECTION) >= 2
    retired = await open_services(dataclasses.replace(config, pii_key=new_key), store=services.store)
    try:
        _, data = await uploads.read_upload(retired, OWNER, audit.SYSTEM, view["id"])
        assert len(data) == view["size"]
    finally:
        await retired.close(close_store=False)
