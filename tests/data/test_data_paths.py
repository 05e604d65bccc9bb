"""The data folder: $OPTICAL_LAB_DATA is never skipped silently, and the run can say which folder it read."""

from __future__ import annotations

import pytest

from optical_lab.data import DataError
from optical_lab.data.paths import DATA_ENV, data_dir, data_source


def test_empty_env_folder_fails_instead_of_falling_back(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))  # exists, but empty; ../shared/data exists beside the checkout
    with pytest.raises(DataError, match=r"(?s)holds none of the dataset folders.*Fix: set OPTICAL_LAB_DATA"):
        data_dir()
    with pytest.raises(DataError, match="holds none of the dataset folders"):
        data_dir("ntrex-128")


def test_env_folder_without_the_asked_dataset(tmp_path, monkeypatch):
    (tmp_path / "ntrex-128").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir("ntrex-128") == tmp_path
    with pytest.raises(DataError, match=r"(?s)has no sib-200/ folder \(it holds ntrex-128\).*data fetch --dest"):
        data_dir("sib-200")


def test_data_source_says_how_the_folder_was_found(tmp_path, monkeypatch):
    (tmp_path / "sib-200").mkdir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_source().to_dict() == {"data_dir": str(tmp_path.resolve()), "found_by": f"${DATA_ENV}"}
    monkeypatch.delenv(DATA_ENV)
    source = data_source("sib-200")
    assert source.how == "../shared/data beside the checkout" and (source.path / "sib-200").is_dir()
