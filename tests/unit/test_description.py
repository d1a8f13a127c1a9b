"""The service description schema: defaults, aliases, unknown keys, errors naming fields."""

from __future__ import annotations

import pytest

from eas_core.errors import InvalidDescription
from eas_core.spec.service import (
    changes_version,
    merge_documents,
    parse_description,
    unsupported_settings,
)

BASE = {
    "name": "svc",
    "processor_type": "python",
    "processor_path": "/p",
    "processor_entry": "app.py",
    "metadata": {"instance": 1},
}


def test_defaults_and_rpc_keys() -> None:
    d = parse_description({**BASE, "metadata": {"instance": 2, "rpc.keepalive": 100, "cpu": 2}})
    meta = d.metadata
    assert (meta.instance, meta.keepalive, meta.max_queue_size, meta.threads) == (2, 100, 64, 5)
    assert meta.memory_mb == 8000 and meta.resource == "public"


def test_unknown_keys_are_kept() -> None:
    d = parse_description(
        {**BASE, "extra": {"a": 1}, "metadata": {"instance": 1, "custom.key": "v"}}
    )
    assert d.model_extra == {"extra": {"a": 1}}
    assert d.metadata.model_extra == {"custom.key": "v"}


def test_generate_token_accepts_strings() -> None:
    d = parse_description({**BASE, "generate_token": "false"})
    assert d.generate_token is False and d.token is None


def test_model_config_object_is_handed_over_as_text() -> None:
    assert parse_description({**BASE, "model_config": {"a": 1}}).model_config_text == '{"a":1}'


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "9x"}, "name:"),
        ({"metadata": {"instance": -1}}, "metadata.instance:"),
        ({"metadata": {"instance": 1, "rpc.max_queue_size": 0}}, "metadata.rpc.max_queue_size:"),
        ({"metadata": {"instance": 1, "gpu": "two"}}, "metadata.gpu:"),
        ({"processor_type": "ruby"}, "processor_type:"),
        ({"token": ""}, "token:"),
    ],
)
def test_errors_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidDescription) as err:
        parse_description({**BASE, **change})
    assert field in err.value.message


def test_merge_and_version_rule() -> None:
    merged = merge_documents(BASE, {"metadata": {"instance": 3}})
    assert merged["metadata"] == {"instance": 3} and merged["processor_entry"] == "app.py"
    assert not changes_version(BASE, {"metadata": {"instance": 3}})
    assert changes_version(BASE, {"model_path": "/m"})
    assert not changes_version(BASE, {"processor_entry": "app.py"})


def test_runtime_settings_the_instances_do_not_have_are_named() -> None:
    plain = parse_description(BASE).metadata
    assert unsupported_settings(plain) == []
    off = parse_description({**BASE, "metadata": {"instance": 1, "rpc.batching": False}})
    assert unsupported_settings(off.metadata) == []
    asked = parse_description(
        {**BASE, "metadata": {"instance": 1, "rpc.batching": True, "rpc.io_threads": 4}}
    )
    refused = unsupported_settings(asked.metadata)
    assert [line.split(":")[0] for line in refused] == [
        "metadata.rpc.batching",
        "metadata.rpc.io_threads",
    ]
