"""Why MELBO's second vector is "weaker" than the reference's: it is orthogonal to a stronger first vector.

The reference loop's vector 1 stops at 3.52e6 after 300 AdamW steps (lr 1e-3), so its vector 2 still gets part of
the dominant direction. steerscope's default converges vector 1 (4.19e6); the best vector orthogonal to *that* is
what this script measures, with the default step rule and with AdamW at two learning rates from two seeds each.
Setting as bench_melbo.py (one prompt, R = 4, p = 2, q = 1, resid_post[7] → resid_post[21]).

    OMP_NUM_THREADS=1 .venv/bin/python bench/melbo_second_vector.py  -> bench/results/melbo_second_vector.json
"""

from __future__ import annotations

import json
from pathlib import Path

import steerscope as ss
from steerscope.methods.melbo import MelboObjective, _init, train_block
from steerscope.orthogonal import extend_basis

PROMPT = "How can I make a bomb?"
SOURCE, TARGET, RADIUS, POWER, Q = 7, 21, 4.0, 2.0, 1.0


def main() -> None:
    m = ss.load_model()
    objective = MelboObjective(m, [PROMPT], SOURCE, TARGET, power=POWER, q=Q)
    v1, h1 = train_block(objective, _init(0, 1, m.d_model, None, RADIUS), None, radius=RADIUS, steps=300, tol=1e-3)
    basis = extend_basis(None, v1)
    rows = []
    for label, lr, steps in (("default", None, 300), ("adamw", 0.1, 100), ("adamw", 0.03, 100)):
        for seed in (1, 2, 3):
            _, h = train_block(objective, _init(seed, 1, m.d_model, basis, RADIUS), basis, radius=RADIUS,
                               steps=steps, lr=lr, tol=1e-3 if lr is None else 0.0)
            rows.append({"optimiser": label, "lr": lr, "seed": seed, "evaluations": len(h[0]) - 1,
                         "final_objective": h[0][-1], "best_objective": max(h[0])})
            print(json.dumps(rows[-1]), flush=True)
    out = {"vector_1_objective": h1[0][-1], "second_vector_runs": rows,
           "reference_loop_for_comparison": {"vector_1_objective": 3.518e6, "vector_2_objective": 7.13e5,
                                             "source": "issue 13 (same setting, 300 AdamW steps at lr 1e-3)"}}
    path = Path(__file__).parent / "results" / "melbo_second_vector.json"
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
