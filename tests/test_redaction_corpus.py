"""Precision and recall of redaction, per kind, on the labelled corpus."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from mcp_avaya_workflows.redaction import Redactor

from .corpus import AVAYA_IDS, KNOWN_SECRET, LABELS, PII_KINDS, SECRET_KINDS, Sample, build_corpus

# A leaked credential is an incident, so every secret kind must be caught with no false alarm on the corpus.
SECRET_RECALL = 1.0
SECRET_PRECISION = 1.0
# Personal data is matched by shape, so a little slack is allowed, never below these.
PII_RECALL = 0.95
PII_PRECISION = 0.95

CORPUS = build_corpus()


def redact(redactor: Redactor, text: str) -> str:
    """Run a value through the same masking the status tool applies to output variables."""
    return json.dumps(redactor.mask_variables({"value": text}).variables["value"], ensure_ascii=False)


def survives(sample: Sample, output: str) -> bool:
    if not sample.secret:
        return False
    if sample.kind in PII_KINDS and re.fullmatch(r"[\d .-]+", sample.secret):
        # Digits may come back in another script or grouping; compare the digits alone.
        digits = re.sub(r"\D", "", sample.secret)
        return digits in re.sub(r"\D", "", output.translate(_FOLD))
    return sample.secret in output


_FOLD = str.maketrans(
    "".join(chr(0xFF10 + digit) for digit in range(10)) + "".join(chr(0x0660 + digit) for digit in range(10)),
    "0123456789" * 2,
)


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[Sample, str]]:
    redactor = Redactor()
    redactor.add_secret(KNOWN_SECRET)
    return [(sample, redact(redactor, sample.text)) for sample in CORPUS]


def test_corpus_has_every_kind_and_negatives() -> None:
    counts = Counter(sample.kind for sample in CORPUS)

    for kind in (*SECRET_KINDS, *PII_KINDS):
        assert counts[kind] >= 8, kind
    assert counts[None] >= 100


@pytest.mark.parametrize("kind", [*SECRET_KINDS, *PII_KINDS])
def test_recall_and_precision_per_kind(outcomes: list[tuple[Sample, str]], kind: str) -> None:
    label = LABELS[kind]
    positives = [(sample, output) for sample, output in outcomes if sample.kind == kind]
    caught = [sample for sample, output in positives if not survives(sample, output) and label in output]
    missed = [sample.text for sample, output in positives if survives(sample, output) or label not in output]
    # A false alarm: the kind's label on a look-alike value that must stay as it is.
    false_alarms = [sample.text for sample, output in outcomes if sample.kind is None and label in output]

    recall = len(caught) / len(positives)
    precision = len(caught) / (len(caught) + len(false_alarms))
    floor_recall, floor_precision = (
        (SECRET_RECALL, SECRET_PRECISION) if kind in SECRET_KINDS else (PII_RECALL, PII_PRECISION)
    )
    assert recall >= floor_recall, f"recall {recall:.2f}; missed {missed}"
    assert precision >= floor_precision, f"precision {precision:.2f}; false alarms {false_alarms}"


def test_negatives_come_back_unchanged(outcomes: list[tuple[Sample, str]]) -> None:
    changed = [
        (sample.text, output)
        for sample, output in outcomes
        if sample.kind is None and json.loads(output) != sample.text
    ]

    assert len(changed) <= 0.02 * sum(1 for sample in CORPUS if sample.kind is None), changed


def test_no_secret_survives_in_any_sample(outcomes: list[tuple[Sample, str]]) -> None:
    leaked = [sample.text for sample, output in outcomes if sample.kind in SECRET_KINDS and survives(sample, output)]

    assert leaked == []


@pytest.mark.parametrize("avaya_id", AVAYA_IDS)
def test_avaya_ids_get_their_own_label(avaya_id: str) -> None:
    output = redact(Redactor(), f"session {avaya_id} closed")

    assert avaya_id not in output
    assert "[avaya id]" in output
    assert not any(LABELS[kind] in output for kind in (*SECRET_KINDS, *PII_KINDS))
