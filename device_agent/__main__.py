"""python -m device_agent [--dev] [--server URL] [--port N] [--state-dir DIR] [--enrol CODE]"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from device_agent.agent import Agent, EnrolmentError
from device_agent.config import SETTINGS, load_agent_config


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m device_agent", description="一网 kiosk device agent",
        epilog="Environment: " + "; ".join(f"{k} ({v[1]})" for k, v in SETTINGS.items()),
    )
    parser.add_argument("--server", help="server base URL")
    parser.add_argument("--port", type=int, help="local port of the kiosk page")
    parser.add_argument("--state-dir", type=Path, help="where the credential and cache live")
    parser.add_argument("--enrol", dest="enrolment_code", help="one-time enrolment code from the console")
    parser.add_argument("--dev", action="store_true", help="development: dev drivers, self-enrol with a dev code")
    parser.add_argument("--hardware", action="store_true", help="real peripherals (see README)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = load_agent_config(
        server=args.server.rstrip("/") if args.server else None, listen_port=args.port, state_dir=args.state_dir,
        enrolment_code=args.enrolment_code, dev=args.dev, drivers="hardware" if args.hardware else None,
    )
    agent = Agent(config)
    print(f"一网 device agent: kiosk page on http://{config.listen_host}:{config.listen_port}/kiosk/ "
          f"(server {config.server}; dev drivers in {config.state_dir})", flush=True)
    try:
        web.run_app(agent.app(), host=config.listen_host, port=config.listen_port, print=None)
    except EnrolmentError as error:
        print(f"注册失败：{error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
