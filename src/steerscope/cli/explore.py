"""steerscope explore RUN_DIR|VECTOR_FILE [--port] [--host] [--allow-remote] [--model]

The explorer is a page of the steerscope server (``steerscope serve``); this command serves it for one run, with
the run's vectors also registered for the OpenAI endpoints under /v1.
"""

from __future__ import annotations

import argparse
import sys

from .common import add_model_arg

DEFAULT_PORT = 8765


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: ports are 0..65535 (0 picks a free one)")
    return value


def add_server_args(p: argparse.ArgumentParser, port: int) -> None:
    """--host, --port and --allow-remote (``explore`` and ``serve``)."""
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=port_number, default=port, help=f"default {port}; 0 picks a free port")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (anyone who can reach it can run the model)")


def register(commands, groups) -> None:
    p = commands.add_parser("explore", help="local web page: compare steered and unsteered completions by hand")
    p.add_argument("source", metavar="RUN_DIR|VECTOR_FILE", help="a run directory or a .safetensors vector file")
    add_model_arg(p)
    add_server_args(p, DEFAULT_PORT)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..app.explorer import load_source
    from ..app.net import bind, host_allowlist, make_server, url_of
    from ..app.server import create_app, model_for

    source = load_source(args.source)
    # bound first: a taken port fails fast, before the model loads; the socket closes on the way out
    with bind(args.host, args.port, args.allow_remote) as sock:
        model = model_for(args.model, source.model_name)
        # validates every vector against the model before any thread starts: a wrong width exits with code 2
        app = create_app(model, [args.source], explorer=source, allowed_hosts=host_allowlist(args.allow_remote))
        print(f"steerscope explorer: {url_of(sock)}explore/  ({len(source.vectors)} vectors from {source.label}, "
              f"model {model.name}; OpenAI API at {url_of(sock)}v1; Ctrl+C to stop)", flush=True)
        if args.allow_remote:
            sys.stderr.write("warning: --allow-remote: anyone who can reach this address can run the model\n")
        make_server(app).run(sockets=[sock])
    return 0
