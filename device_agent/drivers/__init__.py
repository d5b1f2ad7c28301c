"""Peripheral drivers, one small interface each, chosen by ``AGENT_DRIVERS``.

* :class:`Camera` — ``next_code()`` waits for the next QR decoded from the camera.
  Development: a folder of images (drop a PNG in it); hardware: OpenCV capture.
  Decoding uses pyzbar (QR only, binary mode) off the event loop.
* :class:`Printer` — ``print_pdf(data, label)`` returns a job id, ``track(job)``
  yields its progress until completed or failed; ``status()`` is one of
  ``printer.STATES`` (ready | paper_low | toner_low | paper_out | jammed |
  door_open | offline), ``alerts()`` the fleet alerts. Development: PDFs written to a
  folder (write a state such as ``jammed`` into ``<folder>/STATUS`` to simulate), or
  ``device_agent.dev.ipp_printer``; hardware: IPP to the local CUPS.
* :class:`IdReader` — ``next_card()`` waits for the next card (raises
  ``CardReadError`` when a card could not be read). Hardware: a GA 467 SAM reader
  on a serial port (``id_reader.Ga467Reader``, protocol in ``ga467``): name, sex,
  nation, birth date, address, number, issuing authority, validity and the WLT
  photo (opaque; an optional vendor decoder plug-in). Only the number, the name
  and the card type leave the agent, to the server, over TLS. Development: a
  JSON file ``{"id_number", "name"}`` read when it appears and deleted (a card
  placed and taken away), or ``device_agent.dev.id_reader`` on a pty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from device_agent.config import AgentConfig

if TYPE_CHECKING:
    from device_agent.drivers.printer import JobUpdate
    from device_agent.drivers.speaker import EspeakSpeaker, SilentSpeaker


class Camera(Protocol):
    async def next_code(self) -> str: ...

    def status(self) -> str: ...


class Printer(Protocol):
    async def print_pdf(self, data: bytes, label: str) -> str: ...

    def track(self, job: str) -> AsyncIterator[JobUpdate]: ...

    def status(self) -> str: ...

    def alerts(self) -> list[dict[str, str]]: ...


class IdCard(Protocol):
    @property
    def id_number(self) -> str: ...

    @property
    def name(self) -> str: ...


class IdReader(Protocol):
    async def next_card(self) -> IdCard: ...

    def status(self) -> str: ...


def make_drivers(config: AgentConfig) -> tuple[Camera, Printer, IdReader]:
    from device_agent.drivers.camera import FolderCamera, OpenCVCamera
    from device_agent.drivers.id_reader import Ga467Reader, SimulatedReader, load_wlt_decoder
    from device_agent.drivers.printer import FolderPrinter, IppPrinter

    if config.drivers == "hardware":
        reader = Ga467Reader(config.id_reader_port, baudrate=config.id_reader_baud,
                             wlt_decoder=load_wlt_decoder(config.wlt_decoder))
        printer = IppPrinter(f"{config.cups_url}/printers/{config.printer}")
        return OpenCVCamera(config.camera_index, config.camera_settings()), printer, reader
    return (FolderCamera(config.camera_path, config.poll_seconds), FolderPrinter(config.print_path),
            SimulatedReader(config.id_card_path, config.poll_seconds))


def make_speaker(config: AgentConfig) -> EspeakSpeaker | SilentSpeaker:
    from device_agent.drivers.speaker import EspeakSpeaker, SilentSpeaker

    kind = config.speaker or ("espeak" if config.drivers == "hardware" else "wav")
    if kind == "none":
        return SilentSpeaker()
    if kind == "wav":
        return EspeakSpeaker(wav_dir=config.state_dir / "spoken", voice=config.speaker_voice)
    if kind == "espeak":
        return EspeakSpeaker(voice=config.speaker_voice)
    raise ValueError("AGENT_SPEAKER 只能是 espeak、wav 或 none")
