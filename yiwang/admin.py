"""Operators' commands (管理命令): what would otherwise need Python.

    python -m yiwang.admin --help
    python -m yiwang.admin users create --username gz_admin2 --role city --region 440100
    python -m yiwang.admin users disable gz_admin2
    python -m yiwang.admin users reset-totp gz_admin2
    python -m yiwang.admin credentials issue --department gz-psb --kind issuer --label "市公安局证照系统" \
        [--public-key dept-sm2.pub.pem]   # issuer credentials are SM2 key pairs (private key printed once)
    python -m yiwang.admin credentials revoke <id>
    python -m yiwang.admin staff-token --department gz-hrss --label "窗口 3"
    python -m yiwang.admin halls create --code gz-hp-center --name 广州市黄埔区政务服务中心 --city 440100
    python -m yiwang.admin enrolment-code --hall gz-hp-center --label 大厅一号机
    python -m yiwang.admin audit verify
    python -m yiwang.admin catalog export catalogue.json | import catalogue.json
    python -m yiwang.admin backup create --out /backup | restore FILE --data-dir DIR
    python -m yiwang.admin keys census | reseal
    python -m yiwang.admin keys index-census | reindex
    python -m yiwang.admin keys rotate-signing --department gz-psb
    python -m yiwang.admin uploads import-disk

Settings come from the environment as for the server (``yiwang/config.py``).
With no ``MONGODB_URI``, the command uses the embedded database of ``DATA_DIR``:
the running server's (it leaves its address in ``DATA_DIR/embedded.uri``), or,
when no server runs, one it starts itself. Every change is audited as the
operator (``system`` channel). Secrets (passwords, tokens, codes) are printed
once and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from yiwang import audit, backup, catalog_admin, console_accounts, departments, devices, keyrotation, uploads
from yiwang.accounts import issue_staff_token
from yiwang.audit import Actor
from yiwang.boot import open_services
from yiwang.config import Config, load_config
from yiwang.console_accounts import ROLES
from yiwang.errors import YiwangError
from yiwang.runtime import Services
from yiwang.store import Store

Handler = Callable[[Services, argparse.Namespace], Awaitable[Any]]


def operator() -> Actor:
    who = os.environ.get("SUDO_USER") or os.environ.get("USER") or "operator"
    return Actor("operator", who, f"运维 {who}")


async def _connect(config: Config) -> Services:
    uri_file = config.data_dir / "embedded.uri"
    if not config.mongodb_uri and uri_file.exists():
        uri = uri_file.read_text(encoding="utf-8").strip()
        store = Store.connect(uri, config.mongodb_db)
        if await store.ping():
            return await open_services(config, store=store)
        await store.close()
    return await open_services(config)


# ---- the commands ---------------------------------------------------------------------


async def users_create(services: Services, args: argparse.Namespace) -> str:

    password = args.password or getpass.getpass("新用户的初始密码 / initial password: ")
    scope: dict[str, Any] = {"region": args.region} if args.region else {}
    if args.hall:
        scope["halls"] = args.hall
    if args.department:
        scope["department"] = args.department
    user = await console_accounts.create_user(
        services.store, services.offload, username=args.username, password=password, role=args.role, scope=scope,
        display_name=args.display_name or "",
    )  # fmt: skip
    await audit.record(services.store, operator(), "console.user_created", f"console_user:{user.id}", channel="system",
                       detail={"role": args.role})  # fmt: skip
    return f"已创建 {user.username}（{user.role_label}）"


async def users_disable(services: Services, args: argparse.Namespace) -> str:

    user = await console_accounts.disable_user(services.store, args.username, operator())
    return f"已停用 {user.username}，其会话已全部结束"


async def users_reset_totp(services: Services, args: argparse.Namespace) -> str:

    user = await console_accounts.reset_totp(services.store, args.username, operator())
    return f"已重置 {user.username} 的动态验证码；下次登录后请重新绑定"


async def users_list(services: Services, args: argparse.Namespace) -> str:

    rows = [f"{u.username}\t{u.role_label}\t{'已停用' if u.disabled else '正常'}\t{'TOTP' if u.totp_enabled else '-'}"
            for u in await console_accounts.list_users(services.store)]  # fmt: skip
    return "\n".join(rows) or "（没有用户）"


async def credentials_issue(services: Services, args: argparse.Namespace) -> str:

    if args.kind == "issuer":
        public_pem = await asyncio.to_thread(Path(args.public_key).read_bytes) if args.public_key else None
        issuer = await departments.create_issuer_credential(
            services.store, args.department, args.label or "", public_key_pem=public_pem
        )
        credential_id = issuer.id
        shown = (
            f"SM2 公钥：{issuer.public_key}\n部门自备密钥：私钥不经过平台。"
            if issuer.private_pem is None
            else "SM2 私钥（只显示这一次，请交给部门系统保管；平台只保存公钥）/ private key, shown once:\n"
            + issuer.private_pem.decode().strip()
        )
        text = f"凭证 id / X-Yiwang-Credential：{credential_id}\n{shown}"
    else:
        token = await departments.create_credential(services.store, args.department, args.kind, args.label or "")
        credential_id = token.split(".", 1)[0]
        text = f"凭证 id：{credential_id}\n令牌（只显示这一次，请交给部门系统保管）：{token}"
    await audit.record(services.store, operator(), "credential.issued", f"credential:{credential_id}",
                       channel="system", detail={"department": args.department, "kind": args.kind})  # fmt: skip
    return text


async def credentials_revoke(services: Services, args: argparse.Namespace) -> str:

    await departments.revoke_credential(services.store, args.id, operator())
    return f"已吊销凭证 {args.id}"


async def credentials_list(services: Services, args: argparse.Namespace) -> str:

    rows = [
        "\t".join((c["_id"], c["department"], c["kind"], c.get("label", ""), "已吊销" if c.get("revoked") else "有效"))
        for c in await departments.list_credentials(services.store)
    ]
    return "\n".join(rows) or "（没有凭证）"


async def staff_token(services: Services, args: argparse.Namespace) -> str:

    token = await issue_staff_token(services, args.department, args.label)
    await audit.record(services.store, operator(), "staff_token.issued", f"department:{args.department}",
                       channel="system", detail={"label": args.label})  # fmt: skip
    return f"工作人员令牌（只显示这一次）：{token}"


async def halls_create(services: Services, args: argparse.Namespace) -> str:

    hall = await catalog_admin.create_hall(
        services.store, {"code": args.code, "name": args.name, "city": args.city, "address": args.address or ""},
        by=operator().id,
    )  # fmt: skip
    await audit.record(services.store, operator(), "hall.created", f"hall:{hall['code']}", channel="system")
    services.catalog.invalidate()
    return f"已创建大厅 {hall['name']}（{hall['code']}）；开放时间与窗口请在管理后台填写"


async def enrolment_code(services: Services, args: argparse.Namespace) -> str:

    created = await devices.create_enrolment_code(
        services, args.hall, args.label, location=args.location or "", by=operator(), ttl_hours=args.hours
    )
    return f"注册码（只显示这一次，{args.hours} 小时内有效）：{created['code']}"


async def audit_verify(services: Services, args: argparse.Namespace) -> str:

    ok, problem = await audit.verify_chain(services.store)
    if not ok:
        raise SystemExit(f"审计链校验失败：{problem}")
    return "审计链完整"


async def catalog_export(services: Services, args: argparse.Namespace) -> str:

    data = await catalog_admin.export_catalogue(services.store)
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    if args.file == "-":
        return text
    await asyncio.to_thread(Path(args.file).write_text, text + "\n", encoding="utf-8")
    return f"已导出到 {args.file}：" + "，".join(f"{k} {len(v)} 项" for k, v in data.items())


async def catalog_import(services: Services, args: argparse.Namespace) -> str:

    try:
        data = json.loads(await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"无法读取 {args.file}：{error}") from None
    changed = await catalog_admin.import_catalogue(services.store, data, by=operator().id)
    await audit.record(services.store, operator(), "catalog.imported", "catalog", channel="system", detail=changed)
    services.catalog.invalidate()
    return "已导入：" + "，".join(f"{k} 变更 {v} 项" for k, v in changed.items())


async def keys_census(services: Services, args: argparse.Namespace) -> str:

    held = await keyrotation.census(services.store, services.cipher)
    current = services.cipher.current_key_id
    rows = [f"{kid}{'（当前）' if kid == current else ''}\t{count}" for kid, count in sorted(held.items())]
    return "\n".join(rows) or "（没有加密数据）"


async def keys_reseal(services: Services, args: argparse.Namespace) -> str:

    counts = await keyrotation.reseal_all(services.store, services.cipher)
    return "已重新加密：" + ("，".join(f"{k} {v} 项" for k, v in counts.items()) or "无需处理")


async def keys_index_census(services: Services, args: argparse.Namespace) -> str:

    left = await keyrotation.index_census(services.store, services.cipher)
    if not left:
        return "没有旧密钥的盲索引，可以移除 BLIND_INDEX_KEYS_PREVIOUS / no old-key index left"
    return "\n".join(f"{name}\t{count}" for name, count in sorted(left.items()))


async def keys_reindex(services: Services, args: argparse.Namespace) -> str:

    counts = await keyrotation.reindex_all(services.store, services.cipher)
    return "已重建盲索引：" + ("，".join(f"{k} {v} 项" for k, v in counts.items()) or "无需处理")


async def keys_rotate_signing(services: Services, args: argparse.Namespace) -> str:

    key = await departments.rotate_signing_key(services, args.department, by=operator())
    return f"新签名密钥 / new signing key: {key['kid']}（旧密钥已停用，仍可验证 / old key retired, still verifies）"


async def keys_signing(services: Services, args: argparse.Namespace) -> str:

    rows = [f"{k['department']['code']}\t{k['kid']}\t{k['status']}\t{k['not_before']:%Y-%m-%d}\t"
            f"{(k['not_after'] and format(k['not_after'], '%Y-%m-%d')) or '—'}"
            for k in await departments.published_keys(services.store)]  # fmt: skip
    return "\n".join(rows) or "（还没有签名密钥）"


async def uploads_import_disk(services: Services, args: argparse.Namespace) -> str:

    counts = await uploads.import_disk_uploads(services.store, services.cipher, services.config.data_dir)
    return f"已迁入数据库 {counts['moved']} 个，已在库 {counts['already']} 个，无主 {counts['orphans']} 个"


# ---- the parser -------------------------------------------------------------------------


def _group(groups: Any, name: str, text: str) -> Any:
    return groups.add_parser(name, help=text).add_subparsers(dest="action", required=True)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m yiwang.admin",
        description="一网运维命令 / Yiwang operators' commands. "
        "配置取自环境变量（同服务器）/ settings from the environment, as for the server.",
    )
    groups = top.add_subparsers(dest="group", required=True, metavar="COMMAND")

    users = _group(groups, "users", "管理后台账号 / console accounts")
    create = users.add_parser("create", help="创建账号 / create an account")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=list(ROLES))
    create.add_argument("--region", help="行政区划代码 / region code (city, province)")
    create.add_argument("--hall", action="append", help="大厅编码，可重复 / hall code, repeatable")
    create.add_argument("--department", help="部门编码 / department code")
    create.add_argument("--display-name")
    create.add_argument("--password", help="省略时交互输入 / prompted when omitted")
    create.set_defaults(run=users_create)
    for name, run, text in (("disable", users_disable, "停用账号并结束其会话 / disable and sign out"),
                            ("reset-totp", users_reset_totp, "重置动态验证码 / reset TOTP")):  # fmt: skip
        cmd = users.add_parser(name, help=text)
        cmd.add_argument("username")
        cmd.set_defaults(run=run)
    users.add_parser("list", help="列出账号 / list accounts").set_defaults(run=users_list)

    creds = _group(groups, "credentials", "部门接口凭证 / department credentials")
    issue = creds.add_parser("issue", help="签发 / issue")
    issue.add_argument("--department", required=True)
    issue.add_argument("--kind", choices=["issuer", "window"], default="issuer")
    issue.add_argument("--label")
    issue.add_argument(
        "--public-key", help="issuer: the department's own SM2 public key (PEM file); otherwise a key pair is made"
    )
    issue.set_defaults(run=credentials_issue)
    revoke = creds.add_parser("revoke", help="吊销 / revoke")
    revoke.add_argument("id")
    revoke.set_defaults(run=credentials_revoke)
    creds.add_parser("list", help="列出 / list").set_defaults(run=credentials_list)

    staff = groups.add_parser("staff-token", help="签发部门工作人员令牌 / issue a staff token")
    staff.add_argument("--department", required=True)
    staff.add_argument("--label", required=True)
    staff.set_defaults(run=staff_token)

    halls = _group(groups, "halls", "服务大厅 / service halls")
    hall = halls.add_parser("create", help="新建大厅 / create a hall")
    hall.add_argument("--code", required=True)
    hall.add_argument("--name", required=True)
    hall.add_argument("--city", required=True, help="地级市代码 / city code, e.g. 440100")
    hall.add_argument("--address")
    hall.set_defaults(run=halls_create)

    code = groups.add_parser("enrolment-code", help="终端注册码 / a device enrolment code")
    code.add_argument("--hall", required=True)
    code.add_argument("--label", required=True)
    code.add_argument("--location")
    code.add_argument("--hours", type=int, default=72)
    code.set_defaults(run=enrolment_code)

    audit_cmd = _group(groups, "audit", "审计链 / the audit trail")
    audit_cmd.add_parser("verify", help="校验审计链 / verify the chain").set_defaults(run=audit_verify)

    cat = _group(groups, "catalog", "事项目录 / the catalogue")
    export = cat.add_parser("export", help="导出 JSON / export as JSON")
    export.add_argument("file", help="文件，- 为标准输出 / file, - for stdout")
    export.set_defaults(run=catalog_export)
    imp = cat.add_parser("import", help="导入 JSON（先整体校验）/ import JSON (checked whole first)")
    imp.add_argument("file")
    imp.set_defaults(run=catalog_import)

    keys = _group(groups, "keys", "密钥轮换 / key rotation (PII, blind index, SM2 signing)")
    keys.add_parser("census", help="各密钥加密的数据量 / values per key").set_defaults(run=keys_census)
    keys.add_parser("reseal", help="用当前密钥重新加密 / re-seal under the current key").set_defaults(run=keys_reseal)
    keys.add_parser(
        "index-census", help="仍用旧盲索引密钥的数据量 / values still indexed by an old blind-index key"
    ).set_defaults(run=keys_index_census)
    keys.add_parser(
        "reindex", help="用当前盲索引密钥重建索引 / re-index under the current blind-index key"
    ).set_defaults(run=keys_reindex)
    rotate = keys.add_parser(
        "rotate-signing",
        help="为部门换新的 SM2 签名密钥，旧密钥停用但仍公布、仍可验证 / "
        "a new SM2 signing key for a department; the old one is retired, still published, still verifies",
    )
    rotate.add_argument("--department", required=True, help="部门编码 / department code, e.g. gz-psb")
    rotate.set_defaults(run=keys_rotate_signing)
    keys.add_parser(
        "signing", help="各部门签名密钥及有效期 / departments' signing keys and validity"
    ).set_defaults(run=keys_signing)

    up = _group(groups, "uploads", "上传文件 / uploads")
    up.add_parser(
        "import-disk",
        help="把本机 DATA_DIR/uploads 中的旧文件迁入数据库（每台主机运行一次）/ "
        "move this host's DATA_DIR/uploads into the database (once per host)",
    ).set_defaults(run=uploads_import_disk)

    groups.add_parser("backup", help="内嵌数据库备份：见 python -m yiwang.backup --help / embedded database backups",
                      add_help=False)  # fmt: skip
    return top


async def run(args: argparse.Namespace) -> str:
    config = load_config()
    services = await _connect(config)
    try:
        handler: Handler = args.run
        return str(await handler(services, args))
    finally:
        await services.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["backup"]:

        return backup.main(argv[1:])
    args = parser().parse_args(argv)
    try:
        print(asyncio.run(run(args)))
    except YiwangError as error:
        print(f"失败（{error.code}）：{error.message}", file=sys.stderr)
        if error.fields:
            for field, text in error.fields.items():
                print(f"  {field}: {text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
