"""The zoo: presets, config files, user factories, and the errors for each."""

from __future__ import annotations

import pytest
import torch

from nasbench import zoo
from nasbench.errors import UserError


def test_every_family_is_discovered_and_presets_are_unique() -> None:
    fams = zoo.all_families()
    assert {"mobilevit", "mobilevitv2"} <= set(fams)
    names = [n for f in fams.values() for n in f.presets]
    assert len(names) == len(set(names))


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UserError, match="did you mean mobilevit_s"):
        zoo.resolve("mobilevit_ss")


def test_config_file_round_trip(tmp_path) -> None:
    spec = zoo.resolve("mobilevit_xs")
    path = tmp_path / "mine.yaml"
    path.write_text(zoo.spec_to_yaml(spec))
    again = zoo.resolve(str(path))
    assert again.config == spec.config and again.family == "mobilevit" and again.source == "config"


def test_config_file_preset_with_overrides(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"preset": "mobilevitv2_050", "width_multiplier": 0.75}')
    spec = zoo.resolve(str(path))
    assert spec.config == zoo.resolve("mobilevitv2_075").config


@pytest.mark.parametrize(
    "text, message",
    [
        ("family: mobilevitt\n", "unknown family 'mobilevitt'; did you mean mobilevit"),
        ("family: mobilevit\nhedas: 4\n", "unknown knob 'hedas' \\(did you mean 'heads'\\?\\)"),
        ("family: mobilevit\nheads: 5\n", "not divisible by heads"),
        ("heads: 4\n", "missing 'family:'"),
        ("- a\n- b\n", "must be a mapping"),
        ("family: [unclosed\n", "cannot read config"),
    ],
)
def test_bad_config_files(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        zoo.resolve(str(path))


def test_user_factory_file(tmp_path) -> None:
    path = tmp_path / "mine.py"
    path.write_text("import torch.nn as nn\ndef tiny():\n    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())\n")
    spec = zoo.resolve(f"{path}:tiny")
    model = spec.build()
    assert spec.family == "custom" and model(torch.zeros(1, 3, 8, 8)).shape == (1, 8, 6, 6)


@pytest.mark.parametrize(
    "source, target, message",
    [
        ("import nonexistent_pkg_xyz\n", "f",
         "cannot import .*ModuleNotFoundError: No module named 'nonexistent_pkg_xyz'"),
        ("def f():\n    raise ValueError('boom')\n", "f", "factory .* raised ValueError: boom"),
        ("def f():\n    return 3\n", "f", "returned int, not a torch.nn.Module"),
        ("x = 1\n", "g", "has no callable 'g'"),
    ],
)
def test_user_factory_errors(tmp_path, source: str, target: str, message: str) -> None:
    path = tmp_path / "user.py"
    path.write_text(source)
    with pytest.raises(UserError, match=message):
        zoo.resolve(f"{path}:{target}").build()


def test_module_factory_and_missing_file() -> None:
    spec = zoo.resolve("torch.nn:Identity")
    assert isinstance(spec.build(), torch.nn.Identity)
    with pytest.raises(UserError, match="model file not found"):
        zoo.resolve("nope/missing.py:f")
