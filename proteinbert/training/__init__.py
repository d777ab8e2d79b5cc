"""Training: pretraining loop, staged fine-tuning, evaluation."""
