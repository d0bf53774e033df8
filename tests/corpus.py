"""A labelled corpus for redaction: secrets, personal data and look-alike values that must stay.

Every sample is generated from a fixed random stream, so the corpus is the same on every run. A
positive sample carries the exact substring that must not survive redaction; a negative sample
must come back without any redaction label.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from mcp_avaya_workflows.redaction import luhn_valid

# The known secret registered with the redactor, as the client secret is at startup.
KNOWN_SECRET = "corpus-Known-Secret-5d8e1f0a93"

SECRET_KINDS = (
    "jwt",
    "bearer",
    "aws",
    "github",
    "slack",
    "stripe",
    "twilio",
    "google",
    "pem",
    "url_credential",
    "named_secret",
    "known_secret",
)
PII_KINDS = ("card", "ssn", "iban", "email", "phone")

# The text each kind's mask leaves behind, which is how a prediction is read off the output.
LABELS = {
    "jwt": "[redacted]",
    "bearer": "[redacted]",
    "aws": "[redacted aws key]",
    "github": "[redacted github token]",
    "slack": "[redacted slack",
    "stripe": "[redacted stripe key]",
    "twilio": "[redacted twilio key]",
    "google": "[redacted google",
    "pem": "[redacted private key]",
    "url_credential": "[redacted]",
    "named_secret": "[redacted]",
    "known_secret": "[redacted]",
    "card": "[card, ends",
    "ssn": "[SSN]",
    "iban": "[IBAN, ends",
    "email": "***@",
    "phone": "[phone, ends",
}
ZERO_WIDTH = "\u200b"
FULLWIDTH_DIGITS = str.maketrans(string.digits, "".join(chr(0xFF10 + digit) for digit in range(10)))
ARABIC_INDIC_DIGITS = str.maketrans(string.digits, "".join(chr(0x0660 + digit) for digit in range(10)))


@dataclass(frozen=True)
class Sample:
    text: str
    kind: str | None  # None for a look-alike negative
    secret: str = ""  # what must not survive; for digits, compared with separators removed


def build_corpus() -> list[Sample]:
    rng = random.Random(20261204)
    samples: list[Sample] = []
    for _ in range(12):
        samples += _cards(rng)
    for _ in range(8):
        samples += _secrets(rng)
        samples += _personal(rng)
    samples += _negatives(rng)
    return samples


def _alnum(rng: random.Random, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """Return a random number of `length` digits that starts with `prefix` and passes the Luhn check."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return next(body + check for check in string.digits if luhn_valid(body + check))


def _cards(rng: random.Random) -> list[Sample]:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    digits = luhn_complete(prefix, length, rng)
    groups = [digits[index : index + 4] for index in range(0, len(digits), 4)]
    forms = [
        digits,
        " ".join(groups),
        "-".join(groups),
        ".".join(groups),
        ZERO_WIDTH.join(groups),
        " - ".join(groups),
        digits.translate(FULLWIDTH_DIGITS),
        " ".join(groups).translate(ARABIC_INDIC_DIGITS),
        "".join(f"\\u{ord(char):04x}" for char in digits),
        f"Customer paid with card {' '.join(groups)} yesterday.",
    ]
    return [Sample(form, "card", digits) for form in forms]


def _jwt(rng: random.Random) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps({"sub": _alnum(rng, 8)}).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{_alnum(rng, 43, string.ascii_letters + string.digits + '-_')}"


def _secrets(rng: random.Random) -> list[Sample]:
    hexdigits = "0123456789abcdef"
    jwt = _jwt(rng)
    aws = "AKIA" + _alnum(rng, 16, string.ascii_uppercase + string.digits)

    ghp = "ghp_" + _alnum(rng, 36)
    # GitHub App installation tokens can be far longer than the classic 40 characters.
    ghs = "ghs_" + _alnum(rng, 240, string.ascii_letters + string.digits + "_")
    pat = "github_pat_" + _alnum(rng, 82, string.ascii_letters + string.digits + "_")

    slack = f"xoxb-{_alnum(rng, 12, string.digits)}-{_alnum(rng, 13, string.digits)}-{_alnum(rng, 24)}"
    webhook = f"https://hooks.slack.com/services/T{_alnum(rng, 8).upper()}/B{_alnum(rng, 8).upper()}/{_alnum(rng, 24)}"

    stripe = rng.choice(["sk_live_", "rk_test_"]) + _alnum(rng, 24)
    twilio = rng.choice(["SK", "AC"]) + _alnum(rng, 32, hexdigits)
    google = "AIza" + _alnum(rng, 35, string.ascii_letters + string.digits + "-_")
    oauth = "ya29." + _alnum(rng, 60, string.ascii_letters + string.digits + "-_")

    pem_body = "\n".join(_alnum(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(4))
    pem_kind = rng.choice(["RSA ", "EC ", "", "OPENSSH ", "ENCRYPTED "])
    pem = f"-----BEGIN {pem_kind}PRIVATE KEY-----\n{pem_body}\n-----END {pem_kind}PRIVATE KEY-----"

    password = _alnum(rng, 14)
    aws_secret = _alnum(rng, 40, string.ascii_letters + string.digits + "/+")
    token = _alnum(rng, 32)

    padding = b"x" * rng.randrange(3)
    blob = base64.b64encode(padding + KNOWN_SECRET.encode() + b"|tail").decode()

    return [
        Sample(f"Authorization: Bearer {jwt}", "jwt", jwt.split(".")[1]),
        Sample(f"token={jwt}", "jwt", jwt.split(".")[1]),
        Sample(f"curl -H 'Authorization: Bearer {token}'", "bearer", token),
        Sample(f"key id {aws} in use", "aws", aws),
        Sample(f"aws_secret_access_key = {aws_secret}", "named_secret", aws_secret),
        Sample(f"push with {ghp}", "github", ghp),
        Sample(ghs, "github", ghs[:40]),
        Sample(f"GITHUB_TOKEN={pat}", "github", pat),
        Sample(f"bot token {slack}", "slack", slack),
        Sample(webhook, "slack", webhook.rsplit("/", 1)[-1]),
        Sample(f"stripe: {stripe}", "stripe", stripe),
        Sample(f"Twilio SID {twilio}", "twilio", twilio),
        Sample(f"maps key {google}", "google", google),
        Sample(f"Authorization: {oauth}", "google", oauth),
        Sample(f"key material:\n{pem}\nend", "pem", pem_body.splitlines()[1]),
        Sample(pem.rsplit("-----END", 1)[0], "pem", pem_body.splitlines()[-1]),
        Sample(f"postgres://admin:{password}@db.internal:5432/app", "url_credential", password),
        Sample(f"https://{token}@git.example.com/repo.git", "url_credential", token),
        Sample(f"https://api.example.com/v1/orders?api_key={token}&page=2", "url_credential", token),
        Sample(f"https://files.example.com/a.pdf?X-Amz-Signature={token}", "url_credential", token),
        Sample(f'{{"password": "{password}"}}', "named_secret", password),
        Sample(f"twilio auth token: {token}", "named_secret", token),
        Sample(f"echo {KNOWN_SECRET}", "known_secret", KNOWN_SECRET),
        Sample(quote(f"next={KNOWN_SECRET}/x", safe=""), "known_secret", quote(KNOWN_SECRET, safe="")),
        Sample(json.dumps({"s": KNOWN_SECRET}, ensure_ascii=True).replace("-", "\\u002d"), "known_secret", "Known"),
        Sample(f"blob {blob} end", "known_secret", blob[4:20]),
    ]


def _personal(rng: random.Random) -> list[Sample]:
    area = rng.randrange(100, 665)
    ssn = f"{area:03d}-{rng.randrange(10, 99):02d}-{rng.randrange(1000, 9999):04d}"
    country = rng.choice(["DE", "GB", "FR", "NL", "ES"])
    iban = country + f"{rng.randrange(10, 99)}" + _alnum(rng, 18, string.ascii_uppercase[:6] + string.digits * 3)
    iban_spaced = " ".join(iban[index : index + 4] for index in range(0, len(iban), 4))
    user = _alnum(rng, 8, string.ascii_lowercase) + rng.choice([".", "_", "+"]) + _alnum(rng, 5, string.ascii_lowercase)
    email = f"{user}@{rng.choice(['example.com', 'mail.example.org', 'corp.example.co.uk'])}"
    us_phone = f"{rng.randrange(201, 989)} {rng.randrange(200, 999)} {rng.randrange(1000, 9999)}"
    phones = [
        f"+1 {us_phone}",
        f"({us_phone[:3]}) {us_phone[4:7]}-{us_phone[8:]}",
        f"+44 20 {rng.randrange(7000, 7999)} {rng.randrange(1000, 9999)}",
    ]
    return [
        Sample(f"SSN {ssn} on file", "ssn", ssn),
        Sample(ssn.replace("-", " "), "ssn", ssn.replace("-", " ")),
        Sample(f"social security number: {ssn.replace('-', '')}", "ssn", ssn.replace("-", "")),
        Sample(iban, "iban", iban),
        Sample(f"pay to {iban_spaced}", "iban", iban_spaced),
        Sample(f"Contact {email} today", "email", email.split("@")[0]),
        Sample(email.replace("@", "\u200b@"), "email", email.split("@")[0]),
        *(Sample(f"call {phone}", "phone", phone) for phone in phones),
        Sample(f"+1{ZERO_WIDTH}{us_phone}", "phone", us_phone),
    ]


def _negatives(rng: random.Random) -> list[Sample]:
    values = [
        "ORD-100234",
        "INC-20417",
        "CS-88213",
        "PO-55120",
        "TXN-2024-001234",
        "1Z999AA10123456784",
        "2025-06-12",
        "2025-06-12T15:30:00Z",
        "2024-05-01T12:30:45.123+02:00",
        "2024-05-01 12:30:45 +0200",
        "1717000000",
        "$80,988.00",
        "€1.234,56",
        "1,234,567.89",
        "USD 19.99",
        "192.168.100.200",
        "10.0.0.1:8080",
        "v1.2.3",
        "2.14.4",
        "978-3-16-148410-0",
        "07920-1234",
        "ext. 4521",
        "Room 12-34",
        "Card declined",
        "payment_failed",
        "Basic plan",
        "Bearer of bad news",
        "token bucket refill",
        "The secret to good service is listening.",
        "password reset requested",
        "see https://www.example.com/help?topic=billing&page=2",
        "https://status.example.com/incidents/8841",
        "user_12345",
        "premium",
        "queue tier1-billing, wait 45 seconds",
        "AKIAFOO",
        "ghp_short",
        "sk_live_",
        "-----BEGIN CERTIFICATE-----",
        "call between 9 and 17",
        "order 1234567890123",
        "Estimated 3-5 business days",
        "flight UA 1234 departs 18:45",
        "invoice 2025-000187",
        "SKU 88-1200-44",
        "line 3 of 12",
        "temperature 21.5 C",
        "batch 4471-2290",
        "member since 2019",
        "order total 1,299.00 EUR",
    ]
    values += [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
    values += ["".join(rng.choice("0123456789abcdef") for _ in range(40)) for _ in range(10)]
    values += [luhn_complete("9", 16, rng) for _ in range(5)]
    values += [f"{rng.randrange(1, 9999)}.{rng.randrange(0, 99):02d}" for _ in range(10)]
    values += [
        f"2025-{rng.randrange(1, 12):02d}-{rng.randrange(1, 28):02d}T{rng.randrange(0, 23):02d}:00:00Z"
        for _ in range(10)
    ]
    return [Sample(value, None) for value in values]


# Avaya-style IDs are neither secrets nor personal data; they are masked with their own label.
AVAYA_IDS = ["025d010819f98dbc75776be9666", "028d01111220a063d64b039dad", "wf_025d010627e3314fa905c5484c"]
