"""Observation: read-only snapshots of the world the plan is compared with."""
