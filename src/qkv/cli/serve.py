"""``qkv serve`` — the explorer: a local web page over qkv's API, printed as a URL.

    qkv serve                       # http://127.0.0.1:8750
    qkv serve --port 0 --open       # a free port, opened in the browser
    qkv serve --runs runs           # your own training runs too, as run:<folder>

The server binds the loopback interface unless ``--host`` says otherwise (with a warning: anyone who can reach
that address can use the models). It answers only requests whose ``Host`` names it (see docs/explorer.md).
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

from qkv.cli.errors import UserError
from qkv.data.registry import pip_command

DEFAULT_PORT = 8750
SERVE_REQUIREMENTS = ("starlette>=1.0,<2", "uvicorn>=0.30")  # pyproject.toml's serve extra (a test checks)


def install_hint() -> str:
    """The command that installs what ``qkv serve`` needs into this interpreter (the extra's requirements
    themselves: ``qkv[serve]`` would ask the index for qkv, which a clone's qkv may not be)."""
    return f"{pip_command('install', *SERVE_REQUIREMENTS)}  (Starlette and uvicorn: the serve extra)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="open the explorer: a local web page to build attention, inspect models and watch them generate",
        description="Serve the explorer on this machine and print its URL. Models load on first use.",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT}; 0: a free one)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1, this machine only; anything else is reachable by others)",
    )
    parser.add_argument("--runs", metavar="DIR", help="a folder of runs written by `qkv train`, offered as run:<name>")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be from 0 to 65535, got {args.port}")
    runs = None
    if args.runs is not None:
        runs = Path(args.runs).expanduser()
        if not runs.is_dir():
            raise UserError(f"--runs {args.runs}: no such folder; give the folder your runs are in (e.g. runs)")
    try:
        import uvicorn

        from qkv.serve.app import create_app
    except ImportError as error:
        raise UserError(f"qkv serve needs {error.name}: {install_hint()}") from None
    from qkv.serve.config import ServeConfig, allowed_hosts_for, is_loopback

    listener = _listen(args.host, args.port)
    host, port = listener.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    if not is_loopback(args.host):
        print(
            f"qkv serve: warning: listening on {args.host}: anyone who can reach it can read and run the models",
            file=sys.stderr,
        )
    app = create_app(ServeConfig(runs=runs, allowed_hosts=allowed_hosts_for(args.host)))
    print(f"qkv serve: {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, server_header=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    print("qkv serve: stopped", file=sys.stderr)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound before the URL is printed (so ``--port 0`` has its number)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise UserError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        hint = "pass --port 0 for a free one" if error.errno in (98, 48) else "choose another --host or --port"
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); {hint}") from None
    listener.listen(128)
    return listener
