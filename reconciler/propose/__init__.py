"""Proposals: upgrades and rollbacks written back to git as pull requests, like Renovate.

`yaml_edit` changes only the edited node of a desired-state file, `git_ops` commits it on a
branch and pushes it, `forge` speaks GitHub's REST API, `evidence` runs the evaluation gate
before anything is proposed, and `proposals` applies Renovate's rules (update, never
duplicate; closed = ignored; limit; grouping; a dashboard issue).
"""
