"""Whole experiments that stand on everything below: the LoRA demo and the benchmark."""
