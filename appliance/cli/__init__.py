"""The `appliance` command: serve | tui | models | ingest | ask | keys | sources | backup |
restore | doctor | config, and --version.

Commands that touch data talk to the running server over HTTP, like any client:
the embedded store is locked to the server process.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _server_url(args: argparse.Namespace, settings: Settings) -> str:
    from appliance.client import server_url

    return server_url(settings, getattr(args, "url", None))


def _api_key(args: argparse.Namespace, settings: Settings) -> str | None:
    """--key, else $APPLIANCE_API_KEY, else the bootstrap admin key on this server."""
    from appliance.client import api_key

    return api_key(settings, getattr(args, "key", None))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from appliance.api.app import create_app
    from appliance.api.server import ApplianceServer
    from appliance.engine.cpu_backends import CpuError, check_cpu
    from appliance.models.locate import ModelError
    from appliance.models.sizing import SizingError
    from appliance.wiring import plan_for

    settings = _settings(args)
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


def cmd_models(args: argparse.Namespace) -> int:
    from appliance import cli_model_registry as registry
    from appliance.cli_models import print_models

    command = getattr(args, "models_command", None)
    if command == "probe":  # the child `models add` starts: no config needed
        return registry.probe(Path(args.file))
    settings = _settings(args)
    if command == "add":
        return registry.add(settings, Path(args.file), args.name, args.role)
    if command == "use":
        return registry.use(
            settings, args.name, _server_url(args, settings), _api_key(args, settings)
        )
    if command == "list":
        return registry.list_models(settings)
    return print_models(settings, prepare=not args.no_prepare)


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import run_doctor

    report, code = run_doctor(_settings(args))
    print("\n".join(report.lines))
    return code


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    source = args.config or "configs/appliance.toml"
    print(f"{source}: OK")
    print(f"  server   {settings.server.host}:{settings.server.port}")
    print(f"  data_dir {Path(settings.storage.data_dir).expanduser().resolve()}")
    store = settings.storage.qdrant_url or "embedded (under data_dir)"
    print(f"  store    {store}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from appliance.cli_client import ingest

    settings = _settings(args)
    return ingest(
        _server_url(args, settings), _api_key(args, settings), [Path(p) for p in args.paths],
        args.wait,
    )  # fmt: skip


def cmd_ask(args: argparse.Namespace) -> int:
    from appliance.cli_client import ask

    settings = _settings(args)
    return ask(
        _server_url(args, settings), _api_key(args, settings), args.question, args.top_k,
        args.max_tokens,
    )  # fmt: skip


def cmd_keys(args: argparse.Namespace) -> int:
    from appliance.cli_keys import keys_command

    settings = _settings(args)
    return keys_command(_server_url(args, settings), _api_key(args, settings), args)


def cmd_sources(args: argparse.Namespace) -> int:
    from appliance.cli_sources import sources_command

    settings = _settings(args)
    return sources_command(_server_url(args, settings), _api_key(args, settings), args)


def cmd_eval(args: argparse.Namespace) -> int:
    from appliance.cli_eval import eval_command

    settings = _settings(args)
    return eval_command(_server_url(args, settings), _api_key(args, settings), args)


def cmd_backup(args: argparse.Namespace) -> int:
    from appliance.cli_backup import backup

    settings = _settings(args)
    return backup(_server_url(args, settings), _api_key(args, settings), Path(args.path))


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance.cli_backup import restore

    settings = _settings(args)
    return restore(settings, _server_url(args, settings), Path(args.path))


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.__main__ import run_console  # the console is HTTP-only: nothing loads here

    settings = _settings(args)
    return run_console(_server_url(args, settings), _api_key(args, settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance", description="On-prem RAG appliance: documents in, cited answers out."
    )
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: configs/appliance.toml)"
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version, lock hash and build, and exit"
    )
    sub = parser.add_subparsers(dest="command")

    def client_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="server URL (default: from the config)")
        p.add_argument(
            "--key",
            help="API key (default: $APPLIANCE_API_KEY, else <data_dir>/secrets/admin.key)",
        )

    sub.add_parser("serve", help="run the API server").set_defaults(func=cmd_serve)

    models = sub.add_parser(
        "models", help="show (and prepare) models and whether they fit; add | use | list"
    )
    models.add_argument("--no-prepare", action="store_true", help="do not fetch or convert")
    models.set_defaults(func=cmd_models)
    models_sub = models.add_subparsers(dest="models_command")
    add = models_sub.add_parser(
        "add", help="check a GGUF (loads, fits, chat template) and record it with its SHA-256"
    )
    add.add_argument("file", help="the .gguf file")
    add.add_argument("--name", help="name to use it by (default: the file name)")
    add.add_argument("--role", choices=["chat", "embedding"], help="default: from the GGUF")
    use = models_sub.add_parser(
        "use",
        help="make an added model the active one of its role (an embedding model with "
        "documents indexed: the running server re-embeds them, then swaps)",
    )
    use.add_argument("name")
    client_options(use)
    models_sub.add_parser("list", help="the added models, their roles and checksums")
    probe = models_sub.add_parser("probe")  # internal: the child process of `models add`
    probe.add_argument("file")

    doctor = sub.add_parser("doctor", help="check that this machine can run the appliance")
    doctor.set_defaults(func=cmd_doctor)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("check", help="validate the config").set_defaults(func=cmd_config_check)

    console = sub.add_parser("tui", help="the admin console (Textual) for a running server")
    client_options(console)
    console.set_defaults(func=cmd_tui)

    keys = sub.add_parser("keys", help="manage API keys (admin)")
    client_options(keys)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("list", help="list the keys (never their secrets)")
    create = keys_sub.add_parser("create", help="make a key; its secret is shown once")
    create.add_argument("--role", choices=["admin", "ingest", "query"], required=True)
    create.add_argument("--name", required=True, help="who or what the key is for")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)

    from appliance.cli_sources import add_parser as add_sources_parser

    sources = add_sources_parser(sub)
    client_options(sources)
    sources.set_defaults(func=cmd_sources)

    from appliance.cli_eval import add_parser as add_eval_parser

    evaluation = add_eval_parser(sub)
    client_options(evaluation)
    evaluation.set_defaults(func=cmd_eval)

    backup = sub.add_parser("backup", help="download a consistent backup from the server (admin)")
    client_options(backup)
    backup.add_argument("path", help="archive to write (.tar.gz)")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a backup into data_dir (server stopped)")
    restore.add_argument("--url", help="server URL, to check that it is stopped")
    restore.add_argument("path", help="archive made by `appliance backup`")
    restore.set_defaults(func=cmd_restore)

    for name, helptext in (("ingest", "upload files or directories"), ("ask", "ask a question")):
        p = sub.add_parser(name, help=helptext)
        client_options(p)
        if name == "ingest":
            p.add_argument("paths", nargs="+", help="files or directories")
            p.add_argument(
                "--no-wait", dest="wait", action="store_false", help="do not follow the job"
            )
            p.set_defaults(func=cmd_ingest)
        else:
            p.add_argument("question")
            p.add_argument("--top-k", type=int, default=None)
            p.add_argument("--max-tokens", type=int, default=None)
            p.set_defaults(func=cmd_ask)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from appliance.build_info import read_build_info

        print(read_build_info().line())
        return 0
    if args.command is None:
        parser.error("a command is required")
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"appliance: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return result
