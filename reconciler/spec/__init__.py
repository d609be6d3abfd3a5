"""The desired state: its model, safe YAML reading with positions, loading and validation."""
