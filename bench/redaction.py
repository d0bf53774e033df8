"""Redaction: our redactor against Presidio and detect-secrets, for speed and accuracy on one labelled corpus.

Every subject runs on the same records from `bench/redaction_corpus.py`. Speed is the median time per
KB of text over interleaved rounds. Accuracy is recall and precision per kind, where a detection counts
when it overlaps a planted item's span.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from importlib import metadata
from typing import Any, ClassVar, Protocol

from mcp_avaya_workflows.redaction import Redactor

from .common import Section, Target, median, now, percentile, table
from .redaction_corpus import KNOWN_SECRET, NEGATIVE, PII_KINDS, SECRET_KINDS, Planted, Record, build_records

KINDS = (*SECRET_KINDS, *PII_KINDS)
# Detections whose type could be any secret kind (entropy, keyword or our plain `[redacted]` label).
GENERIC = "generic secret"
# Detections whose type matches no corpus kind, such as our `[avaya id]` label.
OTHER = "other"
# Written as escapes because ruff flags these characters in string literals as look-alikes of x and -.
TIMES = "\N{MULTIPLICATION SIGN}"
NO_FIGURE = "\N{EN DASH}"
# The speed target: ours must process text at least this many times faster than Presidio.
MIN_SPEEDUP_OVER_PRESIDIO = 20.0
# Each timed block of a fast subject repeats its pass until it lasts about this long, in seconds.
MIN_TIMED_BLOCK = 0.25


@dataclass(frozen=True)
class Detection:
    """A span a tool flagged, its type name, and the corpus kinds that its type detects."""

    start: int
    end: int
    label: str
    kinds: frozenset[str]


class Subject(Protocol):
    """A tool under test: the work the throughput figure times and the spans the accuracy figures score."""

    name: str
    configuration: str
    supported: frozenset[str]

    def process(self, text: str) -> object:
        """Do the work that the throughput figure times."""

    def detect(self, text: str) -> list[Detection]:
        """Return the spans flagged in `text`, for the accuracy figures."""


def run(quick: bool) -> Section:
    records = build_records()
    with _subjects() as subjects:
        accuracy = {subject.name: evaluate(subject, records) for subject in subjects}
        speed = measure_speed(subjects, [record.text for record in records], rounds=3 if quick else 31)
    return _section(records, subjects, accuracy, speed, quick)


@contextlib.contextmanager
def _subjects() -> Iterator[list[Subject]]:
    with DetectSecrets.settings():
        yield [Ours(), Presidio(), DetectSecrets()]


# The subjects.


class Ours:
    name = "ours"
    configuration = (
        "`Redactor.mask_text`, the function the server applies to free text from a workflow: it normalizes the "
        "text, removes credentials by value and by pattern, and masks personal data. The redactor knows one "
        "secret by value, as a server knows its client secret."
    )
    supported = frozenset(KINDS)

    def __init__(self) -> None:
        self._redactor = Redactor()
        self._redactor.add_secret(KNOWN_SECRET)

    def process(self, text: str) -> object:
        return self._redactor.mask_text(text)

    def detect(self, text: str) -> list[Detection]:
        return label_spans(text, self._redactor.mask_text(text))


# The labels that `Redactor.mask_text` writes in place of what it removes.
_OUR_LABEL = re.compile(
    r"\[(?:redacted[a-z ]*|card, ends \d{4}|SSN|IBAN, ends [A-Z0-9]{1,4}|phone, ends \d{2}|avaya id)\]|\*\*\*@"
)
_OUR_LABEL_KINDS = (
    ("[redacted aws", "aws"),
    ("[redacted github", "github"),
    ("[redacted slack", "slack"),
    ("[redacted stripe", "stripe"),
    ("[redacted twilio", "twilio"),
    ("[redacted google", "google"),
    ("[redacted private key", "pem"),
    ("[card", "card"),
    ("[SSN", "ssn"),
    ("[IBAN", "iban"),
    ("***@", "email"),
    ("[phone", "phone"),
)
# `[redacted]` alone is the label for the credentials that have no label of their own.
_PLAIN_REDACTED_KINDS = frozenset({"jwt", "bearer", "url_credential", "named_secret", "known_secret"})


def label_spans(source: str, output: str) -> list[Detection]:
    """Find each label in `output` and the span of `source` it replaced, by aligning the two texts.

    A label's span in `source` runs from the first to the last source character aligned with any
    character of the label, or replaced by it.
    """
    opcodes = SequenceMatcher(None, source, output, autojunk=False).get_opcodes()
    detections: list[Detection] = []
    for match in _OUR_LABEL.finditer(output):
        first, last = match.span()
        starts: list[int] = []
        ends: list[int] = []
        for tag, source_start, source_end, output_start, output_end in opcodes:
            if tag == "equal":
                low, high = max(first, output_start), min(last, output_end)
                if low < high:
                    starts.append(source_start + low - output_start)
                    ends.append(source_start + high - output_start)
            elif (output_start < last and first < output_end) or (
                output_start == output_end and first <= output_start <= last
            ):
                starts.append(source_start)
                ends.append(source_end)
        if starts:
            label = match.group(0)
            detections.append(Detection(min(starts), max(ends), label, _our_label_kinds(label)))
    return detections


def _our_label_kinds(label: str) -> frozenset[str]:
    if label == "[redacted]":
        return _PLAIN_REDACTED_KINDS
    return frozenset(kind for prefix, kind in _OUR_LABEL_KINDS if label.startswith(prefix))


class Presidio:
    name = "Presidio"
    # Presidio's entity types for the corpus kinds; only these are requested.
    ENTITIES: ClassVar[dict[str, str]] = {
        "CREDIT_CARD": "card",
        "US_SSN": "ssn",
        "IBAN_CODE": "iban",
        "EMAIL_ADDRESS": "email",
        "PHONE_NUMBER": "phone",
    }
    supported = frozenset(ENTITIES.values())

    def __init__(self) -> None:
        # Presidio's e-mail recognizer calls tldextract, which downloads the Public Suffix List unless this
        # variable is empty when tldextract is imported. With it empty, tldextract uses its bundled copy.
        os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
        import tldextract.tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        if tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls:
            raise RuntimeError(
                "tldextract was imported before the benchmark could disable its Public Suffix List download. "
                "Run the redaction benchmark in a fresh process: python -m bench --only redaction"
            )
        configuration = {"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}
        nlp_engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
        self._analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
        self._entities = list(self.ENTITIES)
        recognizers = sorted({recognizer.name for recognizer in registry.recognizers})
        self.configuration = (
            f"presidio-analyzer {metadata.version('presidio-analyzer')}: `NlpEngineProvider` with "
            '`{"nlp_engine_name": "no_op"}`, which loads no spaCy model and gives the recognizers no tokens; '
            "a `RecognizerRegistry` filled by `load_predefined_recognizers(languages=['en'], "
            f"nlp_engine=...)` ({len(recognizers)} predefined recognizers, none of them NER-based); "
            "`AnalyzerEngine(registry, nlp_engine).analyze(text, language='en', "
            f"entities=[{', '.join(self._entities)}])` with the default score threshold of 0. "
            "The Public Suffix List that the e-mail recognizer checks domains against is the snapshot "
            "bundled with tldextract (`TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS` set empty), so nothing is "
            "downloaded. Only analysis is timed; replacing the spans (presidio-anonymizer) would add to it."
        )

    def process(self, text: str) -> object:
        return self._analyzer.analyze(text=text, language="en", entities=self._entities)

    def detect(self, text: str) -> list[Detection]:
        return [
            Detection(result.start, result.end, result.entity_type, frozenset({self.ENTITIES[result.entity_type]}))
            for result in self._analyzer.analyze(text=text, language="en", entities=self._entities)
        ]


class DetectSecrets:
    name = "detect-secrets"
    # detect-secrets' secret types for the corpus kinds. Every other type, such as the entropy and
    # vendor plugins without a corpus kind, counts as a generic secret detector.
    TYPES: ClassVar[dict[str, str]] = {
        "JSON Web Token": "jwt",
        "AWS Access Key": "aws",
        "GitHub Token": "github",
        "Slack Token": "slack",
        "Stripe Access Key": "stripe",
        "Twilio API Key": "twilio",
        "Private Key": "pem",
        "Basic Auth Credentials": "url_credential",
        "Secret Keyword": "named_secret",
    }
    supported = frozenset(TYPES.values())

    def __init__(self) -> None:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import get_plugins, get_settings

        filters = get_settings().filters
        if "detect_secrets.filters.common.is_ignored_due_to_verification_policies" in filters:
            # That filter sends each candidate to the vendor's API to verify it.
            raise RuntimeError(
                "The detect-secrets settings include the verification filter, which sends candidates to vendor "
                "APIs, but the benchmark must not reach other hosts. Run it with default_settings()."
            )
        self._scan_line = scan_line
        self._plugins = {plugin.secret_type: plugin for plugin in get_plugins()}
        self.configuration = (
            f"detect-secrets {metadata.version('detect-secrets')}: inside `default_settings()`, which enables "
            f"all {len(self._plugins)} plugins with the default filters and no verification, each line is "
            "scanned with `detect_secrets.core.scan.scan_line`, the function behind `detect-secrets scan "
            "--string`. As that command does, a finding counts only where its plugin's `format_scan_result` "
            "starts with `True`: the scan returns every word to the entropy plugins, and this applies their "
            "entropy limits. A finding's span is where its secret value occurs in the line. Only scanning and "
            "that check are timed."
        )

    @staticmethod
    def settings() -> contextlib.AbstractContextManager[Any]:
        from detect_secrets.settings import default_settings

        return default_settings()

    def process(self, text: str) -> object:
        return [self._findings(line) for line in text.split("\n")]

    def _findings(self, line: str) -> list[Any]:
        return [
            secret
            for secret in self._scan_line(line)
            if self._plugins[secret.type].format_scan_result(secret).startswith("True")
        ]

    def detect(self, text: str) -> list[Detection]:
        detections: list[Detection] = []
        offset = 0
        for line in text.split("\n"):
            for secret in self._findings(line):
                value = secret.secret_value or line
                kind = self.TYPES.get(secret.type)
                kinds = frozenset({kind}) if kind else frozenset(SECRET_KINDS)
                for match in re.finditer(re.escape(value), line):
                    detections.append(Detection(offset + match.start(), offset + match.end(), secret.type, kinds))
            offset += len(line) + 1
        return detections


# Accuracy.


@dataclass
class Accuracy:
    """Planted and caught items per kind, false positives per attributed kind, and examples of both errors."""

    planted: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    false_positives: Counter[str] = field(default_factory=Counter)
    missed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    false_alarms: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def recall(self, kind: str) -> float:
        return self.caught[kind] / self.planted[kind] if self.planted[kind] else 0.0

    def precision(self, kinds: Sequence[str]) -> tuple[int, int]:
        """Return the caught items of `kinds` (the true positives) and those plus the false positives of `kinds`."""
        hits = sum(self.caught[kind] for kind in kinds)
        return hits, hits + sum(self.false_positives[kind] for kind in kinds)


def evaluate(subject: Subject, records: Sequence[Record]) -> Accuracy:
    """Score one subject's detections against the planted items of every record.

    Overlapping detections are merged first. An item is caught when a detection overlaps it, and
    each caught item is one true positive of its kind, whatever type the detection has. A detection
    that overlaps no planted secret or personal item is a false positive, attributed by
    `_false_positive_kind`.
    """
    accuracy = Accuracy()
    for record in records:
        detections = merge_overlapping(subject.detect(record.text))
        positives = [item for item in record.items if item.kind != NEGATIVE]
        for item in positives:
            accuracy.planted[item.kind] += 1
            if any(_overlaps(detection, item) for detection in detections):
                accuracy.caught[item.kind] += 1
            else:
                accuracy.missed[item.kind].append(record.text[item.start : item.end])
        for detection in detections:
            if not any(_overlaps(detection, item) for item in positives):
                kind = _false_positive_kind(detection.kinds)
                accuracy.false_positives[kind] += 1
                accuracy.false_alarms[kind].append(f"{detection.label}: {record.text[detection.start : detection.end]}")
    return accuracy


def merge_overlapping(detections: Sequence[Detection]) -> list[Detection]:
    """Merge detections whose spans overlap, so that a value flagged by several detectors counts once."""
    merged: list[Detection] = []
    for detection in sorted(detections, key=lambda detection: (detection.start, detection.end)):
        if merged and detection.start < merged[-1].end:
            last = merged.pop()
            labels = last.label if detection.label in last.label.split(" + ") else f"{last.label} + {detection.label}"
            detection = Detection(last.start, max(last.end, detection.end), labels, last.kinds | detection.kinds)
        merged.append(detection)
    return merged


def _overlaps(detection: Detection, item: Planted) -> bool:
    return detection.start < item.end and item.start < max(detection.end, detection.start + 1)


def _false_positive_kind(kinds: frozenset[str]) -> str:
    """Return the kind a false alarm counts against: its type's one kind, the first personal-data kind, or a group."""
    if len(kinds) == 1:
        return next(iter(kinds))
    personal = [kind for kind in PII_KINDS if kind in kinds]
    if personal:
        return personal[0]
    return GENERIC if kinds else OTHER


# Speed.


@dataclass
class Speed:
    """Seconds per pass over the corpus, one sample a round, and each round's ratio to ours."""

    seconds: dict[str, list[float]]
    ratios: dict[str, list[float]]
    repeats: dict[str, int]


def measure_speed(subjects: Sequence[Subject], texts: Sequence[str], rounds: int) -> Speed:
    """Time a pass of each subject over `texts`, rotating the order each round (ABC, BCA, CAB, ...).

    A fast subject repeats its pass within a round until the timed block lasts `MIN_TIMED_BLOCK`.
    """
    repeats: dict[str, int] = {}
    for subject in subjects:
        elapsed = _time_pass(subject, texts, 1)
        repeats[subject.name] = max(1, round(MIN_TIMED_BLOCK / max(elapsed, 1e-6)))
    seconds: dict[str, list[float]] = {subject.name: [] for subject in subjects}
    for round_index in range(rounds):
        shift = round_index % len(subjects)
        for subject in [*subjects[shift:], *subjects[:shift]]:
            count = repeats[subject.name]
            seconds[subject.name].append(_time_pass(subject, texts, count) / count)
    baseline = seconds[subjects[0].name]
    ratios = {
        name: [value / base for value, base in zip(values, baseline, strict=True)] for name, values in seconds.items()
    }
    return Speed(seconds=seconds, ratios=ratios, repeats=repeats)


def _time_pass(subject: Subject, texts: Sequence[str], count: int) -> float:
    start = now()
    for _ in range(count):
        for text in texts:
            subject.process(text)
    return now() - start


# The section.


def _section(
    records: Sequence[Record], subjects: Sequence[Subject], accuracy: dict[str, Accuracy], speed: Speed, quick: bool
) -> Section:
    size_kb = sum(len(record.text.encode()) for record in records) / 1024
    targets = _targets(subjects, accuracy, speed)
    parts = [
        _corpus_text(records, size_kb),
        "### Subjects\n",
        "\n".join(f"- **{subject.name}**: {subject.configuration}" for subject in subjects),
        "",
        "### Throughput\n",
        _speed_text(subjects, speed, size_kb, quick),
        "### Recall per kind\n",
        "A planted item is caught when any detection of the tool overlaps its span. A kind for which a tool "
        "has no detector of its own is shown as not supported, with what its other detectors caught in "
        "brackets, and does not count against it.\n",
        _recall_table(subjects, accuracy),
        "",
        "### Precision per kind\n",
        "Overlapping detections of one tool are merged first. Each caught item is one true positive of its "
        "kind, whatever type the detection has, so a tool can score on a kind it does not support. A detection that overlaps no planted secret or personal item, but a look-alike value or "
        "plain text, is a false positive, attributed to the kind its type detects, or to "
        f"*{GENERIC}* for detectors that are not specific to one kind (entropy, keywords, our plain "
        f"`[redacted]` label), or to *{OTHER}*.\n",
        _precision_table(subjects, accuracy),
        "",
        _examples_text(subjects, accuracy),
        _phone_note(subjects, accuracy),
        _changes_text(subjects, accuracy, speed, size_kb),
        "### Targets\n",
        "\n".join(f"- {target.name}: {'met' if target.met else '**not met**'}. {target.detail}" for target in targets),
        "",
    ]
    return Section(title="Redaction", body="\n".join(parts), targets=targets)


def _corpus_text(records: Sequence[Record], size_kb: float) -> str:
    counts = Counter(item.kind for record in records for item in record.items)
    styles = Counter(record.style for record in records)
    kinds = ", ".join(f"{kind} {counts[kind]}" for kind in KINDS)
    style_counts = ", ".join(f"{count} {style}" for style, count in styles.items())
    return (
        "Our redactor, Presidio and detect-secrets on one labelled corpus generated by "
        f"`bench/redaction_corpus.py` from a fixed seed: {len(records)} records ({style_counts}), "
        f"{size_kb:.1f} KB in all. Planted items per kind: {kinds}; and {counts[NEGATIVE]} look-alike values "
        "(invalid-Luhn card numbers, order, invoice and tracking numbers, meeting IDs, ZIP codes, UUIDs, hashes, "
        "versions, timestamps, amounts, and phrases such as `Bearer of bad news`). The secret phrases, card "
        "forms, SSNs, e-mail addresses and most look-alikes are the plain-text samples of the test suite's "
        "corpus (`tests/corpus.py`); its samples hidden with zero-width characters, other scripts' digits or "
        "JSON escapes are left out, because only our redactor normalizes text.\n"
    )


def _speed_text(subjects: Sequence[Subject], speed: Speed, size_kb: float, quick: bool) -> str:
    ours = subjects[0].name
    rows = []
    for subject in subjects:
        per_kb = [seconds * 1000 / size_kb for seconds in speed.seconds[subject.name]]
        rows.append(
            (
                subject.name,
                f"{median(per_kb):.4f}",
                f"{percentile(per_kb, 0.9):.4f}",
                f"1.00{TIMES}" if subject.name == ours else f"{median(speed.ratios[subject.name]):.1f}{TIMES}",
                speed.repeats[subject.name],
            )
        )
    rounds = len(speed.seconds[ours])
    return (
        "Time per KB (1,024 bytes of UTF-8). Each round times one pass of every subject over all records, "
        f"one call a record, in a rotating order; {rounds} rounds{' (quick run)' if quick else ''}. A "
        f"subject that finishes a pass in under {MIN_TIMED_BLOCK} s repeats it within its round, and its "
        "time is the mean pass. The ratio is the median over rounds of the subject's time divided by ours "
        "in the same round.\n\n"
        + table(["subject", "ms per KB, median", "ms per KB, p90", "time ÷ ours", "passes a round"], rows)
        + "\n"
    )


def _recall_table(subjects: Sequence[Subject], accuracy: dict[str, Accuracy]) -> str:
    rows = []
    for kind in KINDS:
        row: list[object] = [kind, accuracy[subjects[0].name].planted[kind]]
        for subject in subjects:
            result = accuracy[subject.name]
            figure = f"{result.caught[kind]}/{result.planted[kind]}"
            if kind in subject.supported:
                row.append(f"{result.recall(kind):.2f} ({figure})")
            else:
                row.append(f"not supported ({figure})")
        rows.append(row)
    return table(["kind", "planted", *(subject.name for subject in subjects)], rows)


def _precision_table(subjects: Sequence[Subject], accuracy: dict[str, Accuracy]) -> str:
    rows: list[list[object]] = []
    groups = [(kind, [kind]) for kind in (*KINDS, GENERIC, OTHER)]
    groups += [
        ("**all secret kinds**", [*SECRET_KINDS, GENERIC]),
        ("**all personal-data kinds**", list(PII_KINDS)),
        ("**all kinds**", [*KINDS, GENERIC, OTHER]),
    ]
    for name, kinds in groups:
        cells = [_precision_cell(accuracy[subject.name], kinds) for subject in subjects]
        if all(cell == NO_FIGURE for cell in cells):
            continue
        rows.append([name, *cells])
    return table(["kind", *(subject.name for subject in subjects)], rows)


def _precision_cell(result: Accuracy, kinds: Sequence[str]) -> str:
    hits, total = result.precision(kinds)
    return f"{hits / total:.2f} ({hits}/{total})" if total else NO_FIGURE


def _examples_text(subjects: Sequence[Subject], accuracy: dict[str, Accuracy]) -> str:
    """List a few misses and false alarms of each subject, so that a reader sees what each figure counts."""
    lines = ["### Misses and false alarms\n"]
    for subject in subjects:
        result = accuracy[subject.name]
        missed = [
            f"{kind}: `{_clip(text)}`"
            for kind in KINDS
            if kind in subject.supported
            for text in result.missed.get(kind, [])[:2]
        ]
        alarms = [f"`{_clip(text)}`" for texts in result.false_alarms.values() for text in texts[:2]]
        lines.append(f"- **{subject.name}** missed: {'; '.join(missed) if missed else 'nothing it supports'}.")
        lines.append(f"  False alarms: {', '.join(alarms[:8]) if alarms else 'none'}.")
    return "\n".join(lines) + "\n"


def _clip(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "⏎").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The changes to our redactor.

# Measured before the changes described in `_changes_text`, with this benchmark (21 rounds) on 2026-12-05 on a
# 2-core Intel Xeon shared with other work. Presidio's figure is from the same run.
BEFORE = {
    "ms_per_kb": 0.3042,
    "presidio_ratio": 20.7,
    "named_secret_recall": "0.71 (40/56)",
    "card_recall": "0.98 (80/82)",
    "precision": "1.00 (470/470)",
}
# Our old and new `Redactor.mask_text` timed side by side on this corpus, 31 interleaved rounds, same machine and day.
BEFORE_AFTER_SPEEDUP = 2.15


def _changes_text(subjects: Sequence[Subject], accuracy: dict[str, Accuracy], speed: Speed, size_kb: float) -> str:
    ours, presidio = subjects[0].name, subjects[1].name
    result = accuracy[ours]
    hits, total = result.precision([*KINDS, GENERIC, OTHER])
    per_kb = median([seconds * 1000 / size_kb for seconds in speed.seconds[ours]])
    return (
        "### Changes to our redactor\n\n"
        "Three changes to `mcp_avaya_workflows/redaction.py` were measured with this benchmark. Each pattern "
        "now runs only on text that contains a literal that every match of it contains (`eyJ`, `AKIA`, `@`, "
        "`bearer`, ...), and the card, SSN, IBAN and Twilio patterns start with a character class, with "
        "their lookbehind after it, so that `re` can skip to candidate positions. A secret's name may now "
        "follow `_` or `-`, so `DB_PASSWORD=...` and `smtp_password: ...` are found. A full stop followed by "
        "a space no longer joins two digit groups into one candidate card number, which had hidden a card "
        "written right after another number.\n\n"
        + table(
            ["figure", "before", "after (this run)"],
            [
                ("ours, ms per KB", f"{BEFORE['ms_per_kb']:.4f}", f"{per_kb:.4f}"),
                (
                    f"{presidio} time ÷ ours",
                    f"{BEFORE['presidio_ratio']:.1f}{TIMES}",
                    f"{median(speed.ratios[presidio]):.1f}{TIMES}",
                ),
                ("named_secret recall", BEFORE["named_secret_recall"], _recall_cell(result, "named_secret")),
                ("card recall", BEFORE["card_recall"], _recall_cell(result, "card")),
                ("precision, all kinds", BEFORE["precision"], f"{hits / total:.2f} ({hits}/{total})"),
            ],
        )
        + f"\n\nTimed side by side on this corpus (31 interleaved rounds), the new `mask_text` took "
        f'1/{BEFORE_AFTER_SPEEDUP:.2f} of the old one\'s time. The "before" column was measured with this '
        "benchmark on 2026-12-05, on a 2-core Intel Xeon shared with other work.\n"
    )


def _recall_cell(result: Accuracy, kind: str) -> str:
    return f"{result.recall(kind):.2f} ({result.caught[kind]}/{result.planted[kind]})"


# Targets.


def _targets(subjects: Sequence[Subject], accuracy: dict[str, Accuracy], speed: Speed) -> list[Target]:
    ours, presidio, detect_secrets = subjects
    speedup = median(speed.ratios[presidio.name])
    targets = [
        Target(
            name=f"Redaction at least {MIN_SPEEDUP_OVER_PRESIDIO:g}{TIMES} faster than Presidio",
            met=speedup >= MIN_SPEEDUP_OVER_PRESIDIO,
            detail=f"{speedup:.1f}{TIMES} (median over rounds of Presidio's pass time ÷ ours)",
        ),
        _recall_target(ours, presidio, accuracy, PII_KINDS, "personal-data"),
        _recall_target(ours, detect_secrets, accuracy, SECRET_KINDS, "secret"),
    ]
    everything = [*KINDS, GENERIC, OTHER]
    figures = {subject.name: accuracy[subject.name].precision(everything) for subject in subjects}
    precision = {name: hits / total if total else 0.0 for name, (hits, total) in figures.items()}
    best = max((presidio.name, detect_secrets.name), key=lambda name: precision[name])
    shortfall = "" if precision[ours.name] >= precision[best] else " " + _false_alarm_summary(accuracy[ours.name])
    targets.append(
        Target(
            name="Redaction precision at least the better of Presidio's and detect-secrets'",
            met=precision[ours.name] >= precision[best],
            detail=(
                f"ours {precision[ours.name]:.3f} ({figures[ours.name][0]}/{figures[ours.name][1]}), "
                f"{best} {precision[best]:.3f} ({figures[best][0]}/{figures[best][1]}), over all kinds"
                f"{shortfall}"
            ),
        )
    )
    return targets


def _recall_target(
    ours: Subject, other: Subject, accuracy: dict[str, Accuracy], kinds: Sequence[str], group: str
) -> Target:
    compared = [kind for kind in kinds if kind in other.supported]
    result = accuracy[ours.name]
    behind = [kind for kind in compared if result.recall(kind) < accuracy[other.name].recall(kind)]
    figures = ", ".join(
        f"{kind} {result.recall(kind):.2f} vs {accuracy[other.name].recall(kind):.2f}" for kind in compared
    )
    detail = f"ours vs {other.name} per kind: {figures}"
    for kind in behind:
        shapes = Counter(_shape(text) for text in result.missed[kind])
        forms = ", ".join(f"{count} {TIMES} `{shape}`" for shape, count in shapes.most_common(3))
        detail += f". Ours missed {len(result.missed[kind])} of {result.planted[kind]} {kind} items, written as {forms}"
        if kind == "phone" and _bare_digit_misses(result):
            detail += ": bare ten-digit numbers, which ours keeps on purpose (see the section)"
    return Target(
        name=f"Redaction recall at least that of {other.name} on every {group} kind it supports",
        met=not behind,
        detail=detail,
    )


def _bare_digit_misses(result: Accuracy) -> list[str]:
    return [text for text in result.missed["phone"] if text.isdigit()]


def _phone_note(subjects: Sequence[Subject], accuracy: dict[str, Accuracy]) -> str:
    """Explain our phone misses when they are bare digit runs, which the redactor leaves alone by design."""
    ours, presidio = accuracy[subjects[0].name], accuracy[subjects[1].name]
    bare = _bare_digit_misses(ours)
    if not bare:
        return ""
    alarms = [text.split(": ", 1)[-1] for text in presidio.false_alarms.get("phone", [])]
    examples = ", ".join(f"`{_clip(text)}`" for text in alarms[:3])
    return (
        f"Ours missed {len(bare)} phone numbers written as bare digits, such as `{bare[0]}`. It keeps a bare run of "
        "ten digits on purpose, even after `call`, because order, account and tracking numbers share that "
        "shape: `tests/test_redaction.py` expects `call 9089536000 later` to stay unchanged. Presidio's phone "
        "recognizer checks candidates with the phonenumbers library and flags such runs. In this run it also "
        f"raised {presidio.false_positives['phone']} false phone alarms on look-alike values"
        + (f", such as {examples}" if examples else "")
        + ".\n"
    )


def _shape(text: str) -> str:
    """Write a value's shape: each digit as 9 and each ASCII letter as a, so that misses group by form."""
    return _clip(re.sub(r"[A-Za-z]", "a", re.sub(r"[0-9]", "9", text)), 40)


def _false_alarm_summary(result: Accuracy) -> str:
    parts = [f"{kind} {count}" for kind, count in result.false_positives.most_common() if count]
    return f"Our false alarms by kind: {', '.join(parts)}." if parts else ""
