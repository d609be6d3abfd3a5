"""The registry as the apply engine sees it: small, and free of any SDK type."""

from __future__ import annotations

from typing import Protocol

from reconciler.observe.readers import RegistryReader


class RegistryWriter(Protocol):
    """The registry writes the apply engine makes: aliases and tags, nothing else."""

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None: ...

    def set_model_tag(self, name: str, key: str, value: str) -> None: ...

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None: ...


class Registry(RegistryReader, RegistryWriter, Protocol):
    """Read and write access, as the apply engine needs it."""
