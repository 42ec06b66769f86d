"""The demo's tasks: what the shipped base is adapted to, one per regime.

Each task is a stream of training batches and a fixed list of evaluation
batches for the base's language-model loss (nats per character):

* ``teacher`` (low-rank, controlled): a known rank-2 change ΔW* (``plant_low_rank``) is planted
  in ``q_proj`` and ``v_proj`` of every block of the base, making a
  "teacher". The corpus is real text with the teacher's next-character
  distribution at every position (the limit of drawing many samples from
  the teacher there), and the loss is KL(teacher ‖ model). LoRA has an exact
  target: r ≥ 2 can represent ΔW* and bring the loss to 0, and its subspace
  can be compared with ΔW*'s.
* ``verse`` (low-rank, real): the base knows the five genres' verse and
  prose; the task keeps only verse speeches, so adapting re-weights what the
  base already does instead of adding anything new.
* ``verse or prose`` (low-rank, real, a classification): is a passage from the
  base's own genres verse or prose? The base must already tell them apart to
  predict its line breaks and capitals; a linear head reads the mean of its
  last hidden states (``PassageClassifier``), and the metric is the
  cross-entropy of that head on the validation plays, with its accuracy.
* ``histories`` (new content): the genre the base never saw, with its kings,
  dukes, battles and place names.
"""

import dataclasses
import weakref

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.engine import no_grad
from minilora.data import get_batch, load_plays
from minilora.distill import soft_target_kl
from minilora.experiments.pretrain import PRETRAIN_GENRES
from minilora.lora.analysis import subspace_similarity
from minilora.matrices import singular_values, svd
from minilora.models import build_model
from minilora.nn.layers import Linear
from minilora.nn.module import Module, evaluating


@dataclasses.dataclass
class Task:
    """One adaptation task for the base."""

    name: str          # "teacher", "verse", "histories"
    regime: str        # "low-rank" or "new-content"
    description: str   # one line for the demo's output
    train_batch: object  # () -> (x, y), int64 (B, T) arrays
    eval_batches: list   # fixed [(x, y), ...] for the validation loss
    metric: str = "validation loss (nats/char)"  # what that loss is, as demo.json names it
    planted: dict = None  # teacher only: module name -> ΔW* (out, in)
    wrap: object = None   # teacher, classification: model -> the module the Trainer runs (its loss is the task's metric)
    score: object = None  # classification only: model -> accuracy on the balanced validation passages


def _ids(tokenizer, text):
    return backend.asarray(tokenizer.encode(text), dtype=backend.int64)


def _eval_batches(ids, block_size, batch_size, eval_iters, seed):
    generator = backend.new_generator(seed + 1)  # its own stream: evaluating never shifts training
    return [get_batch(ids, block_size, batch_size, generator=generator) for _ in range(eval_iters)]


def _text_task(name, regime, description, tokenizer, train_text, val_text, config):
    train_ids, val_ids = _ids(tokenizer, train_text), _ids(tokenizer, val_text)
    T, B = config.block_size, config.batch_size
    return Task(name, regime, description, lambda: get_batch(train_ids, T, B),
                _eval_batches(val_ids, T, B, config.eval_iters, config.seed))


# ----------------------------------------------------------------------------
# verse: the same genres, verse speeches only.


def is_verse(lines):
    """A speech is verse when it has at least two lines and each opens with a capital.

    Printed verse starts every line with a capital letter; printed prose is
    wrapped at the page edge, so some of its lines open in mid-sentence, in
    lower case. One-line speeches cannot be told apart and count as neither.
    """
    def opens_with_capital(line):
        letters = [c for c in line if c.isalpha()]
        return bool(letters) and letters[0].isupper()
    return len(lines) >= 2 and all(opens_with_capital(line) for line in lines)


def verse_text(split, genres=PRETRAIN_GENRES):
    """The verse speeches of ``genres`` in one split, in the ``SPEAKER:`` layout."""
    return "".join(f"{speaker}:\n" + "\n".join(lines) + "\n\n"
                   for play in load_plays(genres, split)
                   for speaker, lines in play.speeches() if is_verse(lines))


def verse_task(base, tokenizer, config):
    return _text_task("verse", "low-rank", "verse speeches only, from the genres the base knows",
                      tokenizer, verse_text("train"), verse_text("val"), config)


# ----------------------------------------------------------------------------
# verse or prose: a classification over passages of the genres the base knows.


class PassageClassifier(Module):
    """The base as an encoder: the mean of its last hidden states over a passage, then a
    linear head, h̄ = (1/T) Σ_t h_t, logits = W_head h̄ + b (the mean pooling of
    docs/math.md §3, every position real). Its loss is the cross-entropy of the labels.
    """

    def __init__(self, model, n_classes=2):
        super().__init__()
        self.model = model
        self.head = Linear(model.config.n_embd, n_classes)

    def forward(self, idx, targets=None):
        logits = self.head(self.model.hidden(idx).mean(axis=1))  # (B, T, C) -> (B, C) -> (B, n_classes)
        return logits, None if targets is None else ops.cross_entropy(logits, targets)


def labelled_passages(tokenizer, split, length, genres=PRETRAIN_GENRES):
    """``(ids (n, length), labels (n,))``: the first ``length`` characters of every speech of at
    least two lines that is long enough, in the ``SPEAKER:`` layout; label 1 for verse, 0 for prose
    (a speech of two or more lines that is not verse: some line opens in lower case)."""
    ids, labels = [], []
    for play in load_plays(genres, split):
        for speaker, lines in play.speeches():
            text = f"{speaker}:\n" + "\n".join(lines)
            if len(lines) >= 2 and len(text) >= length:
                ids.append(tokenizer.encode(text[:length]))
                labels.append(int(is_verse(lines)))
    return backend.asarray(ids, dtype=backend.int64), backend.asarray(labels, dtype=backend.int64)


def verse_prose_task(base, tokenizer, config):
    """Train on balanced batches of the training plays' passages; validate on the validation plays'."""
    xp, T, B = backend.xp, config.block_size, config.batch_size
    train_x, train_y = labelled_passages(tokenizer, "train", T)
    val_x, val_y = labelled_passages(tokenizer, "val", T)
    by_class = [xp.nonzero(train_y == c)[0] for c in (0, 1)]

    def train_batch():  # half prose, half verse, drawn from minilora's seeded generator
        rows = xp.concatenate([group[backend.randint(0, len(group), (B - B // 2 if c else B // 2,))] for c, group in enumerate(by_class)])
        return train_x[rows], train_y[rows]

    # Validation is balanced too: every prose passage of the validation plays and as many verse
    # ones, drawn from their own stream; the first eval_iters batches of them give the loss.
    generator = backend.new_generator(config.seed + 1)
    groups = [backend.to_numpy(xp.nonzero(val_y == c)[0]) for c in (0, 1)]
    n = min(len(g) for g in groups)
    picks = [xp.asarray(generator.permutation(g)[:n]) for g in groups]
    balanced = xp.stack(picks, axis=1).reshape(-1)  # prose, verse, prose, verse, ...
    val_x, val_y = val_x[balanced], val_y[balanced]
    eval_batches = [(val_x[i * B:(i + 1) * B], val_y[i * B:(i + 1) * B]) for i in range(config.eval_iters)]
    classifiers = weakref.WeakKeyDictionary()  # one head per adapted model, made when the Trainer first needs it

    def wrap(model):
        if model not in classifiers:
            classifiers[model] = PassageClassifier(model)
        return classifiers[model]

    def score(model):
        classifier, correct = wrap(model), 0
        with evaluating(classifier):
            for start in range(0, len(val_y), 64):
                logits, _ = classifier(val_x[start:start + 64])
                correct += int((logits.data.argmax(axis=-1) == val_y[start:start + 64]).sum())
        return correct / len(val_y)

    return Task("verse or prose", "low-rank", f"is a passage of {T} characters from the base's own genres verse or "
                "prose? (a linear head on the mean of the base's last hidden states; loss: its cross-entropy)",
                train_batch, eval_batches, metric="the head's validation cross-entropy (nats/passage)", wrap=wrap, score=score)


def histories_task(base, tokenizer, config):
    def text(split):
        return "".join(play.text() for play in load_plays("histories", split))
    return _text_task("histories", "new-content", "the history plays, a genre the base never saw",
                      tokenizer, text("train"), text("val"), config)


# ----------------------------------------------------------------------------
# teacher: a planted rank-2 change, and a corpus drawn from it.


def plant_low_rank(model, rank=2, strength=1.0, targets=("q_proj", "v_proj")):
    """Add a known rank-``rank`` ΔW* to every targeted Linear of ``model`` (in place).

    With W = U Σ Vᵀ the layer's SVD and U_r, V_r its top ``rank`` singular
    vectors, ΔW* = strength · σ₁ · U_r P V_rᵀ, where P reverses the order
    (for rank 2: u₁v₂ᵀ + u₂v₁ᵀ). The change re-routes the directions the layer
    already reads most strongly to each other's outputs: it re-weights what
    the model knows instead of adding anything. (Random U and V barely change
    a trained model's outputs: a random input direction carries almost no
    signal.) Every singular value of ΔW* is strength · σ₁. Returns {name: ΔW*}.
    """
    planted = {}
    for name, module in model.named_modules():
        if name.split(".")[-1] not in targets:
            continue
        W = module.weight.data
        U, S, Vt = svd(W)  # signs fixed (Eq. 3 in docs/lowrank.md): flipping one pair alone would flip ΔW*
        delta = strength * S[0] * U[:, :rank] @ Vt[:rank][::-1]  # (out, rank) @ (rank, in), rows of Vᵀ reversed
        module.weight.data = (W + delta).astype(W.dtype)
        planted[name] = delta.astype(W.dtype)
    return planted


class Imitation(Module):
    """The model's loss is KL(teacher ‖ model) per character, in training and in evaluation.

    The teacher runs in eval mode without a graph; the model is the only
    submodule, so only its parameters train (``minilora.distill`` at T = 1).
    """

    def __init__(self, model, teacher):
        super().__init__()
        self.model = model
        object.__setattr__(self, "teacher", teacher)  # not a submodule: it neither trains nor counts

    def forward(self, idx, targets=None):
        with no_grad():
            teacher_logits, _ = self.teacher(idx)
        logits, _ = self.model(idx)
        return logits, soft_target_kl(logits, teacher_logits, temperature=1.0)


def teacher_task(base, tokenizer, config, rank=2, strength=None):
    """The base with a planted rank-2 ΔW* is the teacher; the base learns to imitate it."""
    teacher = build_model("gpt", dataclasses.asdict(base.config))
    teacher.load_state_dict(base.state_dict())
    teacher.eval()
    planted = plant_low_rank(teacher, rank, config.teacher_strength if strength is None else strength)
    text = {split: "".join(p.text() for p in load_plays(PRETRAIN_GENRES, split)) for split in ("train", "val")}
    task = _text_task("teacher", "low-rank", f"the base's own genres, imitating the base plus a planted rank-{rank} "
                      "change in q_proj and v_proj (loss: KL to that teacher)", tokenizer, text["train"], text["val"], config)
    task.planted = planted
    task.metric = "KL to the teacher (nats/char)"
    task.wrap = lambda model: Imitation(model, teacher)
    return task


def planted_similarity(model, planted):
    """Mean over the planted layers of φ between the adapter's update and ΔW* (Eq. 11 in docs/lora.md).

    φ = ‖V_kᵀ V*‖²_F / k, with V* the k right singular vectors of ΔW* (its input
    subspace, k = 2) and V_k the top k of the adapter's learned update
    ΔW = s·BA: 1 when the update reads exactly the planted directions, about
    k/d for an unrelated subspace. The update, not A alone: after a few
    steps A is still mostly its random start, and B carries what was learned.
    """
    values = []
    for name, delta in planted.items():
        layer = model.get_submodule(name)
        if hasattr(layer, "delta_weights"):
            k = int((singular_values(delta) > 1e-6 * singular_values(delta)[0]).sum())  # rank of ΔW*: 2
            values.append(float(subspace_similarity(layer.delta_weights()["weight"], delta)[k - 1, k - 1]))
    return sum(values) / len(values) if values else float("nan")


TASKS = {"teacher": teacher_task, "verse": verse_task, "verse or prose": verse_prose_task, "histories": histories_task}
