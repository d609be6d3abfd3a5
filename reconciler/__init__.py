"""Declarative GitOps reconciler for the ML/LLM models behind an application's use cases."""

__version__ = "0.1.0"
