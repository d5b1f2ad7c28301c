"""Dashboards per place and period, with server-rendered SVG charts and CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

from console.base import ConsoleHandler
from yiwang import console_accounts, devices, figures
from yiwang.console_accounts import Place, hall_place
from yiwang.errors import InvalidInput


class FiguresBase(ConsoleHandler):
    async def scope(self) -> tuple[str, figures.Scope, list[tuple[str, str]]]:
        """The chosen place (authorised), its Scope, and the places the user may choose from."""
        user = self.current
        snap = await self.services.catalog.snapshot()
        halls, departments = snap.halls, snap.departments
        choices: list[tuple[str, str]] = []
        if user.role == "province":
            choices.append(("province", "全省"))
            choices += [(f"city:{c}", f"城市 {c}") for c in sorted({h.get("city", "") for h in halls.values()})]
        elif user.role == "city":
            choices.append((f"city:{user.region}", f"城市 {user.region}"))
        elif user.role == "department_staff":
            choices.append((f"department:{user.department}", departments.get(user.department, {}).get("name", "")))
        choices += [(f"hall:{c}", halls[c]["name"]) for c in console_accounts.visible_halls(user, halls)]
        if not choices:
            raise InvalidInput("figures.no_place", "本账号没有可查看的统计范围")
        chosen = self.get_argument("place", choices[0][0])
        kind, _, code = chosen.partition(":")
        if kind == "province":
            place = Place.province()
        elif kind == "city":
            place = Place("city", code, code)
        elif kind == "hall":
            place = hall_place(code, halls)
        elif kind == "department":
            place = Place("department", code, str(departments.get(code, {}).get("region", ""))[:4] + "00")
        else:
            raise InvalidInput("figures.place_invalid", "统计范围不正确", fields={"place": "统计范围不正确"})
        await self.authorise("figures.view", place)
        by_hall: dict[str, list[str]] = {}
        for device in await devices.list_devices(self.services):
            by_hall.setdefault(device["hall"], []).append(device["id"])
        return chosen, figures.scope_for(kind, code or "440000", halls, departments, by_hall), choices


class FiguresPage(FiguresBase):
    async def get(self) -> None:
        chosen, scope, choices = await self.scope()
        period = figures.period(self.get_argument("period", "30d"))
        data = await figures.dashboard(self.services.store, scope, period)
        self.render_page(
            "console/figures.html", data=data, scope=scope, chosen=chosen, choices=choices, period=period,
            periods=list(figures.PERIODS), bars=bars, items=self.items_chart(data["applications"]), series=series,
            levels=[(f"{k}分", v) for k, v in sorted(data["evaluations"]["by_level"].items())],
        )

    @staticmethod
    def items_chart(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return [(r["name"][:4], r["total"]) for r in rows[:10]]


class FiguresCSV(FiguresBase):
    async def get(self, name: str) -> None:
        _, scope, _ = await self.scope()
        period = figures.period(self.get_argument("period", "30d"))
        data = await figures.table(self.services.store, name, scope, period)
        out = io.StringIO()
        writer = csv.writer(out)
        for row in figures.csv_rows(name, data):
            writer.writerow([_cell(v) for v in row])
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}-{period.name}.csv"')
        self.finish("\ufeff" + out.getvalue())  # BOM so Excel reads Chinese


def _cell(value: Any) -> Any:
    # No spreadsheet formula injection from names in the data.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def series(rows: list[dict[str, Any]], label: str, value: str) -> list[tuple[str, float]]:
    return [(str(r[label]), float(r[value])) for r in rows]


def bars(series: list[tuple[str, float]], width: int = 560, height: int = 220) -> dict[str, Any]:
    """Geometry for a simple SVG bar chart (rendered by the template)."""
    top = max((v for _, v in series), default=0) or 1
    n = max(len(series), 1)
    slot = (width - 40) / n
    bar_w = max(2.0, slot * 0.7)
    shapes = []
    for i, (label, value) in enumerate(series):
        h = (height - 40) * value / top
        shapes.append({"x": 40 + i * slot, "y": height - 20 - h, "w": bar_w, "h": h, "label": label, "value": value,
                       "show_label": n <= 14 or i % max(1, n // 7) == 0})  # fmt: skip
    return {"width": width, "height": height, "top": top, "shapes": shapes}
