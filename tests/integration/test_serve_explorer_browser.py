"""End to end: the explorer page in headless Chromium (Debian's package, driven by Playwright) on a tiny model.

`make test` installs chromium first (`make browser`); this test skips only when no chromium binary exists.
Never `playwright install`: the system browser is used through executable_path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report_runs import report_runs
from tiny import tiny_model

import steerscope as ss
from steerscope.app import bind, create_app, host_allowlist, load_source, serve_in_thread, url_of

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no chromium binary: `make browser` installs Debian's chromium package (apt-get install chromium); "
                "it could not be installed on this machine")


@pytest.fixture
def explorer(tmp_path_factory):
    m = tiny_model("llama")
    source = load_source(report_runs(tmp_path_factory)["melbo"].path)  # a real MELBO run of 3 vectors
    sock = bind("127.0.0.1", 0)
    server, thread = serve_in_thread(create_app(m, explorer=source, allowed_hosts=host_allowlist(False)), sock)
    try:
        yield url_of(sock) + "explore/", m, source
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_explorer_generates_in_chromium(explorer, tmp_path, artifacts_dir):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras: pip install -e .[dev]")
    url, m, source = explorer
    prompt, scale = "the cat sat on the mat", 6.0
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            assert page.locator("input.vec").count() == len(source.vectors)
            page.fill("#prompt", prompt)
            page.check("#vec-0")
            page.check("#vec-2")
            page.fill("#scale", str(scale))
            page.select_option("#positions", "all")
            page.fill("#max-new-tokens", "10")
            page.click("#generate")
            page.wait_for_selector(".completion.steered >> nth=1", timeout=60_000)
            baseline = page.locator(".completion.baseline pre").all_inner_texts()
            steered = page.locator(".completion.steered pre").all_inner_texts()
            labels = [t.lower() for t in page.locator(".completion.steered .label").all_inner_texts()]
            page.screenshot(path=str(artifacts_dir / "explorer.png"), full_page=True)

            # the page shows exactly what generate gives for each row (the rows share the server's batch)
            expected = [ss.generate(m, [prompt], vectors=v, scales=scale, max_new_tokens=10, chat=True,
                                    positions="all")[0] for v in (None, source.vectors[0], source.vectors[2])]
            assert len(baseline) == 1 and len(steered) == 2
            assert [baseline[0].strip()] + [s.strip() for s in steered] == expected
            assert "vector 0" in labels[0] and "vector 2" in labels[1]

            # invalid input: a clear message in the page, results untouched
            page.fill("#scale", "1000")
            page.click("#generate")
            # (the page's CSP forbids eval, so no wait_for_function: expect() polls instead)
            sync_api.expect(page.locator("#error")).to_contain_text(
                "scale must be a finite number between -100 and 100", timeout=30_000)
            assert page.locator(".completion.steered").count() == 2
            page.screenshot(path=str(artifacts_dir / "explorer_error.png"))
        finally:
            context.close()
