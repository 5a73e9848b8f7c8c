"""`appliance serve`: size the models, then run the API server (the one command that
imports the server, and only when it runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from appliance.cli import options


def register(commands: options.Commands) -> None:
    commands.add_parser("serve", help="run the API server").set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from appliance.engine.cpu_backends import CpuError, check_cpu
    from appliance.models.configured import plan_for
    from appliance.models.locate import ModelError
    from appliance.models.sizing import SizingError
    from appliance.server.app import create_app
    from appliance.server.runner import ApplianceServer

    settings = options.settings(args)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # one line per request to an external inference server (and per readiness check of
    # it) at info: the appliance logs what matters about those itself
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    try:  # fail fast, before uvicorn, with the numbers
        check_cpu()
        plan = plan_for(settings, verify=False)  # checksums: in the background start
    except (CpuError, ModelError, SizingError, ValueError) as exc:
        print(f"appliance: cannot start: {exc}", file=sys.stderr)
        return 1
    if not plan.fits:
        print(f"appliance: refusing to start: {plan.explain()}", file=sys.stderr)
        return 1
    server = settings.server
    for key, path in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
        if path and not Path(path).is_file():
            print(f"appliance: cannot start: server.{key}: no such file {path}", file=sys.stderr)
            return 1
    app = create_app(settings, plan, load_in_background=True)
    config = uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        # the drain (ApplianceServer) has ended every answer before uvicorn's shutdown
        timeout_graceful_shutdown=5,
        # the client address is the peer's: X-Forwarded-For would let any local process
        # pose as a metrics scraper or dodge the per-address rate limit
        proxy_headers=False,
        ssl_certfile=server.tls_cert or None,
        ssl_keyfile=server.tls_key or None,
    )
    runner = ApplianceServer(config, app, server.shutdown_grace_s)
    runner.run()
    if runner.start_failure is not None:
        print(f"appliance: cannot start: {runner.start_failure}", file=sys.stderr)
        return 1
    return 0
