import torch, json, steerscope as ss
import steerscope.methods.melbo as mb
from steerscope.generate import tokenize
from steerscope.data import load_prompts
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
print(json.dumps(out))
