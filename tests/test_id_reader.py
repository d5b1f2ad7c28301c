"""The GA 467 ID-card reader driver against a development reader speaking the protocol on a pty."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_agent.dev.id_reader import PHOTO, PtyIdReader
from device_agent.drivers import ga467
from device_agent.drivers.id_reader import CardReadError, Ga467Reader

RESIDENT = {"name": "陈国华", "sex": "1", "nation": "01", "birth": "19520312",
            "address": "广东省广州市天河区天河路100号", "id_number": "440104195203122151",
            "authority": "广州市公安局天河分局", "valid_from": "20150101", "valid_until": "长期"}
FOREIGNER = {"card_type": "foreign_permanent", "name_en": "SMITH, JOHN", "name": "约翰", "sex": "1",
             "id_number": "USA110050101001", "nationality": "USA", "birth": "19800101",
             "valid_from": "20200101", "valid_until": "20300101", "authority": "1500", "version": "01"}
HK_RESIDENT = {"card_type": "hmt_residence", "name": "李嘉欣", "sex": "2", "birth": "19900715",
               "address": "广东省深圳市福田区", "id_number": "810000199007150027", "authority": "深圳市公安局",
               "valid_from": "20200101", "valid_until": "20250101", "pass_number": "H12345678", "issue_count": "01"}


@pytest.fixture
def pty_reader() -> Iterator[PtyIdReader]:
    reader = PtyIdReader()
    yield reader
    reader.close()


def driver(pty_reader: PtyIdReader, timeout: float = 0.5) -> Ga467Reader:
    return Ga467Reader(pty_reader.port, timeout=timeout, poll_seconds=0.05)


@given(st.sampled_from([ga467.FIND_CARD, ga467.SELECT_CARD, ga467.READ_BASE]), st.binary(max_size=40),
       st.data())
def test_any_single_corrupted_byte_of_a_frame_is_detected(command: tuple[int, int], data: bytes,
                                                          draw: st.DataObject) -> None:
    frame = ga467.command_frame(command, data)
    body = frame[len(ga467.PREAMBLE):]
    assert ga467.parse_command(body) == (*command, data)
    index = draw.draw(st.integers(0, len(body) - 1))
    flip = draw.draw(st.integers(1, 255))
    corrupted = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
    with pytest.raises(ga467.ProtocolError):
        ga467.parse_command(corrupted)


@pytest.mark.parametrize(("card", "card_type"), [(RESIDENT, "resident"), (FOREIGNER, "foreign_permanent"),
                                                 (HK_RESIDENT, "hmt_residence")])
def test_text_block_is_parsed_by_its_card_type(card: dict[str, str], card_type: str) -> None:
    parsed = ga467.parse_base_message(ga467.base_message(ga467.encode_text(card, card_type), PHOTO))
    assert parsed.card_type == card_type
    assert (parsed.name, parsed.id_number, parsed.birth) == (card["name"], card["id_number"], card["birth"])
    assert parsed.photo_wlt == PHOTO
    assert card["name"] not in repr(parsed) and card["id_number"] not in repr(parsed)


async def test_resident_card_is_read_with_every_field(pty_reader: PtyIdReader) -> None:
    pty_reader.place(RESIDENT)
    reader = driver(pty_reader)
    try:
        data = await asyncio.to_thread(reader.read_once)
    finally:
        reader.close()
    assert data is not None
    assert (data.name, data.sex, data.nation, data.birth) == ("陈国华", "男", "汉", "19520312")
    assert (data.address, data.id_number) == (RESIDENT["address"], RESIDENT["id_number"])
    assert (data.authority, data.valid_from, data.valid_until) == (RESIDENT["authority"], "20150101", "长期")
    assert pty_reader.commands == [ga467.FIND_CARD, ga467.SELECT_CARD, ga467.READ_BASE]


async def test_foreign_and_hong_kong_cards_are_recognised(pty_reader: PtyIdReader) -> None:
    reader = driver(pty_reader)
    try:
        pty_reader.place(FOREIGNER)
        card = await asyncio.wait_for(reader.next_card(), 5)
        assert (card.card_type, card.name, card.id_number) == ("foreign_permanent", "约翰", "USA110050101001")
        pty_reader.place(HK_RESIDENT)
        card = await asyncio.wait_for(reader.next_card(), 5)
        assert (card.card_type, card.id_number) == ("hmt_residence", "810000199007150027")
    finally:
        reader.close()


async def test_a_card_left_on_the_reader_is_reported_once(pty_reader: PtyIdReader) -> None:
    reader = driver(pty_reader)
    cards: asyncio.Queue[str] = asyncio.Queue()

    async def agent_loop() -> None:  # what the agent does: wait for card after card
        while True:
            await cards.put((await reader.next_card()).id_number)

    task = asyncio.create_task(agent_loop())
    try:
        pty_reader.place(RESIDENT)
        assert await asyncio.wait_for(cards.get(), 5) == RESIDENT["id_number"]
        await asyncio.sleep(0.5)  # ten more polls with the card still there
        assert cards.empty()
        pty_reader.remove()
        await asyncio.sleep(0.3)
        pty_reader.place(RESIDENT)  # taken away and put back: read again
        assert await asyncio.wait_for(cards.get(), 5) == RESIDENT["id_number"]
    finally:
        task.cancel()
        reader.close()


async def test_a_card_pulled_out_mid_read_is_a_read_error_then_the_next_card_reads(pty_reader: PtyIdReader) -> None:
    reader = driver(pty_reader)
    try:
        pty_reader.place(RESIDENT)
        pty_reader.pull_during_read()
        with pytest.raises(CardReadError) as raised:
            await asyncio.wait_for(reader.next_card(), 5)
        assert "读卡失败" in raised.value.message
        pty_reader.place(RESIDENT)
        assert (await asyncio.wait_for(reader.next_card(), 5)).name == "陈国华"
    finally:
        reader.close()


async def test_a_corrupted_frame_is_asked_for_again(pty_reader: PtyIdReader) -> None:
    reader = driver(pty_reader)
    try:
        pty_reader.place(RESIDENT)
        pty_reader.corrupt_next(1)
        card = await asyncio.wait_for(reader.next_card(), 5)
        assert card.id_number == RESIDENT["id_number"]
        assert pty_reader.commands[:2] == [ga467.FIND_CARD, ga467.FIND_CARD]  # the corrupted answer was re-asked
    finally:
        reader.close()


async def test_a_reader_that_stops_answering_goes_offline_and_comes_back(pty_reader: PtyIdReader) -> None:
    reader = driver(pty_reader, timeout=0.2)
    task = asyncio.create_task(reader.next_card())
    try:
        pty_reader.silent = True
        for _ in range(100):
            await asyncio.sleep(0.05)
            if reader.status() == "offline" and pty_reader.commands:
                break
        assert reader.status() == "offline"
        pty_reader.silent = False
        pty_reader.place(RESIDENT)
        card = await asyncio.wait_for(task, 5)
        assert card.id_number == RESIDENT["id_number"] and reader.status() == "ready"
    finally:
        task.cancel()
        reader.close()
