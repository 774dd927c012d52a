"""steerscope export lora VECTOR --out DIR (flags: ExportConfig) | export gguf VECTOR --out FILE
| export import-gguf FILE --out VECTOR"""

from __future__ import annotations

from .common import (
    VECTOR_HELP,
    config_and_model,
    finite_float,
    input_file,
    non_negative_int,
    output_dir,
    output_file,
    vector_spec,
)
from .flags import config_parser


def register(commands, groups) -> None:
    export = groups["export"]

    def lora_data(p) -> None:
        p.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="adapter directory to write")
        p.add_argument("--json", action="store_true", help="print fidelity.json instead of a summary")

    config_parser(export, "lora", "steerscope.export.peft_lora:export_lora", before=lora_data, vector=VECTOR_HELP,
                  help="write a vector as a PEFT LoRA adapter (rank1 or exact bias) + fidelity report", func=run_lora,
                  types={"max_new_tokens": non_negative_int}, choices={"method": ["rank1", "bias"]})

    g = export.add_parser("gguf", help="write a vector as a llama.cpp control vector (--control-vector)")
    g.add_argument("vector", type=vector_spec, help="vector file, or FILE:INDEX")
    g.add_argument("--out", dest="path", required=True, type=output_file, help=".gguf file to write")
    g.add_argument("--scale", type=finite_float, default=1.0, help="baked into the file")
    g.add_argument("--model-hint", help="controlvector.model_hint; default: the vector's model_type")
    g.set_defaults(func=run_gguf)

    i = export.add_parser("import-gguf", help="read a llama.cpp/repeng control-vector .gguf into a steerscope vector")
    i.add_argument("path", metavar="FILE", type=input_file, help="control-vector .gguf")
    i.add_argument("--out", required=True, type=output_file, help="steerscope .safetensors vector file to write")
    i.add_argument("--model-type", help="record this model_type (default: the file's model_hint)")
    i.set_defaults(func=run_import)


def run_lora(args) -> int:
    import json

    from ..export.peft_lora import export_lora
    from ..vector import load_vector

    vector = load_vector(args.vector)
    config, m = config_and_model(args)
    res = export_lora(m, vector, args.out, config=config)
    if args.json:
        print(json.dumps(res.fidelity, indent=2, sort_keys=True))
        return 0
    print(f"wrote {res.method} adapter to {res.path}")
    for layer, module in res.modules.items():
        print(f"  layer {layer}: {module}")
    if held := res.fidelity.get("heldout"):
        print(f"  held-out fidelity ({held['n_sequences']} prompts, {held['n_tokens']} tokens): rel. error mean "
              f"{held['rel_error_mean']:.3g}, worst {held['rel_error_worst']:.3g}; KL mean {held['kl_mean']:.3g}, "
              f"max {held['kl_max']:.3g} (vector vs unsteered: {held['kl_vector_vs_unsteered_mean']:.3g})")
    return 0


def run_gguf(args) -> int:
    from ..export.gguf import export_gguf, gguf_layers
    from ..vector import load_vector

    vector = load_vector(args.vector)
    mapping = gguf_layers(vector)
    path = export_gguf(vector, args.path, scale=args.scale, model_hint=args.model_hint)
    names = ", ".join(f"{vector.site}[{layer}] -> direction.{index}" for layer, index in mapping.items())
    print(f"wrote {path} ({names}); use: llama-cli -m MODEL.gguf --control-vector {path}")
    return 0


def run_import(args) -> int:
    from ..export.gguf import import_gguf

    vector = import_gguf(args.path, model_type=args.model_type)
    out = vector.save(args.out)
    print(f"wrote {out}: resid_post layers {vector.layers}, d_model {vector.d_model}, norm {vector.norm():.4g}")
    return 0
