"""report.html from a small real run on a tiny model, parsed back: every vector, every image, no network."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_run import PROMPTS, make_run

import steerscope as ss
from steerscope.cli.main import main
from steerscope.io import read_jsonl, write_json, write_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects what the tests check: element ids, images, links, scripts, sortable tables, <details>."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict] = {}
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: dict[str, int] = {}
        self.sortable_headers: list[list[str]] = []
        self._in_sortable_head = False
        self._in_th = False
        self.kinds: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in a:
            self.ids[a["id"]] = a
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            if key in a and tag != "img":
                self.urls.append(a[key])
        if tag == "table" and "sortable" in (a.get("class") or ""):
            self.sortable_headers.append([])
            self._in_sortable_head = True
        if tag == "th" and self._in_sortable_head:
            self._in_th = True
            self.sortable_headers[-1].append("")
        if "data-kind" in a:
            self.kinds.append(a["data-kind"])

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_sortable_head = False
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th:
            self.sortable_headers[-1][-1] += data


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "melbo-run", n_vectors=4)


def test_report_has_every_vector_and_inline_images(run_dir):
    from matplotlib.image import imread

    path = ss.write_report(run_dir)
    assert path == run_dir / "report.html"
    page, text = _parse(path)
    n = len(ss.VectorSet.load(run_dir / "vectors.safetensors"))
    for i in range(n):
        assert f"vector-{i}" in page.ids, f"vector {i} has no section"
        assert page.ids[f"vector-{i}"]["data-vector"] == str(i)
    for section in ("config", "vectors", "losses", "ortho", "samples", "sweep", "linearity", "figures"):
        assert section in page.ids, f"section {section} missing"
    # loss curves, ortho curves, sweep.png, linearity heatmap, plots/kl_by_vector.png: all inline PNGs that decode
    assert len(page.images) == 5
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC)
        assert imread(io.BytesIO(data), format="png").ndim == 3
    assert "plots/kl_by_vector.png" in text
    # self-contained: no fetchable URL anywhere, only in-page anchors
    assert all(u.startswith("#") for u in page.urls), page.urls
    assert "http://" not in text and "https://" not in text
    assert "script-src 'unsafe-inline'" in text and "default-src 'none'" in text


def test_report_pairs_baseline_and_steered_for_every_prompt(run_dir):
    page, text = _parse(ss.write_report(run_dir))
    samples = read_jsonl(run_dir / "samples.jsonl")
    n = len(ss.VectorSet.load(run_dir / "vectors.safetensors"))
    # one baseline and one steered card per (vector, prompt)
    assert page.kinds.count("baseline") == n * len(PROMPTS)
    assert page.kinds.count("steered") == n * len(PROMPTS)
    for s in samples:
        assert s["prompt"] in text


def test_vector_table_is_sortable_by_numeric_columns(run_dir):
    page, text = _parse(ss.write_report(run_dir))
    headers = page.sortable_headers[0]
    for column in ("index", "norm", "objective", "kl_to_base", "final_loss"):
        assert column in headers
    assert 'data-value=""' in text  # the missing kl_to_base of vector 0 sorts as empty, never as a number
    assert "table.sortable" in text  # the inline sorting script


def test_report_escapes_model_output_and_folds_long_text(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "config.json", {"method": "one_shot", "model_name": "m"})
    long_text = "word " * 400
    write_jsonl(run / "samples.jsonl", [
        {"vector": None, "prompt": "p", "split": "heldout", "scale": 0.0, "completion": "<script>alert(1)</script>"},
        {"vector": 0, "prompt": "p", "split": "heldout", "scale": 2.0, "completion": long_text},
    ])
    page, text = _parse(ss.write_report(run))
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "show all 2000 characters" in text
    assert "vector-0" in page.ids


def test_partial_run_directories_still_report(tmp_path, run_dir):
    only_vectors = tmp_path / "only-vectors"
    only_vectors.mkdir()
    shutil.copy(run_dir / "vectors.safetensors", only_vectors)
    page, _ = _parse(ss.write_report(only_vectors))
    assert {"vector-0", "vector-3", "vectors", "config"} <= set(page.ids)
    empty = tmp_path / "empty"
    empty.mkdir()
    page, _ = _parse(ss.write_report(empty))
    assert "config" in page.ids
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "vectors.safetensors").write_bytes(b"not a safetensors file")
    page, text = _parse(ss.write_report(broken))
    assert "config.json could not be read" in text and "vectors.safetensors could not be read" in text


@pytest.mark.parametrize("method,first", [("sweep", "sweep"), ("melbo_ortho", "ortho"), ("melbo", "vectors")])
def test_sections_follow_the_run_type(run_dir, tmp_path, method, first):
    run = tmp_path / method
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    write_json(run / "config.json", {**config, "method": method})
    text = ss.write_report(run).read_text()
    order = [s for s in ("vectors", "ortho", "sweep") if f'<section id="{s}"' in text]
    order.sort(key=lambda s: text.index(f'<section id="{s}"'))
    assert order[0] == first


def test_report_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "elsewhere.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_sweep_run_format(tmp_path):
    """What `eval sweep` writes: samples with `response` and no `vector`; scale 0 is the baseline."""
    run = tmp_path / "sweep"
    run.mkdir()
    write_json(run / "config.json", {"method": "sweep", "model_name": "m"})
    write_json(run / "sweep.json", {"rows": [{"scale": s, "perplexity": 3.0} for s in (-2, 0, 2, 4)],
                                    "window": [-2.0, 2.0], "best_scale": 2.0, "tolerance": {"perplexity": 2.0}})
    write_jsonl(run / "samples.jsonl", [{"scale": s, "prompt_index": i, "prompt": p, "response": f"{p} at {s}"}
                                        for s in (-2, 0, 2, 4) for i, p in enumerate(["alpha", "beta"])])
    page, text = _parse(ss.write_report(run))
    assert "vector-0" in page.ids
    assert page.kinds.count("baseline") == 2 and page.kinds.count("steered") == 6
    assert "steered ×4" in text and "alpha at 0" in text
    assert "best_scale" in text and 'class="highlight"' in text  # the coherence window is called out


def test_lora_discovery_run_format(tmp_path):
    """What `discover lora` writes: run_###/ with losses.csv, summary.json and base/adapted samples."""
    run = tmp_path / "lora"
    run.mkdir()
    write_json(run / "config.json", {"method": "lora_discovery", "model_name": "m", "num_runs": 2})
    for i in range(2):
        sub = run / f"run_{i:03d}"
        sub.mkdir()
        (sub / "losses.csv").write_text("step,epoch,loss,kl\n" + "".join(f"{s},0,{1 - s / 10 + i},{s}\n" for s in range(5)))
        write_json(sub / "summary.json", {"index": i, "steps": 5, "heldout": {"kl": 0.5 + i, "base_ppl": 7.0}})
        write_jsonl(sub / "samples.jsonl", [{"prompt": "hello", "base": "plain answer", "adapted": f"odd answer {i}"}])
    page, text = _parse(ss.write_report(run))
    assert {"vector-0", "vector-1", "losses"} <= set(page.ids)
    assert "Adapter 1" in text and "heldout_kl" in text and "odd answer 1" in text
    assert page.kinds.count("steered") == 2 and page.kinds.count("baseline") == 2


def test_method_is_guessed_without_config(tmp_path):
    run = tmp_path / "sweep-no-config"
    run.mkdir()
    write_json(run / "sweep.json", {"window": [-1.0, 1.0], "best_scale": 1.0})
    text = ss.write_report(run).read_text()
    assert "· sweep ·" in text and '<section id="sweep"' in text
