"""The propose workflow meets the same project as `reconciler propose`'s own tests."""

from tests.propose.conftest import catalog_model, project

__all__ = ["catalog_model", "project"]
