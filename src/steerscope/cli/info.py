"""steerscope info [MODEL]"""

from __future__ import annotations

from .common import add_load_args


def register(commands, groups) -> None:
    p = commands.add_parser("info", help="show a model's layers, width and architecture")
    p.add_argument("model", nargs="?", help="Hub id (cached), local dir or .gguf; default: embedded")
    add_load_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from .common import load_model_from_args  # looked up at run time (tests replace it)

    m = load_model_from_args(args)
    info = {"name": m.name, "model_type": m.model_type, "n_layers": m.n_layers, "d_model": m.d_model,
            "layers_path": m.arch.layers, "parameters": sum(p.numel() for p in m.hf.parameters()),
            "dtype": str(m.dtype).removeprefix("torch."), "device": str(m.device),
            "devices": sorted(str(d) for d in m.devices),
            "chat_template": bool(getattr(m.tokenizer, "chat_template", None))}
    print(json.dumps(info, indent=2))
    return 0
