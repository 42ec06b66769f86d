"""Whole experiments that stand on everything below: the LoRA demo (and, later, the benchmarks)."""
