"""The model registry adapter: the only place that talks to MLflow's registry."""
