"""steerscope vector show FILE"""

from __future__ import annotations

from .common import vector_spec


def register(commands, groups) -> None:
    p = groups["vector"].add_parser("show", help="print a vector file's header and norms")
    p.add_argument("file", type=vector_spec, help="vector file (FILE:INDEX for one vector of a set)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=show)


def show(args) -> int:
    import json

    from ..vector import VectorSet, split_spec

    path, index = split_spec(args.file)
    vs = VectorSet.load(path)
    header = vs.header()
    norms = vs.norms().tolist()
    if index is not None:
        vs[index]  # range check with a clear message
        norms = [norms[index]]
    summary = {**header, "norms": [round(n, 6) for n in norms]}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for key in ("method", "site", "layers", "d_model", "model_name", "model_type", "created_at", "steerscope_version"):
        print(f"{key:>18}: {summary.get(key)}")
    print(f"{'vectors':>18}: {len(vs)}")
    shown = ", ".join(f"{n:.4g}" for n in norms[:12]) + (" ..." if len(norms) > 12 else "")
    print(f"{'norms':>18}: {shown}")
    if header.get("method_config"):
        print(f"{'method_config':>18}: {json.dumps(header['method_config'], sort_keys=True)}")
    if header.get("notes"):
        print(f"{'notes':>18}: {header['notes']}")
    return 0
