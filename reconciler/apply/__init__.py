"""Apply: execute a plan's changes, resumably, one use case at a time, under a lock."""
