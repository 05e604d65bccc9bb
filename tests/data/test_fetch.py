"""`data fetch` without the network: a fake opener serves the mirror's bytes (or bad ones)."""

from __future__ import annotations

import http.client
import io
import socket
import urllib.error

import pytest

from optical_lab.data import DataError
from optical_lab.data import fetch as fetch_module
from optical_lab.data.fetch import Download, download, fetch, planned_downloads
from optical_lab.data.paths import data_dir
from optical_lab.data.pins import PINS

MIRROR = data_dir("sib-200")
ITEM = next(d for d in planned_downloads() if d.relative == "sib-200/data/annotated/wol_Latn/dev.tsv")


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, announced: int | None = None, fail_after: Exception | None = None):
        super().__init__(body)
        self.headers = {"Content-Length": str(announced)} if announced is not None else {}
        self.fail_after = fail_after

    def read(self, n=-1):
        block = super().read(n)
        if not block and self.fail_after is not None:
            raise self.fail_after
        return block


def serve(body_for):
    """An opener that answers a URL with ``body_for(relative path, mirror bytes)`` (bytes or a FakeResponse)."""
    by_url = {d.url: d.relative for d in planned_downloads()}

    def opener(url, timeout):
        relative = by_url[url]
        answer = body_for(relative, (MIRROR / relative).read_bytes())
        return answer if isinstance(answer, FakeResponse) else FakeResponse(answer, len(answer))

    return opener


def test_every_planned_file_is_pinned_and_sib_is_planned():
    plan = planned_downloads()
    assert all(d.sha256 is not None for d in plan)
    # pins.py pins the built-in datasets' files, a declared source (TICO-19) its own: each file once
    assert len(PINS) == sum(d.pin is None for d in plan) and not set(PINS) & {d.relative for d in plan if d.pin}
    assert sum(d.relative.startswith("sib-200/") for d in plan) == 25 * 4 - 3  # bem/luo/twi: no labels.txt upstream
    assert {d.relative.split("/")[1] for d in plan if d.relative.startswith("mafand-mt/")} >= {
        "en-lug",
        "en-twi",
        "en_luo",
    }
    assert sum(d.relative.startswith("tico-19/data/TM/") for d in plan) == 7 and "afriqa/LICENSE" in PINS
    assert ITEM.url == "https://raw.githubusercontent.com/dadelani/sib-200/593cea8/data/annotated/wol_Latn/dev.tsv"


def test_a_good_download_is_verified_and_renamed(tmp_path):
    target = download(ITEM, tmp_path, opener=serve(lambda rel, good: good))
    assert target.read_bytes() == (MIRROR / ITEM.relative).read_bytes()
    assert list(target.parent.glob("*.part")) == []


def _tamper(good: bytes) -> bytes:
    i = good.index(b"travel")
    return good[:i] + b"TRAVEL" + good[i + 6 :]  # same length, different content


@pytest.mark.parametrize(
    "body,message",
    [
        (lambda rel, good: _tamper(good), "has SHA-256"),  # same length: a line count would accept it
        (lambda rel, good: FakeResponse(good[:-100], None), "has SHA-256"),  # truncated, no Content-Length
        (lambda rel, good: FakeResponse(good[:-100], len(good)), "stopped after"),  # truncated, announced length
    ],
)
def test_tampered_or_truncated_file_is_refused(tmp_path, body, message):
    (tmp_path / ITEM.relative).parent.mkdir(parents=True)
    (tmp_path / ITEM.relative).write_text("previous good copy\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"(?s){message}.*Fix: "):
        download(ITEM, tmp_path, opener=serve(body))
    assert (tmp_path / ITEM.relative).read_text(encoding="utf-8") == "previous good copy\n"  # untouched
    assert list((tmp_path / ITEM.relative).parent.glob("*.part")) == []


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("no route"),
        urllib.error.HTTPError(ITEM.url, 503, "Service Unavailable", {}, None),
        socket.timeout("timed out"),
        TimeoutError("timed out"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_network_errors_become_the_clear_error(tmp_path, error):
    def opener(url, timeout):
        raise error

    with pytest.raises(
        DataError, match=rf"(?s)could not download {ITEM.url} \({type(error).__name__}.*Fix: check the internet"
    ):
        download(ITEM, tmp_path, opener=opener)
    assert list((tmp_path / ITEM.relative).parent.glob("*.part")) == []


def test_dropped_connection_mid_body(tmp_path):
    dropped = lambda rel, good: FakeResponse(
        good[:500], len(good), fail_after=http.client.IncompleteRead(good[:500], 1000)
    )
    with pytest.raises(DataError, match="IncompleteRead"):
        download(ITEM, tmp_path, opener=serve(dropped))
    assert list((tmp_path / ITEM.relative).parent.glob("*")) == []


def test_unpinned_file_needs_consent(tmp_path, capsys):
    item = Download("https://example.invalid/x.txt", "ntrex-128/newstest2019-ref.qaa.txt", 2)
    opener = lambda url, timeout: FakeResponse(b"a\nb\n", 4)
    with pytest.raises(DataError, match="no SHA-256 pin"):
        download(item, tmp_path, opener=opener)
    download(item, tmp_path, opener=opener, allow_unpinned=True)
    assert "sha256 " in capsys.readouterr().out
    with pytest.raises(DataError, match="has 1 lines, expected 2"):
        download(item, tmp_path, opener=lambda url, timeout: FakeResponse(b"a\n", 2), allow_unpinned=True)


def test_fetch_one_language_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module, "tqdm", lambda items, **_: items)
    dest = fetch(tmp_path, ("hau",), sib_langs=("hau_Latn",), opener=serve(lambda rel, good: good))
    fetched = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert "ntrex-128/newstest2019-ref.hau.txt" in fetched and "sib-200/data/annotated/hau_Latn/labels.txt" in fetched
    assert not any(name.endswith(".part") for name in fetched)
    assert all((dest / rel).read_bytes() == (MIRROR / rel).read_bytes() for rel in fetched)
