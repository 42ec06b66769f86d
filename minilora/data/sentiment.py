"""A labelled sentiment corpus whose labels depend on word order.

Short review sentences about films, books and cafés, each labelled
0 (negative) or 1 (positive). The sentences are built so that counting words
is not enough: the same words appear in positive and negative sentences, and
only their order and scope decide the label. A bag-of-words classifier
therefore stays well below perfect, while a model that reads the sentence in
order can, in principle, get every label right.

The labelling rule
------------------
Every sentence has one or two *clauses*. A clause is ``subject verb
[intensifier] adjective``, where the adjective comes from ``POSITIVE_WORDS``
or ``NEGATIVE_WORDS``.

1. **Polarity of a clause.** It is the polarity of its adjective (positive
   1, negative 0), flipped if the clause is negated, i.e. contains ``not``,
   ``never`` or a word ending in ``n't``. "not good" is negative; "not bad"
   is positive. Intensifiers (``very``, ``really``, ``extremely`` ...) and
   the opening words (``Overall,``, ``I thought`` ...) never change it. (A
   negated clause puts its emphasis before the negation, "really wasn't
   bad", never after it, since "not very bad" is too mild to call positive.)
2. **Which clause decides.**

   * one clause: that clause.
   * ``A, but B``: the clause after ``but`` (B). A always has the opposite
     polarity.
   * ``Although A, B`` (or ``Though``, ``Even though``): the main clause B,
     after the comma. A always has the opposite polarity.
   * ``A, and B``: both clauses have the same polarity, which is the label.

Because "but" and "although" sentences carry one clause of each polarity, and
negation flips an adjective, the words of a sentence say almost nothing about
its label once they are put in a bag.

Labels are exactly balanced (for even ``n``), the corpus is a deterministic
function of the seed, and exact duplicate sentences are avoided.
"""

import random

POSITIVE_WORDS = ["good", "great", "wonderful", "charming", "brilliant", "enjoyable", "clever",
                  "moving", "delightful", "excellent", "gripping", "lovely", "fresh", "superb",
                  "solid", "memorable", "pleasant", "beautiful", "impressive", "fun"]
NEGATIVE_WORDS = ["bad", "awful", "dull", "boring", "terrible", "weak", "clumsy", "tedious",
                  "poor", "dreadful", "bland", "messy", "forgettable", "annoying", "disappointing",
                  "flat", "lazy", "painful", "stale", "shallow"]
NEGATIONS = ["not", "never", "n't"]  # n't as a suffix: wasn't, isn't, didn't
INTENSIFIERS = ["very", "really", "extremely", "quite", "truly", "so", "incredibly", "rather"]

_SUBJECTS = ["the film", "the plot", "the acting", "the soundtrack", "the ending", "the dialogue",
             "the pacing", "the camera work", "the lead actor", "the script", "the book",
             "the first chapter", "the story", "the food", "the service", "the coffee", "the menu",
             "the cast", "the setting", "the final scene", "the humour", "the writing",
             "the translation", "the waiter", "the dessert", "the opening act", "the sequel",
             "the villain", "the music", "the cover art"]
_VERBS = ["was", "is", "felt", "seemed", "looked", "sounded", "turned out to be", "proved",
          "remains", "came across as"]
_NEGATED_VERBS = ["was not", "wasn't", "is not", "isn't", "never felt", "did not seem",
                  "didn't look", "was never", "is never", "didn't feel", "never seemed",
                  "did not turn out to be"]
_NEGATED_ADVERBS = ["really", "honestly", "simply", "just"]  # before the negation: "really wasn't"
_OPENINGS = ["Overall, ", "Honestly, ", "In the end, ", "I thought ", "I felt that ",
             "To be fair, ", "My friend said ", "Frankly, "]
_CONCESSIVES = ["Although", "Though", "Even though"]

# How often each sentence shape is drawn, and how often a clause is negated.
_SHAPES = [("single", 0.45), ("but", 0.25), ("although", 0.15), ("and", 0.15)]
_P_NEGATED = 0.3
_P_INTENSIFIED = 0.35


def _clause(rng, polarity, subject):
    """``subject verb [intensifier] adjective`` whose polarity (rule 1) is ``polarity``."""
    negated = rng.random() < _P_NEGATED
    adjective_positive = polarity != negated  # negation flips: polarity = adjective XOR negated
    adjective = rng.choice(POSITIVE_WORDS if adjective_positive else NEGATIVE_WORDS)
    if negated:
        # "not very bad" is too mild to call positive, so a negated clause takes
        # its emphasis before the negation instead: "really wasn't bad".
        verb = rng.choice(_NEGATED_VERBS)
        if rng.random() < _P_INTENSIFIED:
            verb = f"{rng.choice(_NEGATED_ADVERBS)} {verb}"
    else:
        verb = rng.choice(_VERBS)
        if rng.random() < _P_INTENSIFIED:
            adjective = f"{rng.choice(INTENSIFIERS)} {adjective}"
    return f"{subject} {verb} {adjective}"


def _sentence(rng, label):
    """A sentence whose label, by the rule in the module docstring, is ``label``."""
    shapes, weights = zip(*_SHAPES)
    shape = rng.choices(shapes, weights)[0]
    first, second = rng.sample(_SUBJECTS, 2)
    if rng.random() < 0.3:
        second = "it"  # "the film was long, but it was not dull"
    if shape == "single":
        opening = rng.choice(_OPENINGS) if rng.random() < 0.3 else ""
        text = opening + _clause(rng, label, first)
    elif shape == "but":
        text = f"{_clause(rng, 1 - label, first)}, but {_clause(rng, label, second)}"
    elif shape == "although":
        text = f"{rng.choice(_CONCESSIVES)} {_clause(rng, 1 - label, first)}, {_clause(rng, label, second)}"
    else:
        text = f"{_clause(rng, label, first)}, and {_clause(rng, label, second)}"
    end = "!" if rng.random() < 0.1 else "."
    return text[0].upper() + text[1:] + end


def sentiment_corpus(n=20000, seed=0):
    """``n`` pairs ``(sentence, label)``, label 0 negative / 1 positive, balanced.

    Deterministic in ``seed``. The labelling rule is in this module's
    docstring; exact duplicates are redrawn (a few may remain only if ``n``
    approaches the number of distinct sentences the grammar can make).
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"sentiment_corpus needs n >= 2 examples, got {n!r}")
    rng = random.Random(f"minilora.sentiment.{seed}")
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    seen, examples = set(), []
    for label in labels:
        for _ in range(100):
            sentence = _sentence(rng, label)
            if sentence not in seen:
                break
        seen.add(sentence)
        examples.append((sentence, label))
    return examples
