"""Settings come from one place: the environment handed on, the client configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from eas_core.config import child_environment, client_config_path


def test_a_child_gets_our_environment_plus_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAS_DRAIN_SECONDS", "9")
    monkeypatch.setenv("HOME_OF_TEST", "kept")
    env = child_environment({"EAS_PORT": "1234"})
    assert (env["EAS_DRAIN_SECONDS"], env["HOME_OF_TEST"], env["EAS_PORT"]) == ("9", "kept", "1234")


def test_settings_meant_for_this_process_stay_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EAS_DRAIN_SECONDS", "9")
    monkeypatch.setenv("HOME_OF_TEST", "kept")
    env = child_environment({"EAS_PORT": "1234"}, drop_prefix="EAS_")
    assert "EAS_DRAIN_SECONDS" not in env
    assert (env["HOME_OF_TEST"], env["EAS_PORT"]) == ("kept", "1234")


def test_search_paths_go_in_front_of_the_inherited_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/lib")
    env = child_environment({}, search_paths={"LD_LIBRARY_PATH": ["/pkg", "/pkg/lib"]})
    assert env["LD_LIBRARY_PATH"] == "/pkg:/pkg/lib:/usr/local/lib"
    monkeypatch.delenv("LD_LIBRARY_PATH")
    env = child_environment({}, search_paths={"LD_LIBRARY_PATH": ["/pkg"]})
    assert env["LD_LIBRARY_PATH"] == "/pkg"


def test_the_client_configuration_file_is_eas_config_or_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EAS_CONFIG", str(tmp_path / "elsewhere"))
    assert client_config_path() == tmp_path / "elsewhere"
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("EAS_CONFIG")
        else:
            monkeypatch.setenv("EAS_CONFIG", unset)
        assert client_config_path() == Path.home() / ".eas" / "config"
