"""The plan: plain data (no I/O), the pure diff that computes it, and its renderings."""
