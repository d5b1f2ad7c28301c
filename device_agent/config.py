"""The agent's own settings: environment (``AGENT_*``) with command-line overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SETTINGS = {
    "AGENT_SERVER": ("http://127.0.0.1:8000", "server base URL"),
    "AGENT_STATE_DIR": ("./var/agent", "credential (0600), message cursor, offline cache"),
    "AGENT_LISTEN_HOST": ("127.0.0.1", "where the kiosk page is served (keep it on loopback)"),
    "AGENT_LISTEN_PORT": ("8765", "port of the kiosk page"),
    "AGENT_DRIVERS": ("dev", "dev (folders and files) | hardware (OpenCV camera, CUPS over IPP, GA 467 reader)"),
    "AGENT_CAMERA_DIR": ("", "dev camera: folder of images to decode (default STATE_DIR/camera)"),
    "AGENT_PRINT_DIR": ("", "dev printer: folder receiving PDFs (default STATE_DIR/printed)"),
    "AGENT_ID_CARD_FILE": ("", "dev reader: JSON file read as a card (default STATE_DIR/id-card.json)"),
    "AGENT_PRINTER": ("kiosk", "hardware printer: the CUPS queue (lpadmin -p NAME)"),
    "AGENT_CUPS_URL": ("http://127.0.0.1:631", "hardware printer: the local CUPS, spoken to over IPP"),
    "AGENT_CAMERA_INDEX": ("0", "hardware camera: OpenCV device index"),
    "AGENT_CAMERA_RESOLUTION": ("1280x720", "hardware camera: capture size WIDTHxHEIGHT"),
    "AGENT_CAMERA_FOCUS": ("auto", "hardware camera: auto | fixed focus 0…255 (a kiosk's phone distance)"),
    "AGENT_CAMERA_EXPOSURE": ("auto", "hardware camera: auto | exposure in 100 µs units (short = less glare blur)"),
    "AGENT_SCANNERS": ("", "QR modules: serial:PATH[@BAUD],keyboard:/dev/input/by-id/…-event-kbd"),
    "AGENT_SPEAKER": ("", "espeak (sound card) | wav (files in STATE_DIR/spoken) | none; default: wav in dev, espeak"),
    "AGENT_SPEAKER_VOICE": ("cmn", "espeak-ng voice for read-aloud: cmn (Mandarin) | yue (Cantonese)"),
    "AGENT_ID_READER_PORT": ("/dev/ttyUSB0", "hardware ID-card reader (GA 467 SAM): serial port"),
    "AGENT_ID_READER_BAUD": ("115200", "hardware ID-card reader: baud rate"),
    "AGENT_WLT_DECODER": ("", "optional module:function turning the card's WLT photo into a BMP (vendor library)"),
    "AGENT_CACHE_MAX_MB": ("64", "offline cache of guidance pages: size bound (least recently used go first)"),
    "AGENT_MACHINE_ID_FILE": ("/etc/machine-id", "enrolment bound to this machine by a hash of it (empty: not bound)"),
    "AGENT_HEARTBEAT_SECONDS": ("20", "application heartbeat interval"),
    "AGENT_ENROLMENT_CODE": ("", "one-time code from the console (used once, when not enrolled yet)"),
}


@dataclass(frozen=True)
class CameraSettings:
    """``AGENT_CAMERA_*``: resolution, focus and exposure ("auto" or the camera's own scale)."""

    width: int = 1280
    height: int = 720
    focus: str = "auto"  # "auto" | 0…255 (V4L2 focus_absolute; higher = nearer on most UVC cameras)
    exposure: str = "auto"  # "auto" | V4L2 exposure_time_absolute in 100 µs units (e.g. 150)
    fps: int = 15

    @classmethod
    def parse(cls, resolution: str, focus: str, exposure: str, fps: str = "15") -> CameraSettings:
        width, _, height = resolution.lower().partition("x")
        settings = cls(int(width), int(height), focus.strip().lower() or "auto", exposure.strip().lower() or "auto",
                       int(fps))
        for name, value in (("focus", settings.focus), ("exposure", settings.exposure)):
            if value != "auto" and not value.replace(".", "", 1).isdigit():
                raise ValueError(f"AGENT_CAMERA_{name.upper()} 应为 auto 或数值")
        return settings

    def capture_properties(self) -> list[tuple[str, float]]:
        """(OpenCV ``CAP_PROP_*`` name, value) in the order they are set (V4L2 backend)."""
        props: list[tuple[str, float]] = [("CAP_PROP_FRAME_WIDTH", self.width), ("CAP_PROP_FRAME_HEIGHT", self.height),
                                          ("CAP_PROP_FPS", self.fps), ("CAP_PROP_BUFFERSIZE", 1)]
        if self.focus == "auto":
            props.append(("CAP_PROP_AUTOFOCUS", 1))
        else:
            props += [("CAP_PROP_AUTOFOCUS", 0), ("CAP_PROP_FOCUS", float(self.focus))]
        if self.exposure == "auto":
            props.append(("CAP_PROP_AUTO_EXPOSURE", 3))  # V4L2 aperture-priority (auto)
        else:
            props += [("CAP_PROP_AUTO_EXPOSURE", 1), ("CAP_PROP_EXPOSURE", float(self.exposure))]
        return props


@dataclass(frozen=True)
class AgentConfig:
    server: str = "http://127.0.0.1:8000"
    state_dir: Path = Path("./var/agent")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8765
    drivers: str = "dev"
    camera_dir: Path | None = None
    print_dir: Path | None = None
    id_card_file: Path | None = None
    printer: str = "kiosk"
    cups_url: str = "http://127.0.0.1:631"
    camera_index: int = 0
    camera_resolution: str = "1280x720"
    camera_focus: str = "auto"
    camera_exposure: str = "auto"
    scanners: str = ""
    speaker: str = ""
    speaker_voice: str = "cmn"
    id_reader_port: str = "/dev/ttyUSB0"
    id_reader_baud: int = 115200
    wlt_decoder: str = ""
    heartbeat_seconds: float = 20.0
    cache_max_bytes: int = 64 * 1024 * 1024
    machine_id_file: Path | None = Path("/etc/machine-id")
    enrolment_code: str = ""
    dev: bool = False
    backoff_min: float = 0.5
    backoff_max: float = 30.0
    request_timeout: float = 5.0
    poll_seconds: float = 0.3  # dev drivers: how often folders/files are looked at
    status_seconds: float = 30.0
    warm_cache_on_connect: bool = True

    @property
    def camera_path(self) -> Path:
        return self.camera_dir or self.state_dir / "camera"

    @property
    def print_path(self) -> Path:
        return self.print_dir or self.state_dir / "printed"

    @property
    def id_card_path(self) -> Path:
        return self.id_card_file or self.state_dir / "id-card.json"

    def camera_settings(self) -> CameraSettings:
        return CameraSettings.parse(self.camera_resolution, self.camera_focus, self.camera_exposure)

    def with_(self, **changes: Any) -> AgentConfig:
        return replace(self, **changes)


def load_agent_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> AgentConfig:
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str:
        return env.get(name) or SETTINGS[name][0]

    drivers = get("AGENT_DRIVERS")
    if drivers not in ("dev", "hardware"):
        raise ValueError("AGENT_DRIVERS 只能是 dev 或 hardware")
    values: dict[str, Any] = dict(
        server=get("AGENT_SERVER").rstrip("/"),
        state_dir=Path(get("AGENT_STATE_DIR")),
        listen_host=get("AGENT_LISTEN_HOST"),
        listen_port=int(get("AGENT_LISTEN_PORT")),
        drivers=drivers,
        camera_dir=Path(get("AGENT_CAMERA_DIR")) if get("AGENT_CAMERA_DIR") else None,
        print_dir=Path(get("AGENT_PRINT_DIR")) if get("AGENT_PRINT_DIR") else None,
        id_card_file=Path(get("AGENT_ID_CARD_FILE")) if get("AGENT_ID_CARD_FILE") else None,
        printer=get("AGENT_PRINTER"),
        cups_url=get("AGENT_CUPS_URL").rstrip("/"),
        camera_index=int(get("AGENT_CAMERA_INDEX")),
        camera_resolution=get("AGENT_CAMERA_RESOLUTION"),
        camera_focus=get("AGENT_CAMERA_FOCUS"),
        camera_exposure=get("AGENT_CAMERA_EXPOSURE"),
        scanners=get("AGENT_SCANNERS"),
        speaker=get("AGENT_SPEAKER"),
        speaker_voice=get("AGENT_SPEAKER_VOICE"),
        id_reader_port=get("AGENT_ID_READER_PORT"),
        id_reader_baud=int(get("AGENT_ID_READER_BAUD")),
        wlt_decoder=get("AGENT_WLT_DECODER"),
        heartbeat_seconds=float(get("AGENT_HEARTBEAT_SECONDS")),
        machine_id_file=Path(get("AGENT_MACHINE_ID_FILE")) if env.get("AGENT_MACHINE_ID_FILE", "x") else None,
        cache_max_bytes=int(float(get("AGENT_CACHE_MAX_MB")) * 1024 * 1024),
        enrolment_code=get("AGENT_ENROLMENT_CODE"),
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = AgentConfig(**values)
    config.camera_settings()  # validated at start-up
    return config
