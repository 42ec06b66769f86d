"""Built-in text corpora for a domain-adaptation task, generated from a seed.

Fine-tuning only teaches something when the target text differs from the
pretraining text. These two domains are written by small template grammars,
so they need no download, come out the same for the same seed, and are large
and varied enough (hundreds of thousands of characters, drawn from many
combinations) that a tiny model has to learn their patterns rather than store
them.

* **domain A** is quiet narrative prose: travellers on country roads,
  villages, weather and animals. Sentence case, commas and full stops, lines
  of one to three sentences, now and then a road sign in capitals.
* **domain B** is a ship's log with the crew's words written like a play
  script: time stamps (``04:30``), compass bearings and numbers, upper-case
  headers, and one speaker per line (``BOSUN: Aye, sir.``).

Every character that B uses also occurs in A, so a tokenizer fitted on A can
encode B; but B spends its characters very differently (capitals, digits,
colons, short lines) and uses its own word list. A character model
pretrained on A therefore starts with a clearly higher loss on B, and
adapting it to B is a real, measurable gain.
"""

import random

# ----------------------------------------------------------------------------
# Domain A: travellers, villages, weather and animals.

_PLACE_STARTS = ["Ash", "Elm", "Thorn", "Brack", "Wil", "Hol", "Stan", "Bar", "Cold", "Fern",
                 "Kest", "Marl", "Ouse", "Quen", "Ryd", "Yarn", "Dun", "Glen", "Pike", "Juni"]
_PLACE_ENDS = ["ford", "ham", "wick", "by", "stead", "combe", "ley", "thorpe", "bury", "well",
               "mere", "field", "brook", "hythe", "cott", "vale", "holt", "den", "low", "gate"]
_TRAVELLERS = ["the pedlar", "an old shepherd", "a young tinker", "the miller's daughter",
               "two pilgrims", "a weary drover", "the schoolmistress", "a stranger in a grey coat",
               "the carter", "a boy with a lantern", "the widow", "a travelling fiddler",
               "the herb woman", "the blacksmith's son", "a pair of students", "the postman",
               "an old soldier", "the potter", "a girl with a basket of eggs", "the vicar's cousin"]
_NAMES = ["Marta", "Tobias", "Elin", "Osric", "Hanna", "Bram", "Ysolde", "Jory", "Petra",
          "Cuthbert", "Wenna", "Aldous", "Greta", "Fenwick", "Ida", "Rowan", "Quill", "Zelda",
          "Ulric", "Vera", "Nell", "Kit", "Lorcan", "Xanthe"]
_MOVES = ["walked", "wandered", "trudged", "rode", "hurried", "climbed", "strolled", "limped",
          "drove the cart", "set off", "went on foot", "pressed on"]
_PATHS = ["along the river road", "over the low hills", "through the beech wood",
          "across the wet meadows", "past the old mill", "up the drovers' track", "down the lane",
          "by the sunken road", "along the edge of the marsh", "over the stone bridge",
          "between the hedgerows", "through the orchards"]
_TIMES = ["At dawn", "By midmorning", "Towards evening", "Late in the afternoon", "At dusk",
          "Before sunrise", "That night", "On the third day", "Early the next morning", "At noon"]
_WEATHER = ["the wind", "a thin rain", "the fog", "the frost", "a warm breeze", "the first snow",
            "the storm", "the mist", "a heavy shower", "the evening chill", "a soft drizzle", "the heat"]
_WEATHER_VERBS = ["crept", "drifted", "swept", "settled", "blew", "lingered", "rolled", "hung",
                  "moved slowly", "came down"]
_OVER = ["over the valley", "across the fields", "along the hedgerows", "through the village",
         "among the orchards", "above the rooftops", "over the common", "down the hillside",
         "around the church tower", "across the pond"]
_ANIMALS = ["a fox", "a grey heron", "the geese", "a pair of hares", "an old dog", "the cattle",
            "a flock of starlings", "a barn owl", "the goats", "a black cat", "the sheep",
            "a red kite", "a badger", "the ponies", "a wren", "the bees", "a family of ducks",
            "a lame horse"]
_ANIMAL_ACTS = ["watched from the hedge", "slept by the fire", "crossed the road ahead",
                "called from the reeds", "grazed on the common", "followed at a distance",
                "circled high above", "waited by the gate", "hid under the cart",
                "drank from the ford", "stood very still", "ran into the barley"]
_VILLAGE_PLACES = ["the inn", "the market square", "the chapel", "the bakery", "the well",
                   "the green", "the bridge", "the forge", "the mill pond", "the school house",
                   "the churchyard", "the dairy"]
_EVENTS = ["the bells were ringing for the fair", "the bakers were closing their shutters",
           "nobody would give a straight answer", "the children ran out to meet the cart",
           "a wedding was being held on the green", "the river had flooded the lower fields",
           "the old women sat knitting in doorways", "smoke rose from every chimney",
           "the harvest was nearly in", "a dance was planned for the evening",
           "the well had run dry", "everyone was talking about the new bridge"]
_HEARSAY = ["the river had risen in the night", "the ferry would not run until spring",
            "wolves had been heard on the moor", "the toll gate was shut",
            "the best apples grew by the abbey wall", "a storm was coming from the west",
            "the inn at the crossroads served the finest pie", "the road beyond was washed away"]
_FOODS = ["a loaf of rye bread", "a wedge of cheese", "a jug of cider", "six brown eggs",
          "a bag of plums", "a meat pie", "a pot of honey", "some dried figs"]
_ARRIVALS = ["at dusk", "before the rain", "on market day", "as the lamps were lit", "late", "soaked through"]
_ROADS = ["muddy", "stony", "steep", "dry and dusty", "lined with poplars", "quiet", "flooded in places"]
_INN_SIGNS = ["THE RED FOX", "THE GREEN MAN", "THE SLEEPING HARE", "THE PLOUGH", "THE WHITE HORSE",
              "THE JOLLY DROVER", "THE KING'S HEAD", "THE QUIET WOMAN", "THE BLACK SWAN"]
_NOTICES = ["NO CARTS ON THE BRIDGE", "BEWARE OF THE GEESE", "FAIR ON SATURDAY",
            "FERRY CLOSED IN WINTER", "KEEP TO THE PATH", "MIND THE BULL", "HONEY FOR SALE",
            "TOLL: 2 PENNIES A WHEEL", "LAMBS BORN HERE: 14"]


def _village(rng):
    return rng.choice(_PLACE_STARTS) + rng.choice(_PLACE_ENDS)


def _someone(rng):
    return rng.choice(_NAMES) if rng.random() < 0.3 else rng.choice(_TRAVELLERS)


def _sentence_a(rng):
    """One sentence of domain A, chosen from a dozen weighted templates."""
    pick, r = rng.choice, rng.random()
    if r < 0.14:
        s = f"{pick(_TIMES)}, {_someone(rng)} {pick(_MOVES)} {pick(_PATHS)} to {_village(rng)}."
    elif r < 0.26:
        s = f"{_someone(rng)} reached {_village(rng)} {pick(_ARRIVALS)}, and {pick(_EVENTS)}."
    elif r < 0.40:
        s = f"{pick(_WEATHER)} {pick(_WEATHER_VERBS)} {pick(_OVER)}, and {pick(_ANIMALS)} {pick(_ANIMAL_ACTS)}."
    elif r < 0.50:
        s = f"{pick(_ANIMALS)} {pick(_ANIMAL_ACTS)} as {_someone(rng)} went by."
    elif r < 0.58:
        s = f"In {_village(rng)}, {pick(_EVENTS)}."
    elif r < 0.66:
        s = f"{_someone(rng)} stopped at {pick(_VILLAGE_PLACES)} and asked the way to {_village(rng)}."
    elif r < 0.73:
        s = f"It was {rng.randint(2, 40)} miles to {_village(rng)}, and the road was {pick(_ROADS)}."
    elif r < 0.79:
        s = f"{_someone(rng)} bought {pick(_FOODS)} at {pick(_VILLAGE_PLACES)} for {rng.randint(2, 30)} pennies."
    elif r < 0.86:
        s = f"{pick(_NAMES)} said that {pick(_HEARSAY)}."
    elif r < 0.92:
        s = _sign(rng)
    elif r < 0.98:
        s = f"Was it {rng.randint(2, 12)} miles to {_village(rng)}, or more? Nobody seemed to know."
    else:
        s = f"What a {rng.choice(['storm', 'morning', 'fair', 'climb', 'supper', 'sunset'])} it was!"
    return s[0].upper() + s[1:]


def _sign(rng):
    """A road sign or an inn sign: the only capitals-and-numbers text in domain A."""
    r = rng.random()
    if r < 0.4:
        return f"A worn milestone read: {_village(rng).upper()} {rng.randint(1, 29)} MILES."
    if r < 0.65:
        a, b = _village(rng).upper(), _village(rng).upper()
        return f"The sign at the crossroads read: {a} {rng.randint(1, 9)}, {b} {rng.randint(10, 30)}."
    if r < 0.85:
        return f"Over the door of the inn was painted: {rng.choice(_INN_SIGNS)}."
    return f"A board by the gate said: {rng.choice(_NOTICES)}."


def domain_a(seed=0, n_chars=400_000):
    """Narrative prose about travellers, villages, weather and animals.

    Each line is a short paragraph of one to three sentences ending in "\\n";
    lines are added until the text holds at least ``n_chars`` characters.
    """
    rng = random.Random(f"minilora.domain_a.{seed}")
    lines, total = [], 0
    while total < n_chars:
        line = " ".join(_sentence_a(rng) for _ in range(rng.choice((1, 2, 2, 3)))) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)


# ----------------------------------------------------------------------------
# Domain B: a ship's log, with the crew's words set out like a play script.

_SHIPS = ["MERIDIAN", "KITTIWAKE", "PROVIDENCE", "SALT QUEEN", "JUNO", "WAYFARER", "BLUE PETREL"]
_OFFICERS = ["CAPTAIN", "MATE", "QUARTERMASTER"]
_CREW = ["BOSUN", "COOK", "LOOKOUT", "HELMSMAN", "CARPENTER", "SURGEON", "MATE", "GUNNER"]
_PORTS = ["Lisbon", "Bristol", "Halifax", "Cadiz", "Madeira", "the Azores", "Cork", "Boston"]
_BEARINGS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW", "NNE", "ENE", "ESE", "SSE", "SSW", "WSW", "WNW", "NNW"]
_SEAS = ["CALM", "SLIGHT", "MODERATE", "ROUGH", "HEAVY", "CONFUSED", "LONG SWELL"]
_SKIES = ["CLEAR", "OVERCAST", "SQUALLS", "FOG", "DRIZZLE", "HAZE", "LOW CLOUD"]
_SAILS = ["mainsail", "foresail", "topsail", "jib", "mizzen", "staysail", "spanker"]
_VESSELS = ["a brig", "a fishing smack", "two luggers", "a revenue cutter", "a whaler", "a schooner", "a barque"]
_SIDES = ["off the port bow", "off the starboard bow", "to leeward", "to windward", "astern", "on the beam"]
_GEAR = ["the pump handle", "a split yard", "the windlass", "the forestay", "the rudder chain", "a stove boat",
         "the galley chimney"]
_BOTTOMS = ["sand and shell", "soft mud", "gravel", "rock", "fine grey sand"]
_PARTS = ["stern", "masthead", "bow", "quarterdeck", "forecastle"]


def _hhmm(minute):
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _observation(rng, time):
    """A time-stamped weather entry in the clipped upper-case style of a log."""
    parts = [f"WIND {rng.choice(_BEARINGS)} {rng.randint(1, 9)}", f"SEA {rng.choice(_SEAS)}"]
    if rng.random() < 0.6:
        parts.append(f"BARO {rng.randint(985, 1032)}")
    if rng.random() < 0.7:
        parts.append(f"COURSE {rng.randint(0, 359):03d}")
    if rng.random() < 0.5:
        parts.append(f"{rng.randint(2, 11)} KN")
    if rng.random() < 0.5:
        parts.append(rng.choice(_SKIES))
    return f"{time} " + ", ".join(parts) + ".\n"


def _event(rng, time):
    """A time-stamped note of something done or seen aboard."""
    events = [
        f"Pumped the bilge, {rng.randint(20, 400)} strokes",
        f"Sighted {rng.choice(_VESSELS)} {rng.choice(_SIDES)}",
        f"Took in the {rng.choice(_SAILS)}",
        f"Set the {rng.choice(_SAILS)} and {rng.choice(_SAILS)}",
        f"Sounded {rng.randint(4, 60)} fathoms, {rng.choice(_BOTTOMS)}",
        f"Lantern lit at the {rng.choice(_PARTS)}",
        f"Hove to, {rng.choice(['sea too high', 'waiting for the tide', 'fog thick', 'for the night'])}",
        f"Rations issued: {rng.randint(2, 6)} biscuits a man",
        f"Carpenter repaired {rng.choice(_GEAR)}",
        f"{rng.randint(2, 8)} hands aloft to reef the {rng.choice(_SAILS)}",
        f"Wore ship, new course {rng.randint(0, 359):03d}",
        f"Log hove, {rng.randint(2, 11)} knots",
        f"Fresh water in the casks: {rng.randint(10, 90)} gallons",
        f"Surgeon reports {rng.randint(1, 9)} men sick with {rng.choice(['fever', 'scurvy', 'the flux'])}",
        f"Spoke {rng.choice(_VESSELS)}, {rng.randint(3, 60)} days out of {rng.choice(_PORTS)}",
        f"Lost a bucket and {rng.randint(2, 40)} fathoms of line overboard",
        f"Stowed the anchor, cable {rng.randint(40, 120)} fathoms",
    ]
    return f"{time} {rng.choice(events)}.\n"


def _order(rng):
    """An order given on deck."""
    return rng.choice([
        f"Bring her {rng.randint(2, 4)} points to {rng.choice(['port', 'starboard'])}.",
        f"Double the watch {rng.choice(['tonight', 'until dawn', 'on the forecastle'])}.",
        f"Take in the {rng.choice(_SAILS)} before the squall.",
        f"Shake out a reef in the {rng.choice(_SAILS)}.",
        f"Steer {rng.choice(_BEARINGS)} by {rng.choice(['E', 'W', 'N', 'S'])} and hold her there.",
        "Rig a sea anchor and stand by.",
        f"Sound the well every {rng.choice(['hour', 'glass', 'half hour'])}.",
        f"Get {rng.randint(2, 6)} hands on the pumps.",
        f"Clear the deck and lash {rng.choice(['everything', 'the boats', 'the casks', 'the spars'])} down.",
        f"What is our speed, {rng.choice(_CREW).lower()}?",
        f"Report to me at {_hhmm(rng.randrange(0, 24 * 60, 30))}.",
        f"Hail {rng.choice(_VESSELS)} and ask for news of {rng.choice(_PORTS)}.",
    ])


def _reply(rng):
    """A reply or report from one of the crew."""
    return rng.choice([
        "Aye, sir.",
        f"Aye, sir. {rng.choice(['Steady as she goes', 'Right away', 'It will be done', 'Every hand we have'])}.",
        f"{rng.randint(2, 30)} inches in the hold, sir, and {rng.choice(['rising', 'falling', 'holding'])}.",
        f"Land ho, {rng.choice(_SIDES)}!",
        f"The {rng.choice(_SAILS)} is torn, sir. I need {rng.choice(['more canvas', 'two hands', 'a needle'])}.",
        f"Sail ho, {rng.choice(_SIDES)}! Looks like {rng.choice(_VESSELS)}.",
        f"Barometer {rng.choice(['falling', 'rising', 'steady'])}, sir. {rng.randint(985, 1030)} now.",
        f"The men are {rng.choice(['tired', 'cold', 'hungry', 'restless'])}, sir.",
        f"Biscuit is wet, sir. We have {rng.randint(3, 20)} days of salt pork.",
        f"She answers the helm, sir. {rng.randint(4, 10)} knots.",
        f"Breakers {rng.choice(_SIDES)}, sir!",
        f"The cable is fouled, sir. {rng.randint(2, 9)} fathoms out.",
        f"{rng.choice(['Weed', 'Ice', 'Driftwood', 'A dead whale', 'Gulls'])} {rng.choice(_SIDES)}, sir.",
        f"The {rng.choice(['water', 'bread', 'rum', 'lamp oil'])} will last {rng.randint(2, 30)} more days, sir.",
        f"I make it {rng.randint(12, 300)} miles to {rng.choice(_PORTS)}, sir.",
        f"{rng.choice(_GEAR).capitalize()} is {rng.choice(['sprung', 'cracked', 'loose', 'mended'])}, sir.",
        f"Sounding {rng.randint(4, 60)} fathoms, {rng.choice(_BOTTOMS)}.",
        "How much longer, sir?",
    ])


def _exchange(rng):
    """Two to four lines of dialogue, speaker names in capitals, as in a script."""
    lines = [f"{rng.choice(_OFFICERS)}: {_order(rng)}\n"]
    for _ in range(rng.randint(1, 3)):
        lines.append(f"{rng.choice(_CREW)}: {_reply(rng)}\n")
    return "".join(lines)


def domain_b(seed=0, n_chars=400_000):
    """A ship's log: day headers, weather entries, events and crew dialogue.

    Every line ends in "\\n"; entries are added until the text holds at least
    ``n_chars`` characters. Within a day the time stamps run forwards.
    """
    rng = random.Random(f"minilora.domain_b.{seed}")
    chunks, total, day, voyage_days = [], 0, 0, 0
    while total < n_chars:
        if day >= voyage_days:  # a new voyage: another ship, the day count starts again
            ship, day, voyage_days = rng.choice(_SHIPS), 1, rng.randint(8, 40)
        header = f"DAY {day}. {ship} AT SEA, LAT {rng.randint(10, 60)} N, LONG {rng.randint(5, 70)} W.\n"
        n_entries = rng.randint(6, 16)
        minutes = sorted(rng.sample(range(0, 24 * 60, 5), n_entries))
        chunk = [header]
        for minute in minutes:
            r = rng.random()
            if r < 0.3:
                chunk.append(_observation(rng, _hhmm(minute)))
            elif r < 0.65:
                chunk.append(_event(rng, _hhmm(minute)))
            else:
                chunk.append(_exchange(rng))
        chunk = "".join(chunk)
        chunks.append(chunk)
        total += len(chunk)
        day += 1
    return "".join(chunks)


def two_domain_corpus(seed=0, n_chars=400_000):
    """``(text_a, text_b)``: the pretraining domain and the adaptation domain."""
    return domain_a(seed, n_chars), domain_b(seed, n_chars)
