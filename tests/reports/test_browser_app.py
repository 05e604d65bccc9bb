"""The explorers as a web app (``optical-lab explore``), driven in a real headless Chromium.

The widget tests (tests/reports/test_widgets.py) drive the Python objects; these load the page Voilà
serves and act like a reader: change the language, type a sentence pair, drag the ε slider, type
a query. They check what the reader sees (the heatmap image, the aligned-pairs table, both ranked
lists, the visible messages) and that the browser console stays free of errors — which is where a
mismatch between the ipywidgets front-end and the Python ipywidgets shows up.

A test-only variant of the app notebook with a deliberately broken ε callback proves the checks
can fail (:func:`test_a_broken_callback_is_detected`).

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the
``playwright`` Python package (driving that system browser; ``playwright install`` is never run).
Without a browser these tests are skipped, except under ``CI=true`` where they fail.
``OPTICAL_LAB_UPDATE_SCREENSHOTS=1`` rewrites ``figures/app_alignment_explorer.png``;
``OPTICAL_LAB_APP_STUDENT=PATH`` serves that saved Hausa student instead of a synthetic one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from optical_lab.data.errors import DataError
from optical_lab.reports.explore import APP_NOTEBOOK, AppConfig, load_student, parse_student

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("OPTICAL_LAB_CHROMIUM", "/usr/bin/chromium")
ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SCREENSHOT = REPO / "figures" / "app_alignment_explorer.png"
TYPED = ("The president met farmers in the village.", "Shugaban kasa ya gana da manoma a kauye.")
STEP_TIMEOUT_S = 60  # one widget round trip on a loaded 2-core machine (first call encodes documents)


# =============================================================================== without a browser
@pytest.fixture(scope="module")
def saved_student(teacher, tmp_path_factory):
    """A saved Hausa student: $OPTICAL_LAB_APP_STUDENT, else a copy of the teacher with perturbed
    last-layer weights (same tokenizer, other plans and rankings), saved as ``student.pt``."""
    if os.environ.get("OPTICAL_LAB_APP_STUDENT"):
        return Path(os.environ["OPTICAL_LAB_APP_STUDENT"])
    torch.manual_seed(1)
    student = teacher.copy()
    with torch.no_grad():
        weight = student.model.encoder.layer[-1].output.dense.weight
        weight.add_(0.05 * torch.randn_like(weight))
    folder = tmp_path_factory.mktemp("hau-student")
    torch.save(student.state_dict(), folder / "student.pt")
    return folder


def test_saved_students_load_in_both_formats(teacher, saved_student, tmp_path):
    if os.environ.get("OPTICAL_LAB_APP_STUDENT"):
        pytest.skip("a custom student is configured")
    from_pt = load_student(saved_student, teacher)
    from_pt.save(tmp_path / "hau-folder")  # the Encoder.save format
    from_hf = load_student(tmp_path / "hau-folder", teacher)
    text = ["Shugaban kasa ya gana da manoma."]
    a, b, t = (e.encode(text) for e in (from_pt, from_hf, teacher))
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, t, atol=1e-3)
    assert parse_student(f"hau={saved_student}") == ("hau", saved_student)
    assert parse_student(str(tmp_path / "hau-folder"))[0] == "hau"  # language from the folder name
    with pytest.raises(DataError, match="cannot tell the student's language"):
        parse_student(str(saved_student.parent))
    with pytest.raises(DataError, match="no saved student here"):
        parse_student(f"hau={tmp_path / 'missing'}")
    with pytest.raises(DataError, match="no config.json and no student.pt"):
        load_student(tmp_path, teacher)


def test_widget_front_end_matches_python_ipywidgets():
    """The JavaScript widget managers JupyterLab and Voilà load speak the protocol of the installed
    ipywidgets: ipywidgets 8 = @jupyter-widgets/controls model 2.0.0, implemented by
    jupyterlab_widgets 3 (@jupyter-widgets/jupyterlab-manager 5, controls ^5) and Voilà's
    widgets-manager8. (The browser tests below are the end-to-end check.)"""
    import ipywidgets
    import jupyterlab_widgets
    from ipywidgets._version import __jupyter_widgets_controls_version__ as controls_protocol
    from jupyterlab_server.config import get_federated_extensions
    from voila.paths import ROOT as voila_root  # noqa: F401 - voila is installed

    assert ipywidgets.__version__.split(".")[0] == "8" and controls_protocol == "2.0.0"
    assert jupyterlab_widgets.__version__.split(".")[0] == "3"
    from jupyter_core.paths import jupyter_path

    lab = get_federated_extensions(jupyter_path("labextensions"))
    manager = lab["@jupyter-widgets/jupyterlab-manager"]
    assert manager["version"].split(".")[0] == "5"
    package = json.loads((Path(manager["ext_path"]) / "package.json").read_text())
    assert package["dependencies"]["@jupyter-widgets/controls"].lstrip("^~").split(".")[0] == "5"
    voila = get_federated_extensions(jupyter_path("voila/labextensions"))
    assert "@voila-dashboards/widgets-manager8" in voila


# =============================================================================== the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def explore_server(
    student: Path,
    log_path: Path,
    notebook: Path = APP_NOTEBOOK,
    extra: tuple[str, ...] = (),
    pids: list[int] | None = None,
):
    """``optical-lab explore`` on a free loopback port; yields its URL; always stopped."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "optical_lab.cli",
        "explore",
        "--no-browser",
        "--port",
        str(port),
        "--langs",
        "hau,swa",
        "--student",
        f"hau={student}",
        "--notebook",
        str(notebook),
        *extra,
    ]
    with serve(command, port, log_path, pids) as url:
        yield url


@contextmanager
def serve(command: list[str], port: int, log_path: Path, pids: list[int] | None = None):
    """Run a server ``command`` listening on ``port``; yield its URL once it answers; always stop it
    (SIGTERM, then SIGKILL, to its whole process group: the command, Voilà or Jupyter, the kernel)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OPTICAL_LAB_SMALL": "1",
        "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p),
    }
    env.pop("OPTICAL_LAB_EXPLORE", None)
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
    if pids is not None:
        pids.append(server.pid)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:  # any HTTP answer means the server listens (GET / would start a kernel)
                urllib.request.urlopen(url + "favicon.ico", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(server.pid, sig)
                server.wait(timeout=wait_s)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _require_browser():
    """Skip without Chromium, unless on CI (CI=true), where a missing browser is a failure."""
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright Python package is missing (pip install -e '.[test]')"
    if reason and ON_CI:
        pytest.fail(f"CI: {reason}; .ci/run installs it")
    if reason:
        pytest.skip(f"{reason}; browser tests skipped (they fail instead under CI=true)")


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser tab on the app that records console errors, page errors and failed requests."""

    def __init__(self, browser, url: str, allow_cdn_fonts: bool = False) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 1100})
        self.page.on(
            "console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        # The page must work offline: any request leaving the machine is an error (Voilà's lab template
        # links Font Awesome from a CDN; the app's own template drops those links). JupyterLab's page
        # (test_app_notebook_renders_in_jupyterlab) still has them: ``allow_cdn_fonts``.
        if allow_cdn_fonts:
            self.page.route(
                "https://cdn.jsdelivr.net/npm/@fortawesome/**",
                lambda route: route.fulfill(status=200, content_type="text/css", body=""),
            )
        self.page.route(
            lambda u: (
                not u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "blob:", "data:"))
                and not (allow_cdn_fonts and "cdn.jsdelivr.net/npm/@fortawesome/" in u)
            ),
            lambda route: (self.errors.append(f"external request: {route.request.url}"), route.abort()),
        )
        self.page.goto(url, timeout=4 * STEP_TIMEOUT_S * 1000)  # Voilà answers once the notebook ran

    def __getattr__(self, name):
        return getattr(self.page, name)

    def wait_until(self, js: str, arg, what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
        """Wait for the JavaScript predicate ``js(arg)``; a timeout is an AssertionError saying ``what``."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            raise AssertionError(
                f"{what} (waited {timeout_s:.0f} s); page messages: "
                f"{self.text('.optical-align-message')!r}; console errors: {self.errors}"
            ) from None

    def text(self, selector: str) -> str:
        return self.page.locator(selector).first.inner_text() if self.page.locator(selector).count() else ""

    def value(self, selector: str) -> str:
        return self.page.locator(selector).first.input_value()

    def wait_changed(self, selector: str, prop: str, old: str, what: str, timeout_s: float = STEP_TIMEOUT_S) -> str:
        self.wait_until(
            "([s, p, old]) => { const e = document.querySelector(s); return e && e[p] !== old; }",
            [selector, prop, old],
            what,
            timeout_s,
        )
        return self.page.eval_on_selector(selector, f"e => e.{prop}")

    def assert_clean(self) -> None:
        assert not self.errors, f"browser console errors: {self.errors}"
        assert "Traceback" not in self.page.inner_text("body"), "a traceback is shown in the page"


IMAGE, TABLE = "img.optical-align-image", ".optical-align-table .widget-html-content"
ENGLISH, FOREIGN = ".optical-align-english textarea", ".optical-align-foreign textarea"
MESSAGE = ".optical-align-message"


def load_app(page: Page) -> None:
    page.wait_until(
        "s => { const e = document.querySelector(s); return e && e.src; }",
        IMAGE,
        "the alignment explorer's heatmap never appeared",
    )


def check_alignment_explorer(
    page: Page,
    typed_shape: tuple[int, int],
    timeout_s: float = STEP_TIMEOUT_S,
    screenshot: Path | None = None,
    epsilon_timeout_s: float | None = None,
) -> dict:
    """Language, typed pair, ε slider: each must change what the page shows. Returns what it saw.

    ``typed_shape``: the (English, Hausa) token counts of :data:`TYPED`; the status line shows them
    once both typed sentences reached the kernel (each box sends its text when it loses focus)."""
    seen = {}
    load_app(page)
    assert "hau" in page.text(".optical-align-models") and "distilled student" in page.text(".optical-align-models")
    # another language: its sentences, its heatmap, and a visible note that it has no student
    image, foreign = page.get_attribute(IMAGE, "src"), page.value(FOREIGN)
    page.select_option(".optical-align-lang select", "Swahili (swa)")
    page.wait_changed(FOREIGN, "value", foreign, "the language switch did not change the foreign sentence", timeout_s)
    page.wait_changed(IMAGE, "src", image, "the language switch did not redraw the heatmap", timeout_s)
    page.wait_until(
        "s => document.querySelector(s).innerText.includes('No saved student for Swahili')",
        MESSAGE,
        "no visible message for a language without a student",
        timeout_s,
    )
    page.select_option(".optical-align-lang select", "Hausa (hau)")
    page.wait_until(
        "s => document.querySelector(s).innerText.includes('distilled student')",
        ".optical-align-models",
        "back on Hausa, the page does not name the distilled student",
        timeout_s,
    )
    # a typed sentence pair: its tokens in the table
    table = page.text(TABLE)
    page.fill(ENGLISH, TYPED[0])
    page.fill(FOREIGN, TYPED[1])
    page.click(".optical-align-models")  # leave the box: the text is sent (continuous_update=False)
    shape = f"{typed_shape[0]}×{typed_shape[1]} tokens"
    page.wait_until(
        "([s, shape]) => document.querySelector(s).innerText.includes(shape)",
        [".optical-align-status", shape],
        "the typed sentence pair was not aligned",
        timeout_s,
    )
    page.wait_until(
        "s => /farmers|village|president/.test(document.querySelector(s).innerText)",
        TABLE,
        "the aligned-pairs table does not show the typed sentence's tokens",
        timeout_s,
    )
    seen["typed_table"] = page.text(TABLE)
    assert seen["typed_table"] != table
    # drag the ε handle to the left (0.05 -> about 0.01, a sharper plan): new readout, heatmap, masses
    image, table = page.get_attribute(IMAGE, "src"), page.text(TABLE)
    readout = page.text(".optical-align-epsilon .widget-readout")
    handle = page.locator(".optical-align-epsilon .noUi-handle").bounding_box()
    track = page.locator(".optical-align-epsilon .noUi-target").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.3, handle["y"] + handle["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_until(
        "([s, old]) => document.querySelector(s).innerText !== old",
        [".optical-align-epsilon .widget-readout", readout],
        "the ε slider did not move",
        timeout_s,
    )
    page.wait_changed(IMAGE, "src", image, "moving ε did not redraw the heatmap", epsilon_timeout_s or timeout_s)
    page.wait_until(
        "([s, old]) => document.querySelector(s).innerText !== old",
        [TABLE, table],
        "moving ε did not change the aligned-pairs table",
        timeout_s,
    )
    seen["epsilon"] = (readout, page.text(".optical-align-epsilon .widget-readout"))
    assert float(seen["epsilon"][1]) < float(seen["epsilon"][0])
    assert page.text(MESSAGE).strip() == "", f"unexpected message: {page.text(MESSAGE)!r}"
    if screenshot is not None:
        page.wait_for_timeout(300)  # let the new image paint
        page.locator(".optical-align-widget").screenshot(path=str(screenshot))
    page.assert_clean()
    return seen


def check_retrieval_explorer(page: Page, timeout_s: float = STEP_TIMEOUT_S) -> None:
    """A typed query: ranked documents under the teacher and under the student, each column named."""
    query = ".optical-search-query input"
    page.select_option(".optical-search-lang select", "Hausa (hau)")
    page.fill(query, "earthquake and tsunami in Indonesia")
    page.press(query, "Enter")
    for side in ("teacher", "student"):
        page.wait_until(
            "s => document.querySelectorAll(s).length === 5",
            f".optical-search-{side} tr td:first-child",
            f"no 5 ranked documents on the {side} side",
            timeout_s,
        )
    assert "minilm" in page.text(".optical-search-teacher h4")
    assert "student" in page.text(".optical-search-student h4") and "hau" in page.text(".optical-search-student h4")
    ranks = page.locator(".optical-search-teacher tr td:first-child").all_inner_texts()
    assert ranks == ["1", "2", "3", "4", "5"]
    page.assert_clean()


# =============================================================================== in the browser
@pytest.fixture(scope="module")
def app_page(browser, saved_student, tmp_path_factory):
    log = tmp_path_factory.mktemp("voila") / "server.log"
    with explore_server(saved_student, log) as url:
        page = Page(browser, url)
        try:
            yield page
        finally:
            page.close()


@pytest.fixture(scope="module")
def typed_shape(teacher):
    return tuple(len(teacher.tokenizer.tokenize(text)) for text in TYPED)


def test_alignment_explorer_in_the_browser(app_page, typed_shape, tmp_path):
    update = os.environ.get("OPTICAL_LAB_UPDATE_SCREENSHOTS", "") not in ("", "0")
    shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    seen = check_alignment_explorer(app_page, typed_shape, screenshot=shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["epsilon"][0] != seen["epsilon"][1]


def test_retrieval_explorer_in_the_browser(app_page):
    check_retrieval_explorer(app_page)


def test_bad_input_shows_a_message_not_a_traceback(app_page):
    load_app(app_page)
    app_page.fill(ENGLISH, "")
    app_page.click(".optical-align-models")
    app_page.wait_until(
        "s => document.querySelector(s).innerText.includes('empty sentence')",
        MESSAGE,
        "an empty sentence gives no visible message",
    )
    app_page.fill(ENGLISH, " ".join(["farmers"] * 2000))
    app_page.click(".optical-align-models")
    app_page.wait_until(
        "s => document.querySelector(s).innerText.includes('2,000 tokens')",
        MESSAGE,
        "a 2,000-token paste gives no visible message",
    )
    app_page.fill(ENGLISH, TYPED[0])
    app_page.click(".optical-align-models")
    app_page.wait_until(
        "s => document.querySelector(s).innerText.trim() === ''",
        MESSAGE,
        "the message does not clear once the input is fine again",
    )
    app_page.assert_clean()


def test_a_broken_callback_is_detected(browser, saved_student, typed_shape, tmp_path):
    """The same check fails on a test-only app whose ε callback raises: the browser tests can fail."""
    notebook = json.loads(APP_NOTEBOOK.read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": [
                "app.alignment.epsilon.unobserve_all('value')\n",
                "def broken(change):\n",
                "    raise RuntimeError('deliberately broken callback (test-only)')\n",
                "app.alignment.epsilon.observe(broken, 'value')\n",
            ],
        }
    )
    broken = tmp_path / "app_broken.ipynb"
    broken.write_text(json.dumps(notebook))
    with explore_server(saved_student, tmp_path / "server.log", notebook=broken) as url:
        page = Page(browser, url)
        try:
            with pytest.raises(AssertionError, match="moving ε did not redraw the heatmap"):
                check_alignment_explorer(page, typed_shape, epsilon_timeout_s=8)
        finally:
            page.close()


def test_app_config_defaults_are_offline_and_studentless(monkeypatch):
    monkeypatch.delenv("OPTICAL_LAB_EXPLORE", raising=False)
    config = AppConfig.from_environment()
    assert config.model == "minilm" and config.students == {}
    monkeypatch.setenv("OPTICAL_LAB_EXPLORE", AppConfig(students={"hau": "/x"}, langs=["hau"]).to_json())
    assert AppConfig.from_environment().students == {"hau": "/x"}


def test_app_notebook_renders_in_jupyterlab(browser, tmp_path):
    """``make lab``: the same notebook run in JupyterLab renders live widgets that answer (the
    jupyterlab-manager front-end talks to the kernel's ipywidgets)."""
    shutil.copy(APP_NOTEBOOK, tmp_path / APP_NOTEBOOK.name)  # JupyterLab may autosave: never the repository's copy
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={tmp_path}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    with serve(command, port, tmp_path / "lab.log") as url:
        page = Page(browser, f"{url}lab/tree/{APP_NOTEBOOK.name}", allow_cdn_fonts=True)
        try:
            page.wait_until(
                "() => { const k = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;"
                " return k && k.connectionStatus === 'connected'; }",
                None,
                "JupyterLab did not open the notebook with a kernel",
                90,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            load_app(page)
            assert "no student (teacher only)" in page.text(".optical-app-header")
            foreign = page.value(FOREIGN)
            page.select_option(".optical-align-lang select", "Swahili (swa)")
            page.wait_changed(FOREIGN, "value", foreign, "in JupyterLab the language switch did not reach the kernel")
            page.assert_clean()
        finally:
            page.close()


# =============================================================================== a bounded server (issue #28)
def _kernels(pid: int) -> list:
    """The kernel processes below process ``pid`` (the explore command -> Voilà -> kernels)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for child in children:
        try:
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow  # four page views (3.6 min on the loaded 2-core machine): `make test-slow`
def test_closed_pages_leave_at_most_one_kernel_and_sigterm_stops_them(browser, saved_student, tmp_path):
    """Every page view started a ~0.7 GB kernel that was never culled (about 2 GB after three views), and
    SIGTERM to `optical-lab explore` orphaned Voilà and its kernels."""
    import psutil

    pids: list[int] = []
    with explore_server(
        saved_student, tmp_path / "server.log", extra=("--cull-idle", "10", "--max-kernels", "2"), pids=pids
    ) as url:
        for view in range(3):
            page = Page(browser, url)
            load_app(page)
            page.assert_clean()  # the offline template: no request left the machine
            assert len(_kernels(pids[0])) <= 2, f"view {view + 1}: more kernels than --max-kernels"
            page.close()  # as a killed tab: no beforeunload, the kernel is left to the culler
        deadline = time.monotonic() + 90  # culled 10 s after its page closed, checked every 5 s
        while len(_kernels(pids[0])) > 1 and time.monotonic() < deadline:
            time.sleep(1)
        assert len(_kernels(pids[0])) <= 1, f"{len(_kernels(pids[0]))} kernels alive after the pages closed"
        page = Page(browser, url)  # a kernel for a new reader, then SIGTERM to the command alone
        load_app(page)
        below = psutil.Process(pids[0]).children(recursive=True)
        assert _kernels(pids[0])
        os.kill(pids[0], signal.SIGTERM)
        gone, alive = psutil.wait_procs([psutil.Process(pids[0]), *below], timeout=40)
        page.close()
        assert not alive, f"left running after SIGTERM: {[p.cmdline()[:3] for p in alive]}"


def test_a_port_in_use_is_refused_before_voila_starts(capsys):
    from optical_lab.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--no-browser", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}: the port is in use" in err and "--port" in err


def test_a_bad_student_file_is_a_line_in_the_page_not_a_traceback(teacher, tmp_path):
    import argparse

    from optical_lab.reports.explore import build_app

    # a pickle that would build an arbitrary object: torch.load(weights_only=True) refuses it, runs nothing
    torch.save({"weight": argparse.Namespace(a=1)}, tmp_path / "pickle.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not a zip")
    for name in ("pickle.pt", "corrupt.pt"):
        with pytest.raises(DataError, match="not a readable state dict"):
            load_student(tmp_path / name, teacher)
    config = AppConfig.default(
        students={"hau": str(tmp_path / "pickle.pt"), "swa": str(tmp_path / "corrupt.pt")}, langs=["hau"]
    )
    app = build_app(config)
    assert not app.students and app.header.value.count("could not load the") == 2


def test_the_app_is_package_data_with_an_offline_template_and_an_optional_token():
    from optical_lab.reports import explore

    assert explore.APP_NOTEBOOK.is_file() and explore.APP_NOTEBOOK.parent.parent == Path(explore.__file__).parent
    template = explore.APP_DIR / "voila" / "templates" / explore.VOILA_TEMPLATE / "index.html.j2"
    assert "cdn.jsdelivr.net" in template.read_text()  # the links it removes, named exactly
    command = explore.voila_command(explore.APP_NOTEBOOK, 9999, token="s3cret")
    assert "--Voila.port_retries=0" in command and "--Voila.token=s3cret" in command
    assert explore.app_url("127.0.0.1", 9999, "s3cret") == "http://127.0.0.1:9999/?token=s3cret"


def test_the_kernel_cap_shuts_down_a_kernel_without_a_page_or_refuses(monkeypatch):
    """``--max-kernels``: at the cap, the least recently active kernel with no open page makes room; when every
    kernel has a reader, a new page gets HTTP 503 instead of one more kernel."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from tornado import web

    from optical_lab.reports.app_kernels import BoundedKernelManager

    kernels: dict[str, SimpleNamespace] = {}

    async def start(self, *args, **kwargs):
        kernels[kid := f"k{len(kernels) + len(stopped)}"] = SimpleNamespace(last_activity=len(kernels) + len(stopped))
        return kid

    stopped: list[str] = []

    async def shutdown(self, kernel_id, *args, **kwargs):
        stopped.append(kernel_id)
        del kernels[kernel_id]

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", start)
    monkeypatch.setattr(BoundedKernelManager, "shutdown_kernel", shutdown)
    monkeypatch.setattr(BoundedKernelManager, "list_kernel_ids", lambda self: list(kernels))
    monkeypatch.setattr(BoundedKernelManager, "get_kernel", lambda self, kernel_id: kernels[kernel_id])

    def run(coroutine):  # in a thread of its own: playwright's sync API keeps an event loop in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    manager = BoundedKernelManager(max_kernels=2)
    run(manager.start_kernel())
    run(manager.start_kernel())
    manager._kernel_connections.update({"k0": 0, "k1": 1})  # k1's page is open
    run(manager.start_kernel())
    assert stopped == ["k0"] and sorted(kernels) == ["k1", "k2"]
    manager._kernel_connections["k2"] = 1
    with pytest.raises(web.HTTPError, match="2 readers are using the app"):
        run(manager.start_kernel())
    assert sorted(kernels) == ["k1", "k2"]
