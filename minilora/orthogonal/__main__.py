"""``python -m minilora.orthogonal [PATH]``: draw docs/orthogonal.md's drift picture (§5) to PATH."""

import sys

from minilora.orthogonal.drift import plot_drift

print(plot_drift(sys.argv[1] if len(sys.argv) > 1 else "orthogonal_drift.png"))
