"""A real browser: JupyterLab on a loopback port, driven by Playwright in Debian's Chromium.

A user edits one value of an experiment in the editor, saves, and sees version 2 in the
store browser panel and the difference in the diff. Screenshots go to test-artifacts/.
Needs /usr/bin/chromium (Debian's package) and the playwright package; Playwright never
downloads a browser here. Without them the test skips, except under CI where it fails.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import mlmd_magic as mm
from mlmd_magic import datasets

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _require_browser() -> None:
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    _require_browser()
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
            assert time.time() < deadline, "JupyterLab did not start in 90 s"
            time.sleep(0.5)
        yield {"base": base, "token": token, "root": tmp_path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _notebook(path: Path, uri: str) -> None:
    cells = [
        f"%load_ext mlmd_magic\n%mlmd connect {uri}",
        "editor = %mlmd edit t21\neditor",
        "%mlmd browse",
        "%mlmd diff t21@1 t21@2",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_edit_save_and_see_version_2_in_jupyterlab(lab: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    store_path = root / "team.sqlite"
    store = mm.connect(f"sqlite:///{store_path}")
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(str(root / "data"), n_train=16, n_eval=8, n_test=8))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 3, "learning_rate": 0.01})
    store.experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    _notebook(root / "edit.ipynb", f"sqlite:///{store_path}")
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab['base']}/lab/tree/edit.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            cells = page.locator(".jp-Notebook .jp-Cell")

            def run_cell(index: int) -> None:
                cell = cells.nth(index)
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
                # the prompt turns from "[ ]:" to "[*]:" to "[n]:" once the kernel ran it
                expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=60_000)

            run_cell(0)
            run_cell(1)
            editor = page.locator(".mlmd-magic-editor")
            expect(editor).to_be_visible(timeout=60_000)
            epochs = editor.locator(".widget-inline-hbox:has(label:text-is('epochs')) input")
            epochs.fill("7")
            epochs.press("Tab")
            expect(editor.locator("table.mlmd-magic-diff")).to_contain_text("params.epochs", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "editor-changed.png"))
            editor.get_by_role("button", name="Save as new version").click()
            expect(editor.locator(".mlmd-magic-saved")).to_contain_text("saved as t21@2", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "editor-saved.png"))
            run_cell(2)
            run_cell(3)
            browser_panel = page.locator(".mlmd-magic-browser")
            expect(browser_panel).to_be_visible(timeout=60_000)
            expect(browser_panel.locator("select").first).to_contain_text("t21@2", timeout=20_000)
            diff = cells.nth(3).locator(".jp-OutputArea-output")
            expect(diff).to_contain_text("params.epochs", timeout=30_000)
            expect(diff).to_contain_text("7")
            cells.nth(2).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-and-diff.png"), full_page=True)
        finally:
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
            browser.close()

    saved = mm.connect(f"sqlite:///{store_path}").get_experiment("t21")
    assert saved["version"] == 2 and saved["params"]["epochs"] == 7
    define = store.mlmd.get_executions_by_type("mlmd_magic.DefineExperiment")[-1]
    assert define.properties["source"].string_value == "widget ExperimentEditor t21@1: params.epochs 3 -> 7"
    shutil.copy(root / "edit.ipynb", ARTIFACTS / "edit.ipynb")


@pytest.mark.slow
def test_tfx_tutorial_runs_in_jupyterlab_and_its_widgets_render(lab: dict[str, Any]) -> None:
    """notebooks/03-tfx-components.ipynb, outputs cleared, run top to bottom in JupyterLab:
    no cell fails, no widget says "Error displaying widget", the store browser shows TFX's tabs."""
    from playwright.sync_api import expect, sync_playwright

    root: Path = lab["root"]
    tutorial = Path(__file__).resolve().parent.parent / "notebooks" / "03-tfx-components.ipynb"
    nb = nbformat.read(str(tutorial), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(root / "tutorial.ipynb"))
    code_cells = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab['base']}/lab/tree/tutorial.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=60_000)
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            cells = page.locator(".jp-Notebook .jp-Cell")
            last = cells.nth(code_cells[-1])
            expect(last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=240_000)
            panel = page.locator(".mlmd-magic-browser")
            expect(panel).to_be_visible(timeout=60_000)
            expect(panel).to_contain_text("Examples", timeout=30_000)  # a tab per TFX artifact type
            last.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "tfx-tutorial-browser.png"))
            for i in code_cells:  # every code cell ran, in order, and none failed
                expect(cells.nth(i).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            assert page.get_by_text("Error displaying widget").count() == 0
            lineage = cells.nth(code_cells[-2])  # from CsvExampleGen to our model, drawn as SVG
            lineage.scroll_into_view_if_needed()
            expect(lineage.locator(".jp-OutputArea-output[data-mime-type='image/svg+xml']")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "tfx-tutorial-lineage.png"))
        finally:
            page.screenshot(path=str(ARTIFACTS / "tfx-tutorial-last.png"), full_page=True)
            browser.close()
