"""排队取号 and 预约 in the mini-program: a hall's queues, remote tickets (door QR code or within the
hall's area), appointments in slots. Each handler declares its path and operations like the rest
of ``mobile_api.handlers``. Domain: ``yiwang.hall_queue``."""

from __future__ import annotations

from mobile_api.base import LEVEL_APPLY, MobileHandler, PublicHandler
from mobile_api.schemas import DATETIME, NULLABLE_STR, arr, list_of, obj, op, operations, path_param
from yiwang import hall_queue
from yiwang.errors import Forbidden

TAGS = ("排队取号与预约",)
NULLABLE_INT = {"type": ["integer", "null"]}
HALL = [path_param("hall", "大厅编码，如 gz-th-center")]
TICKET_ID = [path_param("ticket_id", "号票 id")]
APPOINTMENT_ID = [path_param("appointment_id", "预约 id")]
TICKET = obj(
    {
        "id": {"type": "string"},
        "hall": {"type": "string"},
        "day": {"type": "string", "description": "北京时间日期"},
        "number": {"type": "string", "description": "号码，如 A012（每个类别每天从 001 起）"},
        "category": {"type": "string"},
        "category_name": {"type": "string"},
        "status": {"type": "string", "enum": ["waiting", "called", "done", "no_show", "cancelled"]},
        "status_label": {"type": "string"},
        "priority": {"type": ["string", "null"], "description": "appointment | elderly | disabled"},
        "source": {"type": "string", "enum": ["kiosk", "mobile", "appointment"]},
        "transferred": {"type": "boolean", "description": "由其他窗口转入"},
        "window": NULLABLE_STR,
        "taken_at": DATETIME,
        "called_at": {"type": ["string", "null"]},
        "ahead": {**NULLABLE_INT, "description": "前面还有几人（等候中时）"},
        "wait_minutes": {**NULLABLE_INT, "description": "预计等候分钟（按近期办理时长估算）"},
    },
    ["id", "hall", "number", "category", "status", "ahead", "wait_minutes"],
)
CATEGORY = obj(
    {
        "code": {"type": "string"},
        "name": {"type": "string"},
        "windows": arr({"type": "string"}),
        "waiting": {"type": "integer"},
        "wait_minutes": {"type": "integer"},
    },
    ["code", "name", "waiting", "wait_minutes"],
)
OVERVIEW = obj(
    {
        "hall": {"type": "string"},
        "hall_name": {"type": "string"},
        "day": {"type": "string"},
        "categories": arr(CATEGORY),
        "priority": arr({"type": "string", "enum": ["elderly", "disabled"]}),
        "remote": {"type": "object", "description": "远程取号：须扫描门口二维码，或在大厅坐标范围内"},
    },
    ["hall", "categories"],
)
APPOINTMENT = obj(
    {
        "id": {"type": "string"},
        "hall": {"type": "string"},
        "day": {"type": "string"},
        "slot": {"type": "string", "description": "时段开始时间 HH:MM（北京时间）"},
        "category": {"type": "string"},
        "category_name": {"type": "string"},
        "status": {"type": "string", "enum": ["booked", "checked_in"]},
        "ticket": NULLABLE_STR,
    },
    ["id", "hall", "day", "slot", "category", "status"],
)
POSITION = obj({"lat": {"type": "number"}, "lng": {"type": "number"}}, ["lat", "lng"])
PRESENCE = {
    "door_code": {"type": "string", "maxLength": 64, "description": "大厅门口二维码内容 YWQ1:…"},
    "position": {**POSITION, "description": "wx.getLocation 的坐标（gcj02），大厅设置了坐标时可用"},
}


class ResidentQueueHandler(MobileHandler):
    def account(self) -> str:
        if self.principal.kind != "resident":
            raise Forbidden("auth.resident_only", "仅限市民账号使用")
        return self.principal.account_id


class QueueHallHandler(PublicHandler):
    path = "/queue/halls/{hall}"
    api = operations(
        get=op("大厅的业务类别、等候人数和预计等候时间", OVERVIEW, auth=False, params=HALL, tags=TAGS),
    )

    async def get(self, hall: str) -> None:
        self.write_json(await hall_queue.overview(self.services, hall))


class QueueSlotsHandler(PublicHandler):
    path = "/queue/halls/{hall}/slots"
    api = operations(
        get=op(
            "某日某类别的预约时段与剩余名额",
            obj({"hall": {"type": "string"}, "category": {"type": "string"}, "day": {"type": "string"},
                 "slots": arr(obj({"slot": {"type": "string"}, "limit": {"type": "integer"},
                                   "remaining": {"type": "integer"}, "open": {"type": "boolean"}},
                                  ["slot", "limit", "remaining", "open"]))},
                ["slots"]),
            auth=False,
            params=[
                *HALL,
                {"name": "category", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 4}},
                {"name": "day", "in": "query", "required": True,
                 "schema": {"type": "string", "maxLength": 10, "description": "YYYY-MM-DD"}},
            ],
            tags=TAGS,
        ),
    )  # fmt: skip

    async def get(self, hall: str) -> None:
        self.write_json(await hall_queue.slots(self.services, hall, self.get_query_argument("category", ""),
                                               self.get_query_argument("day", "")))


class QueueTicketsHandler(ResidentQueueHandler):
    path = "/queue/tickets"
    api = operations(
        get=op("我今天的号票（含前面人数、预计等候）", list_of("tickets", TICKET), tags=TAGS),
        post=op(
            "远程取号：须带大厅门口二维码内容，或（大厅设置了坐标时）在大厅范围内的位置",
            TICKET,
            status="201",
            body=obj(
                {
                    "hall": {"type": "string", "maxLength": 64},
                    "category": {"type": "string", "maxLength": 4},
                    "priority": {"type": ["string", "null"], "enum": ["elderly", "disabled", None],
                                 "description": "大厅开放的优先类别，到窗口出示证件"},
                    **PRESENCE,
                },
                ["hall", "category"],
            ),
            errors=("400", "404", "409"),
            tags=TAGS,
            description="门口二维码无效 → 403 queue.door_code_invalid；不在范围内 → 403 queue.too_far；"
            "都没有 → 403 queue.presence_required；当天在该大厅已有等候中的号 → 409 queue.ticket_held。"
            "快到号（默认前面 3 人）时发订阅消息 yiwang-queue-near（需事先订阅）。",
            invalid="queue.ticket_invalid",
        ),
    )

    async def get(self) -> None:
        self.write_json({"tickets": await hall_queue.my_tickets(self.services, self.account())})

    async def post(self) -> None:
        body = self.json_body()
        ticket = await hall_queue.remote_ticket(
            self.services, self.account(), self.principal.actor, body.get("hall"), body.get("category"),
            door_code=body.get("door_code"), position=body.get("position"), priority_claim=body.get("priority"),
        )
        self.write_json(ticket, 201)


class QueueTicketHandler(ResidentQueueHandler):
    path = "/queue/tickets/{ticket_id}"
    api = operations(get=op("一张号票（前面人数、预计等候）", TICKET, params=TICKET_ID, tags=TAGS))

    async def get(self, ticket_id: str) -> None:
        self.write_json(await hall_queue.get_ticket(self.services, ticket_id, account_id=self.account()))


class QueueTicketCancelHandler(ResidentQueueHandler):
    path = "/queue/tickets/{ticket_id}/cancel"
    api = operations(post=op("取消等候中的号票", TICKET, params=TICKET_ID, errors=("404", "409"), tags=TAGS))

    async def post(self, ticket_id: str) -> None:
        self.write_json(await hall_queue.cancel_ticket(self.services, self.account(), self.principal.actor,
                                                       ticket_id))


class QueueAppointmentsHandler(ResidentQueueHandler):
    path = "/queue/appointments"
    api = operations(
        get=op("我的预约（今天及以后）", list_of("appointments", APPOINTMENT), tags=TAGS),
        post=op(
            "预约：某大厅、某日、某类别的一个时段（每段有名额上限；每人每天每个大厅一个预约）",
            APPOINTMENT,
            status="201",
            body=obj(
                {
                    "hall": {"type": "string", "maxLength": 64},
                    "category": {"type": "string", "maxLength": 4},
                    "day": {"type": "string", "maxLength": 10, "description": "YYYY-MM-DD"},
                    "slot": {"type": "string", "maxLength": 5, "description": "HH:MM"},
                },
                ["hall", "category", "day", "slot"],
            ),
            errors=("400", "404", "409"),
            level=LEVEL_APPLY,
            tags=TAGS,
            description="约满 → 409 queue.slot_full；当天已有预约 → 409 queue.appointment_held；"
            "非工作日 → 400 queue.day_closed；超出可预约天数 → 400 queue.day_out_of_range。",
            invalid="queue.appointment_invalid",
        ),
    )

    async def get(self) -> None:
        self.write_json({"appointments": await hall_queue.my_appointments(self.services, self.account())})

    async def post(self) -> None:
        body = self.json_body()
        index = self.resident_index(LEVEL_APPLY)
        view = await hall_queue.book(self.services, index, self.account(), self.principal.actor, body.get("hall"),
                                     body.get("category"), body.get("day"), body.get("slot"))
        self.write_json(view, 201)


class QueueAppointmentCancelHandler(ResidentQueueHandler):
    path = "/queue/appointments/{appointment_id}/cancel"
    api = operations(
        post=op("取消预约（名额退回）", obj({"ok": {"type": "boolean"}}, ["ok"]), params=APPOINTMENT_ID, tags=TAGS),
    )

    async def post(self, appointment_id: str) -> None:
        await hall_queue.cancel_appointment(self.services, self.account(), self.principal.actor, appointment_id)
        self.write_json({"ok": True})


class QueueAppointmentCheckInHandler(ResidentQueueHandler):
    path = "/queue/appointments/{appointment_id}/check-in"
    api = operations(
        post=op(
            "预约当天到厅签到取号（门口二维码或位置），预约号按大厅设置优先",
            TICKET,
            status="201",
            body=obj(PRESENCE, []),
            params=APPOINTMENT_ID,
            errors=("400", "404", "409", "410"),
            tags=TAGS,
            invalid="queue.check_in_invalid",
        ),
    )

    async def post(self, appointment_id: str) -> None:
        body = self.json_body()
        ticket = await hall_queue.check_in(self.services, self.account(), self.principal.actor, appointment_id,
                                           door_code=body.get("door_code"), position=body.get("position"))
        self.write_json(ticket, 201)
