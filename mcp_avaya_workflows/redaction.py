"""Strip credentials and mask sensitive data before anything leaves the server.

Two jobs, applied at every exit (tool results, tool errors, resource contents,
log records and audit records):

* `Redactor.scrub_text` removes credentials: the client secret and every access
  token by value (also URL-encoded, JSON-escaped and inside base64), and by
  pattern bearer or basic credentials, JWTs, PEM private keys, credentials in
  URLs and the token formats of common vendors (AWS, GitHub, Slack, Stripe,
  Twilio, Google).
* `Redactor.mask_variables` masks workflow output variables: by the catalog's
  output policy, by key name (password, pin, card, ...) and by value pattern
  (Luhn-valid card numbers, SSNs, IBANs, e-mail addresses, phone numbers,
  Avaya IDs). Masks keep what the model needs, such as the last four digits
  of a card or a type label, and never reveal a CVV or PIN.

Matching runs on normalized text: JSON `\\uXXXX` escapes decoded, NFKC applied,
invisible format characters removed and every script's digits folded to ASCII,
so a card number split by zero-width spaces or written in fullwidth digits is
still found.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from .sanitizer import is_invisible

REDACTED = "[redacted]"
# Base64 forms of a known secret are matched only for secrets this long, so short ones cause no false matches.
MIN_BASE64_SECRET_LENGTH = 12
# Access tokens remembered for redaction by value; older ones expired long ago.
MAX_ROLLING_SECRETS = 16

# Every repetition below has an upper bound, so a long hostile string costs linear time, not quadratic.
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s{1,8})([A-Za-z0-9._~+/=-]{6,8192})")
_JWT = re.compile(r"(?<![A-Za-z0-9-])eyJ[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{0,8192}")

# Token formats that vendors publish with distinctive prefixes, each replaced by a label naming its kind.
# The markers are literals that every match contains: a pattern runs only on text that has one of them.
VENDOR_TOKENS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "aws key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"),
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ),
    (
        "github token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9_]{36,1024}|github_pat_[A-Za-z0-9_]{22,255})"),
    ),
    ("slack token", ("xox", "xapp-"), re.compile(r"(?<![A-Za-z0-9-])(?:xox[abposre]|xapp)-[A-Za-z0-9-]{10,250}")),
    (
        "slack webhook",
        ("https://hooks.slack.com/",),
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{10,300}"),
    ),
    (
        "stripe key",
        ("_live_", "_test_", "whsec_"),
        re.compile(r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{20,100})"),
    ),
    # The lookbehind follows the prefix, as in `_CARD` below, for speed.
    ("twilio key", ("SK", "AC"), re.compile(r"(?:SK|AC)(?<![A-Za-z0-9]..)[0-9a-f]{32}(?![A-Za-z0-9])")),
    ("google api key", ("AIza",), re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])")),
    ("google oauth token", ("ya29.",), re.compile(r"(?<![A-Za-z0-9])ya29\.[0-9A-Za-z_-]{20,2048}")),
)
# Secrets that have no prefix of their own are found by the name written before them: `password=...`,
# `"client_secret": "..."`, `aws_secret_access_key = ...`, `twilio auth token: ...`, `DB_PASSWORD=...`. The
# name may end a longer one after `_` or `-`, but not after a letter or digit (`passwordless`, `mypwd`).
_NAMED_SECRET = re.compile(
    r"(?i)((?<![^\W_])(?:password|passwd|pwd|passcode|secret|client[_ -]?secret|api[_ -]?key"
    r"|access[_ -]?token|refresh[_ -]?token|auth[_ -]?token|aws_secret_access_key|secret_access_key"
    r"|private[_ -]?key)\b[\"']?\s{0,3}[=:]\s{0,3}[\"']?)"
    r"([^\s\"'&,;<>]{4,1024})"
)
# Lowercase literals of which every `_NAMED_SECRET` match contains one.
_NAMED_SECRET_MARKERS = ("pass", "pwd", "secret", "key", "token")
_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# Credentials before the host in a URL: scheme://user:password@host or scheme://token@host.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,20}://)([^/\s@?#\"'<>]{1,256})@(?=[A-Za-z0-9\[])")
# A query parameter whose name marks it as a credential.
_QUERY_PARAMETER = re.compile(r"([?&;])([A-Za-z0-9_.\[\]-]{1,64})=([^&#\s\"'<>]{1,4096})")
_URL_CREDENTIAL_NAMES = frozenset(
    {
        "key",
        "sig",
        "signature",
        "code",
        "auth",
        "jwt",
        "session",
        "sessionid",
        "sas",
        "credential",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "client_secret",
        "access_token",
        "id_token",
        "refresh_token",
    }
)

# Invisible characters that are not format (Cf) characters: variation selectors, the combining grapheme
# joiner and the Hangul fillers, which render as nothing and can hide text from a reviewer.
_INVISIBLE_EXTRA = frozenset("\u034f\u115f\u1160\u3164\uffa0") | frozenset(chr(code) for code in range(0xFE00, 0xFE10))
_JSON_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\([\"\\/bfnrt])"
)
_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# 13 to 19 digits, grouped by single spaces, double spaces, dashes (spaced or not) or dots, as card numbers
# are written. A dot followed by a space ends a sentence, so it does not join two numbers into one.
# The pattern starts with a character class and checks the character before it in a lookbehind placed after
# it, because `re` skips quickly to the positions where a pattern's first character class matches.
_CARD = re.compile(r"[0-9](?<![A-Za-z0-9.-][0-9])(?:[0-9]|(?: ?- ?| {1,2}|\.)[0-9]){12,18}(?![A-Za-z0-9-]|\.[0-9])")
# Avaya's generated IDs: 26 or 27 lowercase hex-like characters starting with 02, sometimes with a wf_ prefix.
_AVAYA_ID = re.compile(r"(?<![A-Za-z0-9_-])(?:wf_)?02[0-9a-f][0-9a-z]{23,24}(?![A-Za-z0-9_-])")
# US SSNs as 123-45-6789 or 123 45 6789, skipping the ranges the SSA never issues. Lookbehinds after the
# first digits, as in `_CARD`, for speed.
_SSN = re.compile(r"\d\d\d(?<![\d-]\d\d\d)(?<!000|666)(?<!9\d\d)([- ])(?!00)\d\d\1(?!0000)\d{4}(?![\d-])")
# Nine bare digits are too common to mask alone, but not right after an SSN label.
_LABELLED_SSN = re.compile(r"(?i)\b(ssn|social security(?: number)?)(\W{0,3})\d{9}\b")
_SSN_MARKERS = ("ssn", "social security")
# Lookbehind after the first letter, as in `_CARD`, for speed.
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EMAIL = re.compile(r"(?<![\w.%+-])([\w%+-])[\w.%+-]{0,63}@([\w-]{1,63}(?:\.[\w-]{1,63}){1,8})\b")
# International numbers with a leading +, or North American (NXX) NXX-XXXX forms.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[ .-]\d{3}[ .-]\d{4})(?!\w)"
)

# Words that mark a variable as sensitive when they appear as a whole word of its name.
SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passcode",
        "pin",
        "otp",
        "token",
        "secret",
        "ssn",
        "card",
        "pan",
        "cvv",
        "cvv2",
        "cvc",
        "iban",
        "credential",
        "credentials",
        "authorization",
        "apikey",
        "dob",
    }
)
# Names of variables that hold Avaya's engagement or interaction IDs, which callers must not expose.
_AVAYA_ID_NAMES = ("engagementid", "interactionid")
# Compounds matched inside the name with separators removed, so `account_number` and `accountNumber` agree.
SENSITIVE_COMPOUNDS = (
    "accountnumber",
    "accountno",
    "acctnumber",
    "acctno",
    "cardnumber",
    "creditcard",
    "securitycode",
    "socialsecurity",
    "routingnumber",
    "sortcode",
    "accesstoken",
    "refreshtoken",
    "privatekey",
    "taxid",
    "dateofbirth",
    "birthdate",
    "taxnumber",
    "apikey",
    *_AVAYA_ID_NAMES,
)
# Names that are sensitive when they start or end with one of these, as in `pincode` or `cardcvv`.
_AFFIX_WORDS = ("cvv", "cvc", "ssn", "pin", "otp", "password", "passwd", "passcode", "iban")
# Values under these names are never partly revealed.
_NEVER_REVEAL = frozenset({"cvv", "cvv2", "cvc", "pin", "password", "passwd", "pwd", "passcode", "otp", "securitycode"})

# Splits on separators, on lower-to-upper case changes, and before the last capital of an acronym (PINCode).
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def luhn_valid(digits: str) -> bool:
    """Tell whether a digit string passes the Luhn checksum that payment card numbers carry."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def key_words(name: str) -> list[str]:
    """Split a variable name into lowercase words: `cardNumber`, `card_number` and `card-number` agree."""
    return [word.lower() for word in _WORD_SPLIT.split(name) if word]


def normalize_text(text: str) -> str:
    """Return `text` in the form the patterns match against: JSON escapes decoded, NFKC, invisible characters removed, ASCII digits.

    Tab, newline and carriage return are kept, and every other control character is removed.
    """
    if "\\" in text:
        text = _JSON_ESCAPE.sub(_decode_escape, text)
    if text.isascii():
        # Most text is ASCII, where NFKC and digit folding change nothing, so one regular expression does.
        return _ASCII_CONTROL.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    characters: list[str] = []
    for char in text:
        if char.isascii():
            if not _ASCII_CONTROL.match(char):
                characters.append(char)
            continue
        if is_invisible(char) or char in _INVISIBLE_EXTRA or unicodedata.category(char) == "Cc":
            continue
        # Variation selectors 17 to 256 sit outside the Basic Multilingual Plane.
        if 0xE0100 <= ord(char) <= 0xE01EF:
            continue
        digit = unicodedata.decimal(char, None)
        characters.append(str(digit) if digit is not None else char)
    return "".join(characters)


# ASCII control characters other than tab, newline and carriage return.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _decode_escape(match: re.Match[str]) -> str:
    high, low, single = match.group(1), match.group(2), match.group(3)
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    if single is not None:
        code = int(single, 16)
        # A lone surrogate cannot be encoded as UTF-8, so it becomes the replacement character.
        return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)
    return _SHORT_ESCAPES[match.group(4)]


@dataclass(frozen=True)
class MaskedVariables:
    """Output variables after masking, the dotted names of the masked ones, and the dropped names."""

    variables: dict[str, Any]
    masked_names: list[str]
    dropped_names: list[str] = field(default_factory=list)


# The output policy of a top-level variable: `auto`, `reveal`, `mask` or `drop` (see `catalog`).
PolicyLookup = Callable[[str], str]


def auto_policy(_: str) -> str:
    """Return `auto` for every variable: mask by name and by value pattern, the policy without a catalog."""
    return "auto"


class Redactor:
    """Redaction rules plus the secrets known at run time (client secret, access tokens)."""

    def __init__(self, extra_key_patterns: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._rolling: deque[str] = deque(maxlen=MAX_ROLLING_SECRETS)
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._extra_keys = [re.compile(pattern, re.IGNORECASE) for pattern in extra_key_patterns]

    def add_secret(self, value: str, *, rolling: bool = False) -> None:
        """Remember a secret so that it is stripped by value, also URL-encoded, JSON-escaped and in base64.

        A rolling secret, such as an access token, is forgotten once `MAX_ROLLING_SECRETS` newer ones
        arrive, which keeps the pattern small on a server that runs for weeks.
        """
        if len(value) < 4:
            return
        with self._lock:
            if rolling:
                self._rolling.append(value)
            else:
                self._secrets.add(value)
            forms = {form for secret in (*self._secrets, *self._rolling) for form in _encoded_forms(secret)}
            ordered = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered))

    def scrub_text(self, text: str) -> str:
        """Remove known secrets and credentials from `text`.

        Text with nothing to remove comes back unchanged. Otherwise it comes back normalized (see
        `normalize_text`), because the match may only exist in the normalized form.
        """
        stripped = self._strip_known(text)
        normalized = normalize_text(stripped)
        # Normalizing can uncover a known secret, such as one written with JSON escapes, so it is searched again.
        scrubbed = self._scrub_normalized(normalized) if normalized != stripped else _scrub_credentials(normalized)
        if scrubbed == normalized and stripped == text:
            return text
        return scrubbed

    def _strip_known(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def _scrub_normalized(self, text: str) -> str:
        """Remove known secrets and credentials from text that `normalize_text` has already normalized."""
        return _scrub_credentials(self._strip_known(text))

    def scrub(self, value: Any) -> Any:
        """Apply `scrub_text` to every string, key included, in a JSON-like structure."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {self.scrub_text(str(key)): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

    def clean_output_text(self, text: str) -> str:
        """Normalize a workflow-supplied string and remove credentials, without masking personal data."""
        return self._scrub_normalized(normalize_text(text))

    def mask_text(self, text: str) -> str:
        """Normalize a workflow-supplied string, remove credentials and mask personal data in it."""
        return _mask_normalized(self.clean_output_text(text))

    def is_sensitive_key(self, name: str) -> bool:
        """Tell whether a variable name marks its value as sensitive."""
        words = key_words(name)
        joined = "".join(words)
        if any(word in SENSITIVE_WORDS for word in words):
            return True
        if any(compound in joined for compound in SENSITIVE_COMPOUNDS):
            return True
        if any(joined.startswith(word) or joined.endswith(word) for word in _AFFIX_WORDS):
            return True
        return any(pattern.search(name) or pattern.search(joined) for pattern in self._extra_keys)

    def mask_variables(self, variables: Mapping[str, Any], policy: PolicyLookup = auto_policy) -> MaskedVariables:
        """Mask sensitive output variables at any depth, following `policy` for each top-level name."""
        masked_names: list[str] = []
        dropped_names: list[str] = []
        cleaned: dict[str, Any] = {}
        for key, item in variables.items():
            name, path = self._clean_name("", str(key), cleaned, masked_names)
            rule = policy(str(key))
            if rule == "drop":
                dropped_names.append(path)
            elif rule == "mask":
                masked_names.append(path)
                cleaned[name] = mask_by_key(str(key), item) if item not in (None, "") else item
            elif rule == "reveal":
                cleaned[name] = self._reveal(item)
            else:
                cleaned[name] = self._mask_entry(path, str(key), item, masked_names)
        # A name and its value can both be masked; report the name once.
        return MaskedVariables(
            variables=cleaned, masked_names=list(dict.fromkeys(masked_names)), dropped_names=dropped_names
        )

    def _clean_name(
        self, prefix: str, key: str, siblings: Mapping[str, Any], masked_names: list[str]
    ) -> tuple[str, str]:
        # A workflow can build a variable name from data, such as an e-mail address used as a key,
        # so names are masked too, and reported under their masked form.
        normalized = normalize_text(key)
        name = _mask_normalized(self._scrub_normalized(normalized))
        if name != key and name in siblings:
            # Two names masked alike, such as two e-mail addresses: keep both values.
            name = f"{name} ({sum(1 for existing in siblings if existing.startswith(name)) + 1})"
        path = f"{prefix}{name}"
        if name != normalized:
            masked_names.append(path)
        return name, path

    def _mask_mapping(self, prefix: str, mapping: Mapping[Any, Any], masked_names: list[str]) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for key, item in mapping.items():
            name, path = self._clean_name(prefix, str(key), cleaned, masked_names)
            cleaned[name] = self._mask_entry(path, str(key), item, masked_names)
        return cleaned

    def _mask_entry(self, path: str, name: str, value: Any, masked_names: list[str]) -> Any:
        if self.is_sensitive_key(name) and value not in (None, ""):
            masked_names.append(path)
            return mask_by_key(name, value)
        if isinstance(value, Mapping):
            return self._mask_mapping(f"{path}.", value, masked_names)
        if isinstance(value, list):
            return [self._mask_entry(f"{path}[{index}]", name, item, masked_names) for index, item in enumerate(value)]
        if isinstance(value, str):
            normalized = normalize_text(value)
            masked = _mask_normalized(self._scrub_normalized(normalized))
            if masked != normalized:
                masked_names.append(path)
            return masked
        digits = _integer_digits(value)
        if digits is not None and _is_card_number(digits):
            # A workflow may return a card number as a JSON number.
            masked_names.append(path)
            return f"[card, ends {digits[-4:]}]"
        return value

    def _reveal(self, value: Any) -> Any:
        """Pass a value the catalog reveals, with only credentials removed and invisible characters stripped."""
        if isinstance(value, str):
            return self.clean_output_text(value)
        if isinstance(value, Mapping):
            return {self.clean_output_text(str(key)): self._reveal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._reveal(item) for item in value]
        return value


# Results carry the same short strings call after call (keys, statuses, module names), so the credential
# scan of short text is remembered. It is a pure function of the text; the cache is small and bounded.
_CACHED_SCAN_MAX_CHARS = 128
_CACHED_SCANS = 1024


def _scrub_credentials(text: str) -> str:
    """Remove credentials found by pattern, each replaced by a label naming its kind."""
    if len(text) <= _CACHED_SCAN_MAX_CHARS:
        return _scrub_short_credentials(text)
    return _scan_credentials(text)


@functools.lru_cache(maxsize=_CACHED_SCANS)
def _scrub_short_credentials(text: str) -> str:
    return _scan_credentials(text)


def _scan_credentials(text: str) -> str:
    """Remove credentials found by pattern, each replaced by a label naming its kind.

    A pattern runs only on text that contains a literal that every match of it contains, which spares
    most text most of the patterns.
    """
    if "PRIVATE KEY" in text:
        text = _redact_pem(text)
    if _may_contain(text, ("bearer", "basic")):
        text = _BEARER.sub(_redact_credential, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    for kind, markers, pattern in VENDOR_TOKENS:
        if any(marker in text for marker in markers):
            text = pattern.sub(f"[redacted {kind}]", text)
    if _may_contain(text, _NAMED_SECRET_MARKERS):
        text = _NAMED_SECRET.sub(lambda match: f"{match.group(1)}{REDACTED}", text)
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(lambda match: f"{match.group(1)}{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_redact_query_parameter, text)
    return text


def _may_contain(text: str, markers: tuple[str, ...]) -> bool:
    """Tell whether `text` contains one of the lowercase `markers` in any letter case.

    Text that is not ASCII always may, because under `re.IGNORECASE` some non-ASCII letters match ASCII
    ones (the Kelvin sign matches `k`), so a case-insensitive pattern can match where no marker occurs.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(marker in lowered for marker in markers)


def _redact_pem(text: str) -> str:
    """Replace each PEM private key block, up to its END line or the end of the text, with a label."""
    parts: list[str] = []
    position = 0
    while (begin := _PEM_BEGIN.search(text, position)) is not None:
        parts.append(text[position : begin.start()])
        parts.append("[redacted private key]")
        end = _PEM_END.search(text, begin.end())
        position = end.end() if end is not None else len(text)
    parts.append(text[position:])
    return "".join(parts)


def _redact_query_parameter(match: re.Match[str]) -> str:
    name = match.group(2)
    lowered = name.lower()
    if lowered in _URL_CREDENTIAL_NAMES or _name_is_secret(name) or match.group(3) == REDACTED:
        return f"{match.group(1)}{name}={REDACTED}"
    return match.group(0)


def _name_is_secret(name: str) -> bool:
    words = key_words(name)
    joined = "".join(words)
    return any(word in _SECRET_WORDS for word in words) or any(word in joined for word in _SECRET_COMPOUNDS)


_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "token", "secret", "apikey", "credential", "credentials"})
_SECRET_COMPOUNDS = ("accesstoken", "refreshtoken", "apikey", "privatekey", "clientsecret", "authtoken")


def _redact_credential(match: re.Match[str]) -> str:
    credential = match.group(3)
    # A credential has a digit, a symbol or mixed case, unlike prose such as "the Basic plan".
    has_symbol = any(char.isdigit() or char in "._~+/=-" for char in credential)
    mixed_case = credential.lower() != credential and credential.upper() != credential
    if not (has_symbol or mixed_case):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def _integer_digits(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(abs(value))
    if isinstance(value, float) and value.is_integer():
        return str(abs(int(value)))
    return None


def _encoded_forms(secret: str) -> set[str]:
    """The forms a secret can take in text: as is, URL-encoded, JSON-escaped, NFKC and inside base64."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        unicodedata.normalize("NFKC", secret),
    }
    if len(secret) >= MIN_BASE64_SECRET_LENGTH:
        forms |= _base64_cores(secret.encode())
    return {form for form in forms if form}


def _base64_cores(secret: bytes) -> set[str]:
    """Compute the base64 characters that encode only `secret`, at each of the three byte alignments in a longer blob.

    Characters at the edges also encode neighbouring bytes, so they differ from blob to blob; the core does not.
    """
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        first = -(-offset * 8 // 6)
        last = (offset + len(secret)) * 8 // 6
        core = encoded[first:last]
        cores.add(core)
        cores.add(core.translate(_URLSAFE))
    return cores


_URLSAFE = str.maketrans("+/", "-_")


def _is_card_number(digits: str) -> bool:
    """Tell whether `digits` can be a payment card number: a card network's prefix, length and Luhn checksum."""
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return False
    # Networks issue cards starting with 3 to 6, and Mastercard also from 2221 to 2720.
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


def mask_by_key(name: str, value: Any) -> str:
    """Mask a value whose name marks it sensitive, keeping the last 4 digits of card and account numbers."""
    words = set(key_words(name))
    joined = "".join(key_words(name))
    if words & _NEVER_REVEAL or "securitycode" in joined:
        return REDACTED
    if any(kind in joined for kind in _AVAYA_ID_NAMES):
        return "[avaya id]"
    digits = re.sub(r"[^0-9]", "", normalize_text(str(value))) if isinstance(value, str | int) else ""
    if len(digits) >= 8 and ({"card", "pan", "iban"} & words or "number" in joined or "acct" in joined):
        return f"[masked, ends {digits[-4:]}]"
    return "[masked]"


def mask_patterns(text: str) -> str:
    """Mask card numbers that pass Luhn, SSNs, IBANs, e-mail addresses, phone numbers and Avaya IDs in text.

    The text is normalized first (see `normalize_text`).
    """
    return _mask_normalized(normalize_text(text))


def _mask_normalized(text: str) -> str:
    # IBANs first: their digits could otherwise pass for a card number.
    text = _IBAN.sub(lambda match: f"[IBAN, ends {match.group(0).replace(' ', '')[-4:]}]", text)
    text = _CARD.sub(_mask_card, text)
    text = _SSN.sub("[SSN]", text)
    # The patterns below run only on text that contains a literal that every match of them contains.
    if _may_contain(text, _SSN_MARKERS):
        text = _LABELLED_SSN.sub(lambda match: f"{match.group(1)}{match.group(2)}[SSN]", text)
    if "@" in text:
        text = _EMAIL.sub(lambda match: f"{match.group(1)}***@{match.group(2)}", text)
    if "02" in text:
        text = _AVAYA_ID.sub("[avaya id]", text)
    return _PHONE.sub(_mask_phone, text)


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not _is_card_number(digits):
        return match.group(0)
    return f"[card, ends {digits[-4:]}]"


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 10:
        return match.group(0)
    return f"[phone, ends {digits[-2:]}]"


def replace_text(value: Any, old: str, new: str) -> Any:
    """Replace `old`, in any letter case, with `new` in every string, keys included, of a JSON-like structure."""
    return _replace_pattern(value, re.compile(re.escape(old), re.IGNORECASE), new)


def _replace_pattern(value: Any, pattern: re.Pattern[str], new: str) -> Any:
    if isinstance(value, str):
        return pattern.sub(new, value)
    if isinstance(value, Mapping):
        return {pattern.sub(new, str(key)): _replace_pattern(item, pattern, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_pattern(item, pattern, new) for item in value]
    return value
