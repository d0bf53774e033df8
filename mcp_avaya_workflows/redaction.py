"""Strip credentials and mask sensitive data before anything leaves the server.

Two jobs, applied at every exit (tool results, tool errors, resource contents,
log records):

* `Redactor.scrub_text` removes credentials: the client secret and every access
  token by value, and bearer or basic credentials and JWTs by pattern.
* `Redactor.mask_variables` masks workflow output variables: by key name
  (password, pin, card, ...) and by value pattern (Luhn-valid card numbers,
  SSNs, IBANs, e-mail addresses, phone numbers). Masks keep what the model
  needs, such as the last four digits of a card, and never reveal a CVV or PIN.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
# Access tokens remembered for redaction by value; older ones expired long ago.
MAX_ROLLING_SECRETS = 16

# Every repetition below has an upper bound, so a long hostile string costs linear time, not quadratic.
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s{1,8})([A-Za-z0-9._~+/=-]{6,8192})")
_JWT = re.compile(r"(?<![A-Za-z0-9-])eyJ[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{0,8192}")

# 13 to 19 digits, optionally grouped by single spaces, dashes or dots, as card numbers are written.
_CARD = re.compile(r"(?<![A-Za-z0-9.-])\d(?:[ .-]?\d){12,18}(?![A-Za-z0-9-]|\.\d)")
# US SSNs as 123-45-6789 or 123 45 6789, skipping the ranges the SSA never issues.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
# Nine bare digits are too common to mask alone, but not right after an SSN label.
_LABELLED_SSN = re.compile(r"(?i)\b(ssn|social security(?: number)?)(\W{0,3})\d{9}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
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


@dataclass(frozen=True)
class MaskedVariables:
    """Output variables after masking, and the dotted names of the masked ones."""

    variables: dict[str, Any]
    masked_names: list[str]


class Redactor:
    """Redaction rules plus the secrets known at run time (client secret, access tokens)."""

    def __init__(self, extra_key_patterns: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._rolling: deque[str] = deque(maxlen=MAX_ROLLING_SECRETS)
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._extra_keys = [re.compile(pattern, re.IGNORECASE) for pattern in extra_key_patterns]

    def add_secret(self, value: str, *, rolling: bool = False) -> None:
        """Remember a secret so that it is stripped by value, also in its URL-encoded forms.

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
        """Remove known secrets, bearer or basic credentials and JWTs from `text`."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _BEARER.sub(_redact_credential, text)
        return _JWT.sub(REDACTED, text)

    def scrub(self, value: Any) -> Any:
        """Apply `scrub_text` to every string, key included, in a JSON-like structure."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {self.scrub_text(str(key)): self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

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

    def mask_variables(self, variables: Mapping[str, Any]) -> MaskedVariables:
        """Mask sensitive output variables by key name and by value pattern, at any depth."""
        masked_names: list[str] = []
        cleaned = self._mask_mapping("", variables, masked_names)
        # A name and its value can both be masked; report the name once.
        return MaskedVariables(variables=cleaned, masked_names=list(dict.fromkeys(masked_names)))

    def _mask_mapping(self, prefix: str, mapping: Mapping[Any, Any], masked_names: list[str]) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for key, item in mapping.items():
            # A workflow can build a variable name from data, such as an e-mail address used as a key,
            # so names are masked too, and reported under their masked form.
            name = mask_patterns(self.scrub_text(str(key)))
            if name != key and name in cleaned:
                # Two names masked alike, such as two e-mail addresses: keep both values.
                name = f"{name} ({sum(1 for existing in cleaned if existing.startswith(name)) + 1})"
            path = f"{prefix}{name}"
            if name != key:
                masked_names.append(path)
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
            masked = mask_patterns(self.scrub_text(value))
            if masked != value:
                masked_names.append(path)
            return masked
        digits = _integer_digits(value)
        if digits is not None and _is_card_number(digits):
            # A workflow may return a card number as a JSON number.
            masked_names.append(path)
            return f"[card, ends {digits[-4:]}]"
        return value


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
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def mask_by_key(name: str, value: Any) -> str:
    """Mask a value whose name marks it sensitive, keeping the last 4 digits of card and account numbers."""
    words = set(key_words(name))
    joined = "".join(key_words(name))
    if words & _NEVER_REVEAL or "securitycode" in joined:
        return REDACTED
    digits = re.sub(r"\D", "", str(value)) if isinstance(value, str | int) else ""
    if len(digits) >= 8 and ({"card", "pan", "iban"} & words or "number" in joined or "acct" in joined):
        return f"[masked, ends {digits[-4:]}]"
    return "[masked]"


def mask_patterns(text: str) -> str:
    """Mask card numbers that pass Luhn, SSNs, IBANs, e-mail addresses and phone numbers in free text."""
    text = _CARD.sub(_mask_card, text)
    text = _IBAN.sub(lambda match: f"[IBAN, ends {match.group(0).replace(' ', '')[-4:]}]", text)
    text = _SSN.sub("[SSN]", text)
    text = _LABELLED_SSN.sub(lambda match: f"{match.group(1)}{match.group(2)}[SSN]", text)
    text = _EMAIL.sub(lambda match: f"{match.group(1)}***@{match.group(2)}", text)
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
