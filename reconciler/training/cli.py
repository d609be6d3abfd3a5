"""`reconciler tiny-model`: the tiny demo base model, built locally with no downloads.

The module imports only click; the work (torch, transformers) is imported when the command
runs, so `validate` and `plan` stay light.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli_options import repo_option as shared_repo_option

repo_option = shared_repo_option(
    "Folder holding desired_state/ and policies/ (read as it is on disk)."
)


@click.command("tiny-model")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models/tiny-base"),
    show_default=True,
    help="Folder to write the model and tokenizer to.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Weight initialisation seed.")
@click.option(
    "--datasets",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("desired_state/datasets"),
    show_default=True,
    help="JSONL datasets whose text the tokenizer also learns (skipped when missing).",
)
def tiny_model_command(out: Path, seed: int, datasets: Path) -> None:
    """Build a tiny GPT-2 (2 layers) and its tokenizer, deterministically, with no downloads."""
    from reconciler.training.tiny_model import build_tiny_model, shipped_dataset_texts

    texts = shipped_dataset_texts(datasets) if datasets.is_dir() else []
    build_tiny_model(out, seed=seed, extra_texts=texts)
    click.echo(f"Built the tiny model in {out}.")
