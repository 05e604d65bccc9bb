"""`optical-lab explore [--student [LANG=]PATH ...]`: the two explorers as a web app (Voilà).

Voilà runs ``app/app_explorer.ipynb`` (package data: the app runs from an installed package) in a
kernel and serves only its outputs (no code cells) on localhost. The notebook holds a single call,
:func:`app_from_environment`; this command
passes its settings (teacher backbone, students, languages) through the ``OPTICAL_LAB_EXPLORE``
environment variable as JSON, which the Voilà server hands down to the notebook's kernel. The
same notebook opened in JupyterLab (``make lab``) without that variable shows the default app:
the packaged MiniLM teacher, offline, and no student.

A *saved student* is either

* a folder written by ``Encoder.save`` (a Hugging Face folder: ``config.json`` + weights), or
* a ``student.pt`` state dict (``optical_lab.experiments.students.save_student``, what the notebooks'
  student cache holds), or a folder containing one; it is loaded into a copy of the teacher, so
  ``--model`` must name the backbone it was trained from.

``--student hau=PATH`` names the language; a bare ``PATH`` takes it from the folder name when that
starts with a language code (the student cache's ``hau-optical-fold0of2-...``). A student that
cannot be loaded (a pickle, a damaged file, weights of another backbone) is a red line in the page;
no code in the file is ever run (``torch.load(weights_only=True)``).

The server is bounded and honest (:mod:`.app_kernels`): the kernel of a closed page is culled after
``--cull-idle`` seconds and at most ``--max-kernels`` kernels live at once; SIGTERM/SIGHUP to this
command stop Voilà and its kernels; a port already in use is refused before Voilà starts (Voilà
would silently move to another port), and the URL printed is the one served; ``--token`` asks every
reader for a token on a shared machine; the page requests nothing outside the machine (the
``optical-lab`` Voilà template drops the lab template's Font Awesome stylesheets from a CDN).
"""

from __future__ import annotations

import argparse
import errno
import html
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    import ipywidgets as W
except ModuleNotFoundError as exc:  # an optional dependency (pyproject.toml: the `app` and `notebooks` extras)
    raise ModuleNotFoundError("the explorers need ipywidgets: pip install 'optical_lab[app]'", name=exc.name) from exc
import torch

from ..data.errors import DataError
from ..data.languages import NAMES, normalize_lang
from ..models import Encoder
from ..models.registry import DEFAULT_MODEL
from .widgets import AlignmentExplorer, RetrievalExplorer, message_html

APP_DIR = Path(__file__).with_name("app")  # package data: the notebook and the offline Voilà template
APP_NOTEBOOK = APP_DIR / "app_explorer.ipynb"
VOILA_TEMPLATE = "optical-lab"  # APP_DIR/voila/templates/optical-lab, found through JUPYTER_PATH
CONFIG_ENV = "OPTICAL_LAB_EXPLORE"
DEFAULT_LANGS = ("hau", "swa", "yor")
DEFAULT_PORT = 8866
CULL_IDLE_S = 120  # a kernel without an open page, idle this long, is shut down
MAX_KERNELS = 2  # kernels alive at once (each holds the teacher and the students: ~0.7 GB on MiniLM)


@dataclass
class AppConfig:
    """What the app shows; travels from the command to the notebook's kernel as JSON."""

    model: str = DEFAULT_MODEL
    students: dict[str, str] = field(default_factory=dict)  # lang -> saved student path
    langs: list[str] = field(default_factory=lambda: list(DEFAULT_LANGS))
    n_pairs: int = 25  # NTREX sentence pairs offered in the alignment explorer
    max_docs: int | None = None  # NTREX documents searched (None: all of them)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def default(cls, **settings) -> "AppConfig":
        """The defaults with ``settings``; few pairs and documents under ``OPTICAL_LAB_SMALL=1`` (tests)."""
        from ..experiments.students import small_mode

        return cls(**({"n_pairs": 10, "max_docs": 10} if small_mode() else {}), **settings)

    @classmethod
    def from_environment(cls) -> "AppConfig":
        """``$OPTICAL_LAB_EXPLORE`` when set (by the command); else :meth:`default`."""
        raw = os.environ.get(CONFIG_ENV)
        return cls(**json.loads(raw)) if raw else cls.default()


# =============================================================================== saved students
def parse_student(spec: str) -> tuple[str, Path]:
    """``"hau=PATH"`` or ``"PATH"`` -> (language, path); the path must exist."""
    lang, sep, path = spec.partition("=")
    if not sep:
        lang, path = "", spec
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(
            "no saved student here",
            path=folder,
            fix="pass a folder written by Encoder.save, a student.pt, or a folder holding one",
        )
    if not lang:
        name = folder.name if folder.is_dir() else folder.parent.name
        lang = name.split("-")[0].split("_")[0].lower()
        if lang not in NAMES:
            raise DataError(
                f"cannot tell the student's language from the name {name!r}",
                path=folder,
                fix=f"name it: --student hau={spec}",
            )
    return normalize_lang(lang), folder


def load_student(path: str | Path, teacher: Encoder) -> Encoder:
    """A saved student (see the module docstring), on the teacher's device, in eval mode."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").exists():
        student = Encoder.load(str(path), device=teacher.device, max_length=teacher.max_length)
        # a local folder carries no registry entry: keep the teacher's query/passage prefixes (me5)
        student.query_prefix, student.passage_prefix = teacher.query_prefix, teacher.passage_prefix
        return student
    weights = path / "student.pt" if path.is_dir() else path
    if not weights.is_file():
        raise DataError(
            "no config.json and no student.pt",
            path=path,
            fix="pass a folder written by Encoder.save, a student.pt, or a folder holding one",
        )
    try:  # weights_only: a pickle that would run code is refused, never executed
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises pickle, zip and runtime errors for a bad file
        raise DataError(
            f"not a readable state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            path=weights,
            fix="pass a student.pt written by torch.save(student.state_dict())",
        ) from None
    if not isinstance(state, dict):
        raise DataError(
            f"holds a {type(state).__name__}, not a state dict",
            path=weights,
            fix="pass a student.pt written by torch.save(student.state_dict())",
        )
    student = teacher.copy()
    try:
        student.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise DataError(
            f"these weights do not fit the teacher {teacher.name!r} ({str(exc).splitlines()[0]})",
            path=weights,
            fix="pass --model with the backbone the student was trained from",
        ) from exc
    student.name = path.name
    return student.eval()


# =============================================================================== the app
class ExplorerApp:
    """Both explorers under a header that names the teacher and each language's student."""

    def __init__(
        self,
        teacher: Encoder,
        students: dict[str, Encoder],
        labels: dict[str, str],
        config: AppConfig,
        problems: list[str] = (),
    ) -> None:
        langs = list(dict.fromkeys([*students, *config.langs]))  # languages with a student first
        self.teacher, self.students, self.config = teacher, students, config
        self.alignment = AlignmentExplorer(
            teacher, students, langs=langs, n_pairs=config.n_pairs, student_labels=labels
        )
        self.retrieval = RetrievalExplorer(
            teacher, students, langs=langs, max_docs=config.max_docs, k=5, student_labels=labels
        )
        rows = "".join(
            f"<li>{html.escape(NAMES.get(l, l))} ({l}): "
            + (f"distilled student <b>{html.escape(labels[l])}</b>" if l in students else "no student (teacher only)")
            + "</li>"
            for l in langs
        )
        self.header = W.HTML(
            f"<p>Teacher (frozen English encoder, zero-shot on both sides of the comparison): "
            f"<b>{html.escape(teacher.name or config.model)}</b></p><ul>{rows}</ul>"
            + "".join(message_html(p) for p in problems)
        )
        self.header.add_class("optical-app-header")
        self.widget = W.VBox(
            [
                self.header,
                W.HTML(
                    "<h2>Alignment explorer</h2><p>The transport plan between the teacher's English tokens "
                    "(rows) and the student's tokens (columns). Pick a pair or type your own; slide ε "
                    "(small: sharp plan, large: diffuse) and the Sinkhorn iterations.</p>"
                ),
                self.alignment.widget,
                W.HTML(
                    "<h2>Retrieval explorer</h2><p>An English query against the documents of one "
                    "language: the teacher's ranking (zero-shot) beside the student's. "
                    "✔ marks the relevant document of an NTREX known-item query.</p>"
                ),
                self.retrieval.widget,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def build_app(config: AppConfig) -> ExplorerApp:
    """Load the teacher and every student of ``config``; a student that fails to load becomes a red
    line in the page (its language then shows the teacher only), never a traceback."""
    teacher = Encoder.load(config.model)
    students, labels, problems = {}, {}, []
    for lang, path in config.students.items():
        try:
            students[lang] = load_student(path, teacher)
            labels[lang] = str(path).replace(str(Path.home()), "~", 1)  # where it came from, readably
        except Exception as exc:  # noqa: BLE001 - whatever the file holds, the page shows a line, not a traceback
            problems.append(f"could not load the {NAMES.get(lang, lang)} student from {path}: {exc}")
    return ExplorerApp(teacher, students, labels, config, problems)


def app_from_environment() -> ExplorerApp:
    """What ``app/app_explorer.ipynb`` displays: the app for ``$OPTICAL_LAB_EXPLORE``."""
    from .notebook import notebook_setup

    notebook_setup()  # offline, quiet, torch threads for the machine's load
    return build_app(AppConfig.from_environment())


# =============================================================================== command line
def voila_command(
    notebook: Path,
    port: int,
    host: str = "127.0.0.1",
    open_browser: bool = False,
    cull_idle: int = CULL_IDLE_S,
    max_kernels: int = MAX_KERNELS,
    token: str = "",
) -> list[str]:
    """The Voilà server for ``notebook``: outputs only (code cells stripped), tracebacks hidden, on
    exactly ``port`` (no retry on another one), with the kernel bounds of :mod:`.app_kernels`, the
    offline template and ``token`` ("" = none)."""
    command = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--Voila.port_retries=0",
        "--strip_sources=True",
        "--show_tracebacks=False",
        "--theme=light",
        f"--template={VOILA_TEMPLATE}",
        "--VoilaConfiguration.multi_kernel_manager_class=optical_lab.reports.app_kernels.BoundedKernelManager",
        f"--BoundedKernelManager.max_kernels={max_kernels}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
        f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle // 2))}",
        "--MappingKernelManager.cull_connected=False",
        f"--Voila.token={token}",
    ]
    return command + ([] if open_browser else ["--no-browser"])


def check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on (Voilà would move to another one and the printed URL
    would be wrong)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            raise DataError(
                f"cannot serve on {host}:{port}: " + ("the port is in use" if taken else exc.strerror),
                fix=f"pass another --port (e.g. --port {port + 1})" if taken else "pass another --host",
            ) from None


def app_url(host: str, port: int, token: str) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/" + (f"?token={token}" if token else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--student",
        action="append",
        default=[],
        metavar="[LANG=]PATH",
        help="a saved student (Encoder.save folder or student.pt); repeat for more languages",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="the teacher backbone (and the students' starting point)"
    )
    parser.add_argument("--langs", default=",".join(DEFAULT_LANGS), help="languages offered besides the students'")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="local port of the web app")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (localhost by default)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument(
        "--cull-idle",
        type=int,
        default=CULL_IDLE_S,
        help=f"seconds after which the kernel of a closed page is shut down (default {CULL_IDLE_S})",
    )
    parser.add_argument(
        "--max-kernels",
        type=int,
        default=MAX_KERNELS,
        help=f"kernels alive at once, one per open page (default {MAX_KERNELS})",
    )
    parser.add_argument(
        "--token",
        nargs="?",
        const="generate",
        default="",
        help="ask readers for a token (shared machines): --token VALUE, or --token alone for a random one",
    )
    parser.add_argument("--notebook", default=str(APP_NOTEBOOK), help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> None:
    notebook = Path(args.notebook)
    if not notebook.exists():
        raise DataError(
            "the app notebook is missing",
            path=notebook,
            fix="reinstall optical_lab (pip install .): the notebook is package data",
        )
    for flag, value, low in (
        ("--cull-idle", args.cull_idle, 1),
        ("--max-kernels", args.max_kernels, 1),
        ("--port", args.port, 1),
    ):
        if value < low:
            raise DataError(f"{flag} {value}: must be >= {low}", fix=f"e.g. {flag} {low if flag != '--port' else 8866}")
    if importlib.util.find_spec("voila") is None:
        raise DataError(
            "optical-lab explore serves the explorers with Voilà, which is not installed",
            fix="pip install 'optical_lab[app]' (or `make explore`, whose environment has it)",
        )
    students = dict(parse_student(spec) for spec in args.student)
    langs = [normalize_lang(l) for l in args.langs.split(",") if l.strip()]
    config = AppConfig.default(
        model=args.model, students={l: str(p.resolve()) for l, p in students.items()}, langs=langs
    )
    check_port(args.host, args.port)
    token = secrets.token_urlsafe(16) if args.token == "generate" else args.token
    jupyter_path = os.pathsep.join(p for p in (str(APP_DIR), os.environ.get("JUPYTER_PATH", "")) if p)
    env = {
        **os.environ,
        CONFIG_ENV: config.to_json(),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "JUPYTER_PATH": jupyter_path,
    }
    command = voila_command(
        notebook, args.port, args.host, not args.no_browser, args.cull_idle, args.max_kernels, token
    )
    print(f"optical-lab explore: {app_url(args.host, args.port, token)}  (Ctrl-C stops the server)", flush=True)
    serve_until_stopped(subprocess.Popen(command, env=env))


def serve_until_stopped(server: subprocess.Popen) -> None:
    """Wait for the Voilà ``server``; SIGTERM or SIGHUP to this process (or Ctrl-C) stops it, and with it
    its kernels (Voilà shuts them down on SIGTERM), instead of orphaning them."""

    def forward(signum, frame) -> None:
        server.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
    finally:
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
