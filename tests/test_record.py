"""The run record: what results.json holds, and how files of other schemas are read or refused."""

from __future__ import annotations

import json
import math

import pytest

from midms.record import RecordError, RunRecord, iter_records


def test_a_record_reads_back_as_written_with_non_finite_numbers_as_null(tmp_path):
    record = RunRecord(status="completed", model="midms", seed=3, metrics={"psnr": 12.5, "fid": math.nan},
                       protocol={"num_images": 8}, wandb={"id": "abc"})  # fmt: skip
    record.write(tmp_path / "results.json")
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema"] == 2 and raw["metrics"] == {"psnr": 12.5, "fid": None}  # valid JSON for every reader
    back = RunRecord.read(tmp_path / "results.json")
    assert back.metrics == {"psnr": 12.5, "fid": None} and back.wandb_id == "abc" and back.protocol == record.protocol


def test_a_file_without_a_schema_number_is_read_as_schema_zero(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"status": "failed", "error": "boom", "model": "cocosnet"}))
    back = RunRecord.read(tmp_path / "results.json")
    assert back.status == "failed" and back.error == "boom" and back.schema == 2


def test_a_schema_one_record_reads_with_what_its_metrics_declared_then(tmp_path):
    """Schema 1 kept each metric's direction, and FID's stable minimum, image count and mode in its protocol."""
    old = {"schema": 1, "status": "completed", "metrics": {"fid": 30.0, "fid_ci95": 2.0, "psnr": 14.0},
           "directions": {"fid": "lower", "fid_ci95": "lower", "psnr": "higher"},
           "protocol": {"metrics": {"fid.stable_min_images": 2048, "fid.num_generated": 32,
                                    "fid.mode": "clean"}}}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(old))
    info = RunRecord.read(tmp_path / "results.json").metric_info
    assert info["fid"] == {"metric": "fid", "direction": "lower", "headline": True, "stable_min_images": 2048,
                           "num_images": 32, "implementation": "clean-fid"}  # fmt: skip
    assert not info["fid_ci95"]["headline"] and info["psnr"]["direction"] == "higher"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"status": "completed", "schema": 3}, "schema 3"),  # a newer suite wrote it
        ({"status": "completed", "scores": {}}, "['scores']"),  # a field this schema does not have
        ({"status": "done"}, "status 'done'"),
        ([1, 2], "not a run record"),
    ],
)
def test_a_foreign_or_newer_file_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    with pytest.raises(RecordError, match=str(path)) as err:
        RunRecord.read(path)
    assert message in str(err.value)


def test_iter_records_yields_each_file_or_the_error_that_reading_it_gave(tmp_path):
    RunRecord(status="completed").write(tmp_path / "a" / "results.json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text("{not json")
    found = dict(iter_records(tmp_path))
    assert isinstance(found[tmp_path / "a" / "results.json"], RunRecord)
    assert isinstance(found[tmp_path / "b" / "results.json"], RecordError)
    assert "unreadable" in str(found[tmp_path / "b" / "results.json"])
