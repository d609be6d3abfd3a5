"""A local catalog: a folder of Hugging Face-format model folders (a `config.json` in each).

Each folder is a candidate named by its repository path. Its revision is a digest of its
files' names and contents, so a rebuilt model is a new revision; its license, pipeline tag and
benchmark results come from the model card's metadata (`README.md`, read with
huggingface_hub's card parser); its parameter count and dtypes from the safetensors headers;
its release time is the newest file's modification time.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from reconciler.discovery.candidate import Candidate, SourceKind
from reconciler.discovery.memory import DTYPE_BYTES
from reconciler.discovery.sources import SourceUnavailableError
from reconciler.spec.discovery import LocalCatalogSource

CARD = "README.md"
REVISION_HEX_DIGITS = 16


class LocalCatalog:
    def __init__(self, config: LocalCatalogSource, *, repo: Path) -> None:
        self.config = config
        self.repo = repo

    @property
    def description(self) -> str:
        return f"local ({self.config.path})"

    def candidates(self) -> list[Candidate]:
        root = (self.repo / self.config.path).resolve()
        if not root.is_relative_to(self.repo.resolve()):
            raise SourceUnavailableError(f"{self.config.path} points outside the repository")
        if not root.is_dir():
            raise SourceUnavailableError(f"{self.config.path} is not a folder")
        found = []
        for config in sorted(root.glob("*/config.json")):
            folder = config.parent
            if folder.is_symlink():
                continue
            found.append(self._candidate(folder))
        return found

    def _candidate(self, folder: Path) -> Candidate:
        path = folder.resolve().relative_to(self.repo.resolve()).as_posix()
        card = _card_data(folder / CARD)
        parameters, per_parameter = _safetensors_size(folder)
        from reconciler.discovery.sources.huggingface import card_quality

        license_ = getattr(card, "license", None) if card is not None else None
        return Candidate(
            source=SourceKind.LOCAL,
            id=path,
            path=path,
            revision=folder_revision(folder),
            license=str(license_) if isinstance(license_, str) else None,
            parameters=parameters,
            bytes_per_parameter=per_parameter,
            pipeline_tag=getattr(card, "pipeline_tag", None) if card is not None else None,
            released_at=_newest_change(folder),
            quality=card_quality(card),
        )


def folder_revision(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:REVISION_HEX_DIGITS]


def _card_data(readme: Path) -> object | None:
    if not readme.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        data: object = ModelCard.load(readme, ignore_metadata_errors=True).data
    except Exception:  # a card that is not a card: no metadata, not a failed source
        return None
    return data


def _safetensors_size(folder: Path) -> tuple[float | None, float | None]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None, None
    from safetensors import safe_open

    count = 0
    weighted = 0.0
    for file in files:
        with safe_open(str(file), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = handle.get_slice(name)
                size = 1
                for dimension in tensor.get_shape():
                    size *= int(dimension)
                count += size
                weighted += size * DTYPE_BYTES.get(str(tensor.get_dtype()).upper(), 2.0)
    if count == 0:
        return None, None
    return float(count), weighted / count


def _newest_change(folder: Path) -> datetime:
    newest = max(p.stat().st_mtime for p in folder.rglob("*") if p.is_file())
    return datetime.fromtimestamp(newest, UTC)
