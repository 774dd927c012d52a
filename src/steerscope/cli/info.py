"""steerscope info [MODEL]"""

from __future__ import annotations


def register(commands, groups) -> None:
    p = commands.add_parser("info", help="show a model's layers, width and architecture")
    p.add_argument("model", nargs="?", default=None, help="Hub id (cached), local dir or .gguf; default: embedded")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..models.load import load_model

    m = load_model(args.model)
    info = {
        "name": m.name,
        "model_type": m.model_type,
        "n_layers": m.n_layers,
        "d_model": m.d_model,
        "layers_path": m.arch.layers,
        "parameters": sum(p.numel() for p in m.hf.parameters()),
        "dtype": str(m.dtype).removeprefix("torch."),
        "device": str(m.device),
        "chat_template": bool(getattr(m.tokenizer, "chat_template", None)),
    }
    print(json.dumps(info, indent=2))
    return 0
