"""The fleet: live device list with filters and alerts, remote commands, enrolment codes."""

from __future__ import annotations

from typing import Any

from console.base import ConsoleHandler
from yiwang import console_accounts, devices
from yiwang.console_accounts import Place, hall_place
from yiwang.errors import InvalidInput
from yiwang.timeutil import format_local

OK_STATES = {"ok", "normal", "ready", "online", True}


def peripheral_faults(peripherals: Any) -> list[str]:
    """Names of peripherals that report anything but healthy (paper out, camera missing…)."""
    faults: list[str] = []
    if not isinstance(peripherals, dict):
        return faults
    for name, state in peripherals.items():
        value = state.get("status", state.get("state")) if isinstance(state, dict) else state
        if isinstance(state, dict) and state.get("paper") in ("out", "empty", "low"):
            faults.append(f"{name}:paper_{state['paper']}")
        elif value not in OK_STATES:
            faults.append(f"{name}:{value}")
    return faults


def _describe(state: Any) -> str:
    if isinstance(state, dict):
        return " / ".join(f"{k}: {v}" for k, v in state.items())
    return str(state)


def row(device: dict[str, Any], halls: dict[str, Any]) -> dict[str, Any]:
    faults = peripheral_faults(device.get("peripherals"))
    return {
        "id": device["id"],
        "label": device.get("label", ""),
        "hall": device["hall"],
        "hall_name": halls.get(device["hall"], {}).get("name", device["hall"]),
        "group": device.get("group") or "",
        "status": device.get("status", "active"),
        "online": bool(device.get("online")),
        "last_seen": format_local(device["last_seen"], "%m-%d %H:%M:%S") if device.get("last_seen") else "—",
        "version": device.get("software_version", ""),
        "peripherals": [
            (name, _describe(state), any(f.startswith(name + ":") for f in faults))
            for name, state in (device.get("peripherals") or {}).items()
        ],
        "faults": faults,
        "alerts": [str(a.get("message", "")) for a in device.get("alerts") or [] if isinstance(a, dict)],
    }


class FleetBase(ConsoleHandler):
    async def fleet(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Devices the user may see, filtered by ?hall=, ?city=, ?fault=offline|peripheral."""
        user = self.current
        halls = await self.halls()
        visible = console_accounts.visible_halls(user, halls)
        hall_filter = self.get_argument("hall", "")
        city_filter = self.get_argument("city", "")
        fault = self.get_argument("fault", "")
        if hall_filter:
            await self.authorise("fleet.view", hall_place(hall_filter, halls))
        elif city_filter:
            await self.authorise("fleet.view", Place("city", city_filter, city_filter))
        elif user.role not in ("province", "city") and not visible:
            await self.authorise("fleet.view", Place("hall", "", ""))
        listed = await devices.list_devices(self.services, hall=hall_filter or None, city=city_filter or None)
        rows = [row(d, halls) for d in listed if d["hall"] in visible and d.get("status") == "active"]
        if fault == "offline":
            rows = [r for r in rows if not r["online"]]
        elif fault == "peripheral":
            rows = [r for r in rows if r["faults"]]
        return rows, visible

    @staticmethod
    def alerts(rows: list[dict[str, Any]]) -> list[str]:
        out: list[str] = []
        for r in rows:
            if not r["online"]:
                out.append(f"{r['hall_name']} {r['label']}：离线（最后在线 {r['last_seen']}）")
            for fault in r["faults"]:
                out.append(f"{r['hall_name']} {r['label']}：外设故障 {fault}")
        return out


class FleetPage(FleetBase):
    async def get(self) -> None:
        rows, visible = await self.fleet()
        halls = await self.halls()
        self.render_page(
            "console/fleet.html", rows=rows, alerts=self.alerts(rows), halls=[(c, halls[c]["name"]) for c in visible],
            filters={k: self.get_argument(k, "") for k in ("hall", "city", "fault")}, enrolment=None, command=None,
        )


class FleetAPI(FleetBase):
    """Polled by the fleet page every few seconds: status and alerts as JSON."""

    async def get(self) -> None:
        rows, _ = await self.fleet()
        self.write_json({"devices": rows, "alerts": self.alerts(rows)})


class CommandHandler(FleetBase):
    async def post(self) -> None:
        device_id = self.form("device")
        command = self.form("command")
        if command not in devices.COMMANDS:
            raise InvalidInput("console.command_invalid", "不支持的设备指令", fields={"command": "不支持"})
        device = await devices.get_device(self.services, device_id[:64])
        await self.authorise("fleet.command", hall_place(device["hall"], await self.halls()))
        message_id = await devices.send_command(
            self.services, {"scope": "device", "device": device["id"]}, command, by=self.actor()
        )
        self.redirect(f"/console/fleet/commands/{message_id}")


class CommandResultHandler(FleetBase):
    async def get(self, message_id: str) -> None:
        status = await devices.delivery_status(self.services, message_id)
        target = status["target"]
        device = await devices.get_device(self.services, str(target.get("device", "")))
        await self.authorise("fleet.view", hall_place(device["hall"], await self.halls()))
        self.render_page("console/command.html", status=status, device=device)


class EnrolHandler(FleetBase):
    async def post(self) -> None:
        hall = self.form("hall")
        halls = await self.halls()
        await self.authorise("fleet.enrol", hall_place(hall, halls))
        code = await devices.create_enrolment_code(
            self.services, hall, self.form("label"), location=self.form("location"),
            group=self.form("group") or None, by=self.actor(),
        )  # devices.create_enrolment_code audits it
        rows, visible = await self.fleet()
        self.render_page(
            "console/fleet.html", rows=rows, alerts=self.alerts(rows), halls=[(c, halls[c]["name"]) for c in visible],
            filters={"hall": "", "city": "", "fault": ""}, enrolment=code, command=None,
        )
