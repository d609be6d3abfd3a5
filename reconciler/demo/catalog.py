"""`python -m reconciler.demo.catalog`: a local model catalog with a newer tiny model.

The last part of the demo shows discovery and proposals: npc-dialogue's `spec.discovery` looks
in `models/catalog`, where this builds a second tiny GPT-2 (another seed, a shorter
pretraining - a "newer release") with a model card naming its license and pipeline tag.
`reconciler discover` then ranks it against the current base, and `reconciler propose
--dry-run` shows the pull request it would open, with evidence against the live champion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CATALOG_MODEL = Path("models/catalog/tiny-npc-v2")
CARD = """\
---
license: apache-2.0
pipeline_tag: text-generation
---
# tiny-npc-v2

A newer tiny GPT-2 for the demo's local catalog: another seed, pretrained on the same corpus.
"""


def build_catalog_model(repo: Path, *, pretrain_steps: int) -> Path:
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    folder = repo / CATALOG_MODEL
    if (folder / "config.json").exists():
        return folder
    build_tiny_model(
        folder,
        seed=1,
        extra_texts=shipped_dataset_texts(repo / "desired_state" / "datasets"),
        pretrain_steps=pretrain_steps,
    )
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.demo.catalog", description=__doc__)
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--pretrain-steps", type=int, default=500)
    args = parser.parse_args(argv)
    folder = build_catalog_model(args.repo, pretrain_steps=args.pretrain_steps)
    print(f"catalog model ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
