"""Backends generate text for one route target: self-hosted weights or an external provider."""
