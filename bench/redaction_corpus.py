"""A labelled corpus of contact-center workflow output for the redaction benchmark.

Records are agent notes, call transcripts, JSON strings and integration log lines, generated from a
fixed seed. Each record lists its planted items with their kind and character span: secrets and
personal data that a redactor should find, and look-alike values that it should leave alone.

The secret phrases, the card number forms, SSNs, e-mail addresses and most look-alike values come
from the test suite's corpus (`tests/corpus.py`), the same one that `tests/test_redaction_corpus.py`
checks the redactor against. Only its plain-text samples are used. The samples that hide a value with
zero-width characters, other scripts' digits or `\\uXXXX` escapes are left out, because no other
tool in the benchmark normalizes text. This module adds what that corpus lacks for a comparison:
IBANs with valid check digits, phone numbers with area codes in service, labelled and bare forms
that agents write, and more look-alikes such as invalid-Luhn card numbers, tracking numbers and
meeting IDs.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.corpus import KNOWN_SECRET, PII_KINDS, SECRET_KINDS, build_corpus, luhn_complete

__all__ = ["KNOWN_SECRET", "NEGATIVE", "PII_KINDS", "SECRET_KINDS", "Fragment", "Planted", "Record", "build_records"]

SEED = 20261219
# The kind of a look-alike value: nothing in it may be redacted.
NEGATIVE = "negative"


@dataclass(frozen=True)
class Planted:
    """An item planted in a record: its kind (a secret kind, a PII kind or `negative`) and span."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Fragment:
    """A phrase with planted items, spans relative to the phrase."""

    text: str
    items: tuple[Planted, ...]

    def shifted(self, offset: int) -> tuple[Planted, ...]:
        return tuple(Planted(item.kind, item.start + offset, item.end + offset) for item in self.items)


@dataclass(frozen=True)
class Record:
    """One text a workflow could return, in one of four styles, with the items planted in it."""

    style: str
    text: str
    items: tuple[Planted, ...]


def build_records(seed: int = SEED) -> list[Record]:
    """Build the corpus: every fragment placed once, 1 to 4 fragments a record, in a fixed random order."""
    # A seeded generator makes the corpus repeatable; nothing here needs unpredictable numbers.
    rng = random.Random(seed)
    secrets = _test_secret_fragments() + _secret_fragments(rng)
    personal = _test_personal_fragments() + _personal_fragments(rng)
    negatives = _test_negative_fragments() + _negative_fragments(rng)
    rng.shuffle(secrets)
    rng.shuffle(personal)
    rng.shuffle(negatives)

    records: list[Record] = []
    # Secrets appear in what integrations return (logs and JSON), personal data in what agents write.
    records += _fill(rng, secrets, negatives, [_log_record, _json_record])
    records += _fill(rng, personal, negatives, [_note_record, _transcript_record, _json_record])
    while negatives:
        records.append(_note_record(rng, [negatives.pop() for _ in range(min(3, len(negatives)))]))
    rng.shuffle(records)
    return records


RecordBuilder = Callable[[random.Random, list[Fragment]], Record]


def _fill(
    rng: random.Random, positives: list[Fragment], negatives: list[Fragment], builders: Sequence[RecordBuilder]
) -> list[Record]:
    records: list[Record] = []
    while positives:
        fragments = [positives.pop() for _ in range(min(rng.randint(1, 3), len(positives)))]
        if negatives and rng.random() < 0.7:
            fragments.insert(rng.randrange(len(fragments) + 1), negatives.pop())
        records.append(rng.choice(builders)(rng, fragments))
    return records


# Fragments taken from the test suite's corpus.


def _test_secret_fragments() -> list[Fragment]:
    fragments: list[Fragment] = []
    for sample in build_corpus():
        if sample.kind not in SECRET_KINDS or not _is_plain(sample.text):
            continue
        start = sample.text.find(sample.secret)
        if start < 0:
            continue
        start, end = _item_span(sample.kind, sample.text, start, start + len(sample.secret))
        fragments.append(Fragment(sample.text, (Planted(sample.kind, start, end),)))
    return fragments


def _test_personal_fragments() -> list[Fragment]:
    """Card numbers, SSNs and e-mail addresses from the test corpus.

    Its IBANs have random check digits and its US phone numbers random area codes, so they are not valid
    values; `_personal_fragments` makes valid ones instead.
    """
    fragments: list[Fragment] = []
    for sample in build_corpus():
        if sample.kind not in ("card", "ssn", "email") or not _is_plain(sample.text):
            continue
        start = sample.text.find(sample.secret)
        if start < 0 and sample.kind != "card":
            continue
        if sample.kind == "card":
            # The sample stores the digits alone; the planted item runs from the first digit to the last.
            digits = [index for index, char in enumerate(sample.text) if char.isdigit()]
            start, end = digits[0], digits[-1] + 1
        elif sample.kind == "email":
            # The sample stores only the local part; the planted item is the whole address.
            end = sample.text.find(" ", start)
            end = len(sample.text) if end < 0 else end
        else:
            end = start + len(sample.secret)
        fragments.append(Fragment(sample.text, (Planted(sample.kind, start, end),)))
    return fragments


def _test_negative_fragments() -> list[Fragment]:
    return [
        Fragment(sample.text, (Planted(NEGATIVE, 0, len(sample.text)),))
        for sample in build_corpus()
        if sample.kind is None and _is_plain(sample.text)
    ]


def _is_plain(text: str) -> bool:
    return text.isascii() and "\\u" not in text


def _item_span(kind: str, text: str, start: int, end: int) -> tuple[int, int]:
    """Widen the test corpus's must-not-survive substring to the whole JWT or PEM block it belongs to."""
    if kind == "jwt":
        token = set(string.ascii_letters + string.digits + "_-.")
        while start > 0 and text[start - 1] in token:
            start -= 1
        while end < len(text) and text[end] in token:
            end += 1
    elif kind == "pem":
        start = text.rfind("-----BEGIN", 0, start)
        footer = text.find("-----END", end)
        end = len(text) if footer < 0 else text.index("-----", text.index("KEY", footer)) + 5
    return start, end


# Fragments this benchmark adds.


def _phrase(template: str, kind: str, value: str) -> Fragment:
    """Place `value` at `{}` in `template` and plant it as one item of `kind`."""
    start = template.index("{}")
    return Fragment(template.replace("{}", value, 1), (Planted(kind, start, start + len(value)),))


def _secret_fragments(rng: random.Random) -> list[Fragment]:
    """Credentials in the configuration and log forms that integrations print."""
    fragments: list[Fragment] = []
    for _ in range(8):
        password = _alnum(rng, 16, string.ascii_letters + string.digits + "!#%*")
        token = _alnum(rng, 40)
        fragments += [
            _phrase("DB_PASSWORD={}", "named_secret", password),
            _phrase("smtp_password: {}", "named_secret", password),
            _phrase('"apiKey": "{}"', "named_secret", token),
            _phrase("client_secret={}", "named_secret", token),
            _phrase("Authorization: Basic {}", "bearer", _alnum(rng, 28) + "=="),
            _phrase("redis://:{}@cache.internal:6379/0", "url_credential", password.replace("#", "x")),
            _phrase("slack user token {}", "slack", f"xoxp-{_digits(rng, 11)}-{_digits(rng, 12)}-{_alnum(rng, 32)}"),
            _phrase("temporary key {} issued", "aws", "ASIA" + _alnum(rng, 16, string.ascii_uppercase + "234567")),
        ]
    return fragments


# Area codes in service, so that phone number validators accept them.
_AREA_CODES = ("206", "212", "213", "303", "305", "312", "404", "415", "512", "617", "646", "702", "713")


def _personal_fragments(rng: random.Random) -> list[Fragment]:
    """Phone numbers, IBANs, SSNs, cards and e-mail addresses as agents and customers write them."""
    fragments: list[Fragment] = []
    for _ in range(10):
        area = rng.choice(_AREA_CODES)
        exchange = f"{rng.randrange(2, 10)}{rng.randrange(0, 10)}{rng.randrange(2, 10)}"
        line = _digits(rng, 4)
        ssn = f"{rng.randrange(101, 665):03d}-{rng.randrange(10, 99):02d}-{rng.randrange(1000, 9999):04d}"
        card = luhn_complete(*rng.choice([("4", 16), ("51", 16), ("37", 15), ("6011", 16)]), rng)
        user = rng.choice(["maria", "j", "sam", "li", "omar"]) + rng.choice([".", "_", ""]) + _alnum(rng, 6, "abcdefgh")
        iban = _valid_iban(rng)
        fragments += [
            _phrase("callback number {}", "phone", f"({area}) {exchange}-{line}"),
            _phrase("reach me at {} after 5", "phone", f"{area}-{exchange}-{line}"),
            _phrase("mobile {}", "phone", f"+1 {area} {exchange} {line}"),
            _phrase("alt number {}", "phone", f"{area}.{exchange}.{line}"),
            _phrase("UK office {}", "phone", f"+44 20 7946 0{_digits(rng, 3)}"),
            _phrase("Berlin desk {}", "phone", f"+49 30 {_digits(rng, 8)}"),
            _phrase("callback {}", "phone", f"{area}{exchange}{line}"),
            _phrase("SSN verified: {}", "ssn", ssn),
            _phrase("my social is {}", "ssn", ssn.replace("-", " ")),
            _phrase("refund to IBAN {}", "iban", _grouped(iban)),
            _phrase("IBAN {} confirmed", "iban", iban),
            _phrase("card number is {}", "card", _grouped(card)),
            _phrase("e-mail {} for the receipt", "email", f"{user}@{rng.choice(_DOMAINS)}"),
        ]
    return fragments


_DOMAINS = ("example.com", "mail.example.org", "support.example.net", "example.co.uk")
# Country, length and the BBAN's character classes (n: digit, a: capital letter, c: either).
_IBAN_FORMATS = (("DE", "18n"), ("GB", "4a14n"), ("FR", "10n11c2n"), ("NL", "4a10n"), ("ES", "20n"))


def _valid_iban(rng: random.Random) -> str:
    """Return a random IBAN with valid ISO 13616 check digits (mod 97 equals 1)."""
    country, layout = rng.choice(_IBAN_FORMATS)
    bban = ""
    count = ""
    for char in layout:
        if char.isdigit():
            count += char
            continue
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}[char]
        bban += _alnum(rng, int(count), alphabet)
        count = ""
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _negative_fragments(rng: random.Random) -> list[Fragment]:
    """Look-alike values: numbers and identifiers shaped like cards, phones, SSNs or tokens, that are neither."""
    fragments: list[Fragment] = []
    for _ in range(8):
        card = luhn_complete(rng.choice(["4", "51", "6011"]), 16, rng)
        bad_card = card[:-1] + str((int(card[-1]) + rng.randrange(1, 10)) % 10)
        values = [
            ("card declined for {}", _grouped(bad_card)),
            ("UPS tracking {}", "1Z" + _alnum(rng, 6, string.ascii_uppercase + string.digits) + _digits(rng, 10)),
            ("USPS tracking {}", _grouped("94001" + _digits(rng, 17))),
            ("FedEx {}", _digits(rng, 12)),
            ("meeting ID {}", f"{_digits(rng, 3)} {_digits(rng, 4)} {_digits(rng, 4)}"),
            ("ship to ZIP {}", f"{rng.randrange(1000, 99999):05d}-{_digits(rng, 4)}"),
            ("build {}", "".join(rng.choice("0123456789abcdef") for _ in range(64))),
            ("commit {}", "".join(rng.choice("0123456789abcdef") for _ in range(40))),
            ("case {}", str(uuid.UUID(int=rng.getrandbits(128), version=4))),
            ("invoice {}", f"INV-{rng.randrange(2019, 2026)}-{_digits(rng, 6)}"),
            ("order {}", f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 7)}"),
            ("firmware {}", f"v{rng.randrange(1, 9)}.{rng.randrange(0, 30)}.{rng.randrange(0, 200)}"),
            ("queue time {}", f"{rng.randrange(0, 59):02d}:{rng.randrange(0, 59):02d}.{_digits(rng, 3)}"),
            ("account opened {}", f"{rng.randrange(1990, 2025)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"),
        ]
        fragments += [_phrase(template, NEGATIVE, value) for template, value in values]
    return fragments


def _alnum(rng: random.Random, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _digits(rng: random.Random, length: int) -> str:
    return _alnum(rng, length, string.digits)


def _grouped(value: str) -> str:
    """Write `value` in groups of four characters, as cards, IBANs and tracking numbers are printed."""
    return " ".join(value[index : index + 4] for index in range(0, len(value), 4))


# Record styles. Each joins its fragments with filler text that contains nothing to redact.

_AGENTS = ("Dana", "Priya", "Marcus", "Elena", "Tom")
_NOTE_OPENINGS = (
    "Customer called about a billing question.",
    "Escalated from tier 1 after a failed payment.",
    "Outbound follow-up on the open complaint.",
    "Chat transferred from the virtual agent.",
)
_NOTE_CLOSINGS = (
    "Resolved on first contact.",
    "Follow-up scheduled.",
    "Waiting for the customer.",
    "No further action.",
)
_CUSTOMER_LEADS = ("Sure, here it is:", "Okay, so", "Yes, it's", "I think the")
_AGENT_LINES = (
    "Thanks for calling, how can I help today?",
    "Let me pull up your account.",
    "Can you confirm a few details for me?",
    "I have updated the case.",
)
_LOG_STEPS = ("notify", "crm_lookup", "payment_refund", "ticket_update", "sms_send")


def _note_record(rng: random.Random, fragments: list[Fragment]) -> Record:
    parts: list[str | Fragment] = [rng.choice(_NOTE_OPENINGS) + " "]
    for fragment in fragments:
        parts += [fragment, ". "]
    parts.append(f"{rng.choice(_NOTE_CLOSINGS)} Agent: {rng.choice(_AGENTS)}.")
    return _join("note", parts)


def _transcript_record(rng: random.Random, fragments: list[Fragment]) -> Record:
    parts: list[str | Fragment] = [f"Agent: {rng.choice(_AGENT_LINES)}\n"]
    for fragment in fragments:
        parts += [f"Customer: {rng.choice(_CUSTOMER_LEADS)} ", fragment, f".\nAgent: {rng.choice(_AGENT_LINES)}\n"]
    return _join("transcript", parts)


def _log_record(rng: random.Random, fragments: list[Fragment]) -> Record:
    parts: list[str | Fragment] = []
    for fragment in fragments:
        stamp = f"2025-06-{rng.randrange(1, 29):02d}T{rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d}:00Z"
        parts += [f"{stamp} INFO step={rng.choice(_LOG_STEPS)} ", fragment, "\n"]
    return _join("log", parts)


def _json_record(rng: random.Random, fragments: list[Fragment]) -> Record:
    """A JSON object as a workflow returns it in one string variable, one fragment a field."""
    parts: list[str | Fragment] = ['{"status": "completed", ']
    for index, fragment in enumerate(fragments):
        parts += [f'"detail{index}": "', _json_escaped(fragment), '", ']
    parts.append(f'"agent": "{rng.choice(_AGENTS)}"}}')
    return _join("json", parts)


def _json_escaped(fragment: Fragment) -> Fragment:
    """Escape a fragment as a JSON string body, moving its spans with the escapes."""
    encoded: list[str] = []
    offsets = [0]
    for char in fragment.text:
        encoded.append(json.dumps(char)[1:-1])
        offsets.append(offsets[-1] + len(encoded[-1]))
    items = tuple(Planted(item.kind, offsets[item.start], offsets[item.end]) for item in fragment.items)
    return Fragment("".join(encoded), items)


def _join(style: str, parts: Sequence[str | Fragment]) -> Record:
    text: list[str] = []
    items: list[Planted] = []
    offset = 0
    for part in parts:
        if isinstance(part, Fragment):
            items += part.shifted(offset)
            part = part.text
        text.append(part)
        offset += len(part)
    return Record(style, "".join(text), tuple(items))
