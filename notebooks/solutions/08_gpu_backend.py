"""Solutions to the exercises of notebook 08 (the test suite runs this file)."""

from exercises import check_speedup, check_tokens_per_second, check_training_memory

from minilora.models import GPT, GPTConfig

# Exercise 1: B·T tokens per step, divided by the step's time in seconds.
assert check_tokens_per_second(8 * 64 / 0.020)

# Exercise 2: weight, gradient and Adam's m and v: four float32 arrays per parameter.
n = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=64)).num_parameters()
assert check_training_memory(4 * 4 * n)

# Exercise 3: device tokens/s over CPU tokens/s.
assert check_speedup(51_200 / 12_800)
