"""Writes to MLflow (runs, metrics, datasets, logged models, registry versions) in one place."""
