"""steerscope export lora VECTOR --out DIR | export gguf VECTOR --out FILE | export import-gguf FILE --out VECTOR"""

from __future__ import annotations

from .common import (
    add_model_arg,
    finite_float,
    input_file,
    output_dir,
    output_file,
    read_prompts,
    vector_spec,
)


def register(commands, groups) -> None:
    export = groups["export"]

    p = export.add_parser("lora", help="write a vector as a PEFT LoRA adapter (rank1 or exact bias) + fidelity report")
    p.add_argument("vector", type=vector_spec, help="vector file, or FILE:INDEX for one vector of a set")
    p.add_argument("--out", dest="out_dir", required=True, type=output_dir, help="adapter directory to write")
    add_model_arg(p)
    p.add_argument("--method", default="rank1", choices=["rank1", "bias"],
                   help="rank1: plain rank-1 LoRA fitted on calibration prompts; bias: exact, needs LoRA-bias support")
    p.add_argument("--scale", type=finite_float, default=1.0, help="baked into the adapter")
    p.add_argument("--calibration-prompts", type=input_file, help=".txt or .jsonl ('prompt' key); default: shipped prompts")
    p.add_argument("--heldout-prompts", type=input_file, help=".txt or .jsonl prompts for the fidelity report; default: shipped")
    p.add_argument("--new-tokens", type=int, default=24, help="greedy tokens generated per prompt for fitting/checking")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--no-evaluate", action="store_true", help="skip the held-out fidelity measurement")
    p.add_argument("--json", action="store_true", help="print fidelity.json instead of a summary")
    p.set_defaults(func=run_lora)

    g = export.add_parser("gguf", help="write a vector as a llama.cpp control vector (--control-vector)")
    g.add_argument("vector", type=vector_spec, help="vector file, or FILE:INDEX")
    g.add_argument("--out", dest="path", required=True, type=output_file, help=".gguf file to write")
    g.add_argument("--scale", type=finite_float, default=1.0, help="baked into the file")
    g.add_argument("--model-hint", default=None, help="controlvector.model_hint; default: the vector's model_type")
    g.set_defaults(func=run_gguf)

    i = export.add_parser("import-gguf", help="read a llama.cpp/repeng control-vector .gguf into a steerscope vector")
    i.add_argument("path", metavar="FILE", type=input_file, help="control-vector .gguf")
    i.add_argument("--out", required=True, type=output_file, help="steerscope .safetensors vector file to write")
    i.add_argument("--model-type", default=None, help="record this model_type (default: the file's model_hint)")
    i.set_defaults(func=run_import)


def run_lora(args) -> int:
    import json

    from ..errors import InvalidArgumentError
    from ..export.peft_lora import export_lora
    from ..vector import load_vector
    from .common import load_model_from_args

    if args.new_tokens < 0:
        raise InvalidArgumentError(f"--new-tokens must be 0 or more, got {args.new_tokens}")
    vector = load_vector(args.vector)
    calibration = read_prompts(None, args.calibration_prompts) if args.calibration_prompts else None
    heldout = read_prompts(None, args.heldout_prompts) if args.heldout_prompts else None
    m = load_model_from_args(args)
    res = export_lora(m, vector, args.out_dir, method=args.method, scale=args.scale, calibration_prompts=calibration,
                      heldout_prompts=heldout, max_new_tokens=args.new_tokens, chat=not args.no_chat,
                      evaluate=not args.no_evaluate)
    if args.json:
        print(json.dumps(res.fidelity, indent=2, sort_keys=True))
        return 0
    print(f"wrote {res.method} adapter to {res.path}")
    for layer, module in res.modules.items():
        print(f"  layer {layer}: {module}")
    held = res.fidelity.get("heldout")
    if held:
        print(f"  held-out fidelity ({held['n_sequences']} prompts, {held['n_tokens']} tokens): "
              f"rel. error mean {held['rel_error_mean']:.3g}, worst {held['rel_error_worst']:.3g}; "
              f"KL mean {held['kl_mean']:.3g}, max {held['kl_max']:.3g} "
              f"(vector vs unsteered: {held['kl_vector_vs_unsteered_mean']:.3g})")
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
