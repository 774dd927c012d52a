"""steerscope serve [MODEL] --vectors DIR_OR_FILE... [--host] [--port] [--api-key] [--allow-remote] [limits]"""

from __future__ import annotations

import os

from .common import non_negative_float, positive_float, positive_int
from .explore import port_number


def register(commands, groups) -> None:
    from ..app.limits import Limits

    d = Limits()
    p = commands.add_parser("serve", help="OpenAI-compatible server with per-request steering vectors")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="Hub id (cached), local dir or .gguf; default: embedded SmolLM2")
    p.add_argument("--vectors", nargs="+", default=[], metavar="DIR_OR_FILE",
                   help="run directories (vectors named RUN/INDEX) and .safetensors files (STEM or STEM/INDEX)")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    p.add_argument("--port", type=port_number, default=8000, help="default 8000; 0 picks a free port")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (anyone who can reach it can run the model)")
    p.add_argument("--api-key", default=os.environ.get("STEERSCOPE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $STEERSCOPE_API_KEY, else none)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ...; default cuda when available")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16; default fp32 on CPU, bf16 on GPU")
    p.add_argument("--explore", default=None, metavar="RUN_DIR|FILE",
                   help="vectors for the explorer page at /explore/ (default: the first --vectors entry)")
    p.add_argument("--max-batch", type=positive_int, default=d.max_batch, help=f"rows decoded together ({d.max_batch})")
    p.add_argument("--batch-window-ms", type=non_negative_float, default=d.batch_window_ms,
                   help=f"an idle server waits this long to batch a burst ({d.batch_window_ms:g})")
    p.add_argument("--max-tokens", type=positive_int, default=d.max_tokens, help=f"per request ({d.max_tokens})")
    p.add_argument("--max-prompt-tokens", type=positive_int, default=d.max_prompt_tokens,
                   help=f"({d.max_prompt_tokens})")
    p.add_argument("--max-vectors", type=positive_int, default=d.max_vectors,
                   help=f"steering vectors per request ({d.max_vectors})")
    p.add_argument("--max-scale", type=positive_float, default=d.max_scale, help=f"largest |scale| ({d.max_scale:g})")
    p.add_argument("--max-body-bytes", type=positive_int, default=d.max_body_bytes, help=f"({d.max_body_bytes})")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..app.explorer import load_source
    from ..app.limits import Limits
    from ..app.net import bind, host_allowlist, make_server, url_of
    from ..app.server import create_app, model_for

    limits = Limits(max_body_bytes=args.max_body_bytes, max_prompt_tokens=args.max_prompt_tokens,
                    max_tokens=args.max_tokens, max_vectors=args.max_vectors, max_scale=args.max_scale,
                    max_batch=args.max_batch, batch_window_ms=args.batch_window_ms)
    explore = args.explore or (args.vectors[0] if args.vectors else None)
    source = load_source(explore) if explore else None
    sock = bind(args.host, args.port, args.allow_remote)  # fail fast on a taken port, before loading the model
    try:
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
    finally:
        sock.close()
    return 0
