"""Where the MELBO objective lives on chat prompts: the share of a trained vector's objective that comes from the
tokens every templated prompt shares (SmolLM2's chat template and default system prompt).

Trains one vector (R = 4, p = 2, q = 1, resid_post[7] -> resid_post[21], 8 evaluations) on the 8 default MELBO
prompts and reports, per prompt, the fraction of Σ_t ‖ΔZ_t‖² on the shared prefix tokens.

    OMP_NUM_THREADS=1 .venv/bin/python bench/melbo_prefix_share.py  -> bench/results/melbo_prefix_share.json
"""

import json
from pathlib import Path

import torch

import steerscope as ss
import steerscope.methods.melbo as mb
from steerscope.data import load_prompts
from steerscope.generate import tokenize

m = ss.load_model()
prompts = load_prompts("melbo_prompts")[:8]
ids, mask = tokenize(m, prompts)
# length of the common prefix (template + default system prompt) shared by all rows (left padding removed)
rows = [ids[i][mask[i].bool()].tolist() for i in range(len(prompts))]
common = 0
while all(len(r) > common and r[common] == rows[0][common] for r in rows):
    common += 1
obj = mb.MelboObjective(m, prompts, 7, 21, power=2, q=1)
th, h = mb.train_block(obj, mb._init(0, 1, m.d_model, None, 4.0), None, radius=4.0, steps=8, tol=0)
hidden0 = obj.replay.hidden
with torch.no_grad():
    z = obj.replay.run(hidden0 + th[0])
    sq = (z.float() - obj.z0.float()).pow(2).sum(-1) * mask  # (B, T)
share = []
for i in range(len(prompts)):
    pos = mask[i].bool().nonzero().flatten()
    real = sq[i, pos]
    share.append(float(real[:common].sum() / real.sum()))
out = {"tokens_per_prompt": [len(r) for r in rows], "shared_prefix_tokens": common,
       "fraction_of_first_vector_objective_on_shared_prefix": share}
(Path(__file__).parent / "results" / "melbo_prefix_share.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out))
