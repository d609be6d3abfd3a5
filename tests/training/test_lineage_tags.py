"""The pins logged with every model can be installed from PyPI; the use-case copy's name."""

from __future__ import annotations

from importlib.metadata import version as installed_version

from packaging.requirements import Requirement

from reconciler.training.lineage_tags import pip_requirements, public_version


def test_local_build_labels_are_stripped_from_versions() -> None:
    assert public_version("2.13.0+cpu") == "2.13.0"
    assert public_version("2.13.0+cu126.post1") == "2.13.0"
    assert public_version("5.24.0") == "5.24.0"


def test_pinned_requirements_carry_no_local_label() -> None:
    pins = {Requirement(line).name: Requirement(line) for line in pip_requirements()}
    assert set(pins) == {"mlflow", "transformers", "torch", "tokenizers", "safetensors"}
    for name, requirement in pins.items():
        [specifier] = list(requirement.specifier)
        assert specifier.operator == "=="
        assert "+" not in specifier.version, requirement
        # Still the installed release, only without the build label.
        assert specifier.version == installed_version(name).split("+")[0]
