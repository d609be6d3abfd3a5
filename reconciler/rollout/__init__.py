"""Progressive delivery as a pure, re-entrant step machine: stages, analysis, state, advance."""
