"""eascmd's shape: every verb module registered by main.py, none importing it back, aliases
resolved, and errors turned into exit codes in one place. Runs the real group in-process."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import eas_core
import eas_core.cli
from eas_core.cli.main import cli, main

CLI_DIR = Path(eas_core.cli.__file__).parent
COMMANDS = {
    "alert",
    "autoscale",
    "shadow",
    "pysdk",
    "events",
    "monitor",
    "config",
    "upload",
    "create",
    "modify",
    "stop",
    "start",
    "delete",
    "list",
    "desc",
    "showworkers",
    "logs",
    "version",
    "versions",
    "release",
    "resource",
    "server",
    "controller",
    "gateway",
    "test",
}


def test_main_registers_every_command() -> None:
    assert set(cli.commands) == COMMANDS
    resource = cli.commands["resource"]
    assert isinstance(resource, click.Group)
    assert set(resource.commands) == {"list", "list_instance", "create", "desc", "delete"}


def test_top_level_help_lists_each_command_once_and_whole() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:")[1]
    # click cuts a long first sentence with "..."; every command has a short help instead.
    assert "..." not in listed, listed
    assert "Change a service (a new model or processor: a new version)." in listed
    names = [line.split()[0] for line in listed.strip().splitlines()]
    assert sorted(names) == sorted(COMMANDS)


def test_resource_aliases_run_their_commands_but_are_not_listed() -> None:
    listed = CliRunner().invoke(cli, ["resource", "--help"]).output.split("Commands:")[1]
    assert [line.split()[0] for line in listed.strip().splitlines()] == [
        "create",
        "delete",
        "desc",
        "list",
        "list_instance",
    ]
    for alias, help_line in (("ls", "List resource groups"), ("li", "The nodes of a resource")):
        result = CliRunner().invoke(cli, ["resource", alias, "--help"])
        assert result.exit_code == 0 and help_line in result.output, result.output


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.output) == (0, f"eascmd {eas_core.__version__}\n")


def test_no_verb_module_imports_main() -> None:
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name in ("main.py", "__main__.py"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert "eas_core.cli.main" not in imported, path.name


@pytest.mark.parametrize(
    ("alias", "help_line"),
    [("ls", "List services (alias: ls)."), ("w", "The instances of a service (alias: w).")],
)
def test_aliases_resolve_to_their_commands(alias: str, help_line: str) -> None:
    result = CliRunner().invoke(cli, [alias, "--help"])
    assert result.exit_code == 0, result.output
    assert help_line in result.output


def test_config_writes_the_file_other_commands_read(tmp_path: Path) -> None:
    path = tmp_path / "eas.config"
    result = CliRunner().invoke(
        cli, ["-c", str(path), "config", "-i", "id", "-k", "secret", "-e", "127.0.0.1:8000/"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"Configuration saved to: {path}\n"
    saved = configparser.ConfigParser()
    saved.read(path)
    assert dict(saved["eas"]) == {
        "access_id": "id",
        "access_key": "secret",
        "endpoint": "http://127.0.0.1:8000",
    }
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_error_prints_its_kind_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.config"
    with pytest.raises(SystemExit) as exited:
        main(["-c", str(missing), "ls"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"EASError: no configuration at {missing}: "
        "run `eascmd config -i ID -k SECRET -e ENDPOINT`\n"
    )


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["desc"])
    assert exited.value.code == 2
    assert "Missing argument 'NAME'" in capsys.readouterr().err
