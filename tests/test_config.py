from __future__ import annotations

from pathlib import Path

import pytest

from serving.core.errors import BadInput
from training.config import load_config, to_toml


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('epochs = 5\nrun_name = "x"\n')
    config = load_config(path, ["epochs=2", "lr=1e-4"])
    assert (config.epochs, config.run_name, config.lr) == (2, "x", 1e-4)
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    assert load_config(again) == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["epochs=two"], "epochs needs a int"),
        (["nope=1"], "unknown config keys: nope"),
        (["epochs"], "key=value"),
    ],
)
def test_bad_overrides(overrides: list[str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        load_config(None, overrides)
