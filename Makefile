# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint lint-workflows typecheck bench schema ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded defaults: converge the shipped desired state from nothing
# (tiny base model, local provider, gateway with players, apply), then show that a new plan
# is empty (exit code 0 with --detailed-exitcode); last, discovery ranks a newer model the
# demo puts in a local catalog, and `propose --dry-run` shows the pull request it would open.
demo: $(STAMP)
	$(BIN)/reconciler validate
	$(BIN)/python -m reconciler.demo
	$(BIN)/reconciler plan --detailed-exitcode
	$(BIN)/python -m reconciler.demo.catalog
	$(BIN)/reconciler discover
	$(BIN)/reconciler propose --dry-run

test: $(STAMP) lint typecheck lint-workflows
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The GitHub workflows, offline: zizmor's security audits (no finding of medium severity or
# higher) and GitHub's workflow schema.
WORKFLOWS := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)
lint-workflows: $(STAMP)
	$(BIN)/zizmor --offline --min-severity medium .github/workflows/
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)

bench: $(STAMP)
	$(BIN)/python bench/plan_scale.py

# The MLflow UI over the store every command uses (the demo's, or MLFLOW_TRACKING_URI's):
# registered models with their aliases and lineage tags, training and evaluation runs.
ui: $(STAMP)
	$(BIN)/reconciler ui

schema: $(STAMP)
	$(BIN)/reconciler schema > reconciler/spec/schema.json

clean:
	rm -rf $(VENV) .reconciler .pytest_cache .mypy_cache .ruff_cache
