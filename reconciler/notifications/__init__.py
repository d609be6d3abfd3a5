"""Webhook notifications: events rendered, signed and delivered off the reconcile path."""
