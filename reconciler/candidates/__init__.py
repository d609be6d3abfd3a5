"""Making and judging candidates: the retrain loop, and training or evaluating by hand."""
