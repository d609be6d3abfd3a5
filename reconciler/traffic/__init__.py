"""The live route table: per use case, which model versions get which share of traffic."""
