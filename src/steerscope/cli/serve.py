"""steerscope serve [MODEL] --vectors DIR_OR_FILE... [--host] [--port] [--api-key] [--allow-remote] [limits]"""

from __future__ import annotations

import os
import sys

from .common import non_negative_float, positive_float, positive_int
from .explore import add_server_args

# the Limits fields with a flag (in --help order): its type and help; the default shown in parentheses is Limits()'s
LIMIT_FLAGS = {"max_batch": (positive_int, "rows decoded together "),
               "batch_window_ms": (non_negative_float, "an idle server waits this long to batch a burst "),
               "max_tokens": (positive_int, "per request "), "max_prompt_tokens": (positive_int, ""),
               "max_vectors": (positive_int, "steering vectors per request "),
               "max_scale": (positive_float, "largest |scale| "), "max_body_bytes": (positive_int, "")}


def register(commands, groups) -> None:
    from ..app.limits import Limits

    p = commands.add_parser("serve", help="OpenAI-compatible server with per-request steering vectors")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="Hub id (cached), local dir or .gguf; default: embedded SmolLM2")
    p.add_argument("--vectors", nargs="+", default=[], metavar="DIR_OR_FILE",
                   help="run directories (vectors named RUN/INDEX) and .safetensors files (STEM or STEM/INDEX)")
    add_server_args(p, 8000)
    p.add_argument("--api-key", default=os.environ.get("STEERSCOPE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $STEERSCOPE_API_KEY, else none)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps ...; default cuda when available")
    p.add_argument("--dtype", help="float32, bfloat16, float16; default fp32 on CPU, bf16 on GPU")
    p.add_argument("--explore", metavar="RUN_DIR|FILE",
                   help="vectors for the explorer page at /explore/ (default: the first --vectors entry)")
    for name, (kind, text) in LIMIT_FLAGS.items():
        default = getattr(Limits(), name)
        shown = f"{default:g}" if isinstance(default, float) else default
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{text}({shown})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..app.explorer import load_source
    from ..app.limits import Limits
    from ..app.net import bind, host_allowlist, make_server, url_of
    from ..app.server import create_app, model_for

    limits = Limits(**{name: getattr(args, name) for name in LIMIT_FLAGS})
    explore = args.explore or (args.vectors[0] if args.vectors else None)
    source = load_source(explore) if explore else None
    # bound first: a taken port fails fast, before the model loads; the socket closes on the way out
    with bind(args.host, args.port, args.allow_remote) as sock:
        model = model_for(args.model, None, device=args.device, dtype=args.dtype)
        app = create_app(model, args.vectors, limits=limits, explorer=source, api_key=args.api_key,
                         allowed_hosts=host_allowlist(args.allow_remote))
        url = url_of(sock)
        n = len(app.state.ctx.registry.names())
        page = f"; explorer {url}explore/" if source is not None else ""
        print(f"steerscope serve: {url}v1  ({model.name}, {n} vectors{page}; Ctrl+C to stop)", flush=True)
        if args.allow_remote and not args.api_key:
            sys.stderr.write("warning: --allow-remote without --api-key: anyone who can reach this address can "
                             "run the model\n")
        make_server(app).run(sockets=[sock])
    return 0
