"""Training: logs to examples, datasets with digests, LoRA / full fine-tuning, registration."""
