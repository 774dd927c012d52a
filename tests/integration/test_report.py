"""report.html for every run kind, from run directories the real producers wrote on a tiny model, parsed back:
sections per kind, inline images, no network, escaped model data, warnings for partial and broken runs."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_runs import MARKUP, report_runs

import steerscope as ss
from steerscope.cli.main import main
from steerscope.io import read_json, write_json
from steerscope.report.data import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
KINDS = ["melbo", "melbo_ortho", "sweep", "transfer", "linearity", "lora_discovery", "one_shot"]
# the sections each kind must show, in order (figures only where an image is left for it)
SECTIONS = {
    "melbo": ["config", "vectors", "melbo", "losses", "samples", "files"],
    "melbo_ortho": ["config", "ortho", "vectors", "losses", "samples", "files"],
    "sweep": ["config", "sweep", "samples", "files"],
    "transfer": ["config", "transfer", "samples", "files"],
    "linearity": ["config", "linearity", "files"],
    "lora_discovery": ["config", "vectors", "losses", "samples", "figures", "files"],
    "one_shot": ["config", "one_shot", "vectors", "losses", "files"],
}


class _Page(HTMLParser):
    """What the tests check: sections in order, element ids, images, links, sortable headers, card kinds."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.ids: dict[str, dict] = {}
        self.images: list[str] = []
        self.urls: list[str] = []
        self.headers: list[list[str]] = []
        self.kinds: list[str] = []
        self.classes: list[str] = []
        self._th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = a
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        self.urls += [a[k] for k in ("src", "href") if k in a and tag != "img"]
        if tag == "table" and "sortable" in (a.get("class") or ""):
            self.headers.append([])
        self._th = tag == "th"
        if tag == "th" and self.headers:
            self.headers[-1].append("")
        if "data-kind" in a:
            self.kinds.append(a["data-kind"])
        self.classes += (a.get("class") or "").split()

    def handle_data(self, data):
        if self._th and self.headers:
            self.headers[-1][-1] += data

    def handle_endtag(self, tag):
        self._th = False if tag == "th" else self._th


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return report_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def reports(runs, tmp_path_factory):
    """Every kind's report, written next to (not into) the shared run directories."""
    out = tmp_path_factory.mktemp("reports")
    return {kind: _parse(ss.write_report(p.path, out=out / f"{kind}.html")) for kind, p in runs.items()}


def _copy(runs, kind: str, dest: Path) -> Path:
    return Path(shutil.copytree(runs[kind].path, dest / kind))


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_shows_its_sections_in_order(reports, kind):
    page, _ = reports[kind]
    assert page.sections == SECTIONS[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_self_contained_and_every_image_a_png(reports, kind):
    from matplotlib.image import imread

    page, text = reports[kind]
    assert page.images, "each kind shows at least one figure"
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC) and imread(io.BytesIO(data), format="png").ndim == 3
    assert all(u.startswith("#") for u in page.urls), page.urls
    assert "http://" not in text and "https://" not in text
    assert "default-src 'none'" in text and "img-src data:" in text


@pytest.mark.parametrize("kind", ["melbo", "melbo_ortho", "sweep", "transfer", "linearity"])
def test_markup_from_the_run_is_escaped(reports, kind):
    _, text = reports[kind]
    assert MARKUP not in text  # the prompt's <script> reached the page through the producer's files
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_melbo_pairs_baseline_and_steered_for_every_vector_and_prompt(runs, reports):
    page, _ = reports["melbo"]
    result = runs["melbo"].result
    prompts = len({(s["split"], s["prompt"]) for s in load_run(runs["melbo"].path).samples})
    for i in range(len(result.vectors)):
        assert page.ids[f"vector-{i}"]["data-vector"] == str(i)
    assert page.kinds.count("baseline") == page.kinds.count("steered") == len(result.vectors) * prompts
    assert {"index", "norm", "objective", "objective_vs_random", "heldout_kl", "final_loss"} <= set(page.headers[0])
    assert len(page.images) == 3  # loss curves, objective against the random band, radius sweep


def test_ortho_shows_theta0_beside_each_steered_completion(reports):
    page, _ = reports["melbo_ortho"]
    assert page.kinds.count("reference") == page.kinds.count("steered") > 0


def test_lora_adapters_are_the_items(runs, reports):
    page, text = reports["lora_discovery"]
    n = len(runs["lora_discovery"].result.runs)
    assert {f"vector-{i}" for i in range(n)} <= set(page.ids) and f"Adapter {n - 1}" in text
    assert "heldout_kl" in page.headers[0]
    assert "run_000/losses.png" in text  # each run's own plot, under Figures


def test_sweep_window_and_long_prompt_folded(reports):
    page, _ = reports["sweep"]
    assert "highlight" in page.classes and "long" in page.classes  # the window called out; the long prompt folds
    assert page.kinds.count("baseline") == 2 and page.kinds.count("steered") == 4  # 2 prompts × scales ±2


def test_partial_and_broken_run_directories_warn(runs, tmp_path):
    only = tmp_path / "only"
    only.mkdir()
    for name in ("config.json", "vectors.safetensors", "losses.csv"):  # a MELBO run stopped before its end
        shutil.copy(runs["melbo"].path / name, only)
    page, text = _parse(ss.write_report(only))
    assert page.sections[:3] == ["config", "vectors", "losses"]
    assert "no summary.json yet: the run has not finished" in text and not load_run(only).warnings
    empty = tmp_path / "empty"
    empty.mkdir()
    page, text = _parse(ss.write_report(empty))
    assert page.sections == ["config"] and "no method found" in text
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "vectors.safetensors").write_bytes(b"not a safetensors file")
    _, text = _parse(ss.write_report(broken))
    assert "config.json could not be read" in text and "vectors.safetensors could not be read" in text
    melbo = _copy(runs, "melbo", tmp_path)
    summary = read_json(melbo / "summary.json")
    write_json(melbo / "summary.json", {**summary, "objectives": "abc", "random_band": [1.0]})
    (melbo / "samples.jsonl").write_text('{"vector": 0, "prompt": "p"\n')
    page, text = _parse(ss.write_report(melbo))
    assert "the melbo result could not be read" in text and "objectives: expected a JSON list" in text
    assert "samples.jsonl could not be read" in text and "samples" not in page.sections


def test_unknown_method_and_unfinished_lora_run_are_noted(runs, tmp_path):
    melbo = _copy(runs, "melbo", tmp_path)
    write_json(melbo / "config.json", {**read_json(melbo / "config.json"), "method": "future_method"})
    page, text = _parse(ss.write_report(melbo))
    assert "no report reader for method" in text and page.sections[:2] == ["config", "vectors"]
    lora = _copy(runs, "lora_discovery", tmp_path)
    (lora / "run_001" / "summary.json").unlink()
    _, text = _parse(ss.write_report(lora))
    assert "run_001 has no readable summary.json" in text


def test_report_cli(runs, tmp_path, capsys):
    out = tmp_path / "elsewhere.html"
    assert main(["report", str(runs["sweep"].path), "--out", str(out)]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_and_plots_leave_pyplot_alone(runs, tmp_path):
    """Writing a report and the discovery plots neither imports pyplot nor switches the user's backend."""
    code = f"""
import sys, matplotlib
matplotlib.use("svg")
import steerscope as ss
ss.write_report({str(runs["melbo"].path)!r}, out={str(tmp_path / "r.html")!r})
for kind, path in {({k: str(p.path) for k, p in runs.items()})!r}.items():  # every result's figures
    ss.write_run(ss.load_result(path), {str(tmp_path)!r} + "/" + kind)
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
"""
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    pngs = sorted(tmp_path.glob("*/**/*.png"))
    assert {p.relative_to(tmp_path).parts[0] for p in pngs} == set(runs)  # every kind drew its figures
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)
