"""`make demo`: converge the shipped desired state from nothing, on this machine, for real."""
