"""Shared by the dataset tests: which evaluation pairs an unreadable file takes out, and that nothing else changes."""

from __future__ import annotations

from pathlib import Path

from midms.data.images import SkippedPair


def evaluation_pairs(dataset) -> list[tuple[str, str]]:
    """(input id, exemplar id) of every evaluation pair of a dataset whose files are all readable."""
    return [(dataset[i]["id"], dataset[i]["exemplar_id"]) for i in range(len(dataset))]


def assert_only_its_pairs_are_skipped(dataset, pairs: list[tuple[str, str]], sample_id: str, path: Path) -> None:
    """With ``path`` (a file of ``sample_id``) unreadable: every pair that reads it, in either role, is skipped with
    the file named; every other pair is unchanged (no pair dropped, none re-paired)."""
    assert len(dataset) == len(pairs)
    affected = {i for i, pair in enumerate(pairs) if sample_id in pair}
    assert len(affected) >= 2  # the sample as an input and as an exemplar
    for i, pair in enumerate(pairs):
        got = dataset[i]
        if i in affected:
            assert isinstance(got, SkippedPair) and (got.id, got.exemplar_id) == pair and str(path) in got.reason
        else:
            assert (got["id"], got["exemplar_id"]) == pair
