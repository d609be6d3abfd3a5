"""`reconciler serve`: the controller and the control plane's HTTP API in one process."""
