"""Several exemplars per input (evaluation.exemplars_per_input): which pairs, in which order, under which names."""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from midms.data.celebahq import CelebAHQEdges
from midms.data.datamodule import TranslationDataModule
from midms.data.multi_exemplar import MultiExemplar
from midms.data.synthetic import SyntheticPairs
from midms.errors import UserError
from midms.testing.fake_celebahq import write_fake_layout
from tests.support.e2e import TINY


def _synthetic(n=6):
    return SyntheticPairs("test", image_size=32, sizes={"test": n})


def test_synthetic_candidates_start_with_the_own_exemplar_and_are_distinct_seeded_partners():
    ds = _synthetic()
    for i in range(len(ds)):
        found = ds.exemplar_candidates(i, 4)
        assert found[0] == ds.exemplar_index(i) and len(set(found)) == 4 and i not in found
        assert found == _synthetic().exemplar_candidates(i, 4)  # fixed for every model and run
    assert ds.exemplar_candidates(0, 6) == []  # only 5 other scenes
    for j in ds.exemplar_candidates(2, 3):
        sample = ds.pair(2, j)
        assert sample["exemplar_id"] == f"test_{j:05d}" and torch.equal(sample["image"], ds[2]["image"])
        assert torch.equal(sample["exemplar"], ds[j]["image"])  # scene j in its own style
    assert all(torch.equal(ds.pair(1, ds.exemplar_index(1))[k], v) for k, v in ds[1].items() if torch.is_tensor(v))


def test_multi_exemplar_orders_pairs_by_input_and_names_its_key():
    ds = _synthetic()
    multi = MultiExemplar(ds, 3)
    assert len(multi) == 18 and multi.dataset_key == f"{ds.dataset_key}-x3"
    assert multi.protocol()["exemplars_per_input"] == 3
    assert [multi[i]["id"] for i in range(6)] == ["test_00000"] * 3 + ["test_00001"] * 3
    assert multi[0]["exemplar_id"] == ds[0]["exemplar_id"]  # the one-exemplar protocol's pair first
    assert MultiExemplar(ds, 1)[4]["exemplar_id"] == ds[4]["exemplar_id"]
    with pytest.raises(UserError, match="exemplars_per_input=0"):
        MultiExemplar(ds, 0)
    with pytest.raises(UserError, match="only 0 possible exemplars"):
        MultiExemplar(ds, 7)[0]
    with pytest.raises(UserError, match="cannot build further pairs"):
        MultiExemplar(torch.utils.data.TensorDataset(torch.zeros(2)), 2)


def test_real_datasets_take_the_pairing_lists_references_first(tmp_path):
    write_fake_layout(tmp_path / "celebahq", pairing_lists=True)
    ds = CelebAHQEdges(tmp_path / "celebahq", split="val", image_size=48, load_size=64)
    listed = {line.split(",")[0][:-4]: line.split(",")[1][:-4]
              for line in (tmp_path / "celebahq" / "celebahq_ref_test.txt").read_text().split()}  # fmt: skip
    for i, sample_id in enumerate(ds.ids):
        found = ds.exemplar_candidates(i, 3)
        assert found[0] == listed[sample_id] == ds.exemplar_id(i)
        assert len(set(found)) == 3 and sample_id not in found
        sample = ds.pair(i, found[2])
        assert sample["id"] == sample_id and sample["exemplar_id"] == found[2]
        assert torch.equal(sample["image"], ds[i]["image"])


def test_the_datamodule_evaluates_k_pairs_per_input():
    dm = TranslationDataModule(dataset=partial(SyntheticPairs, image_size=32, sizes={"test": 5}), eval_batch_size=4)
    assert len(dm.eval_dataset) == 5
    dm.exemplars_per_input = 2
    assert len(dm.eval_dataset) == 10 and dm.protocol()["exemplars_per_input"] == 2
    ids = [i for batch in dm.eval_dataloader() for i in batch["id"]]
    assert ids == [f"test_{i:05d}" for i in range(5) for _ in range(2)]


@pytest.mark.slow  # an end-to-end run: the fast set stays under 10 minutes
def test_a_run_with_three_exemplars_per_input_names_its_samples_and_records_the_protocol(run_entry, tmp_path):
    proc = run_entry(*TINY, "model=copy_exemplar", "evaluation.exemplars_per_input=3", "metrics=pixel")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "logs" / "runs").rglob("results.json")
    res = json.loads(path.read_text())
    assert res["protocol"]["exemplars_per_input"] == 3 and res["protocol"]["num_images"] == 24
    samples = sorted(p.stem for p in (path.parent / "samples").glob("*.png"))
    assert len(samples) == 24 and "test_00000" in samples
    assert sum(s.startswith("test_00000__") for s in samples) == 2  # the further exemplars: <input>__<exemplar>


def test_lpips_diversity_runs_on_an_evaluation_with_several_exemplars_per_input(tmp_path):
    import lpips
    from torch.utils.data import DataLoader

    from midms.data.images import collate_pairs
    from midms.evaluation.evaluator import evaluate
    from midms.metrics.lpips_metric import LPIPSDiversity
    from midms.models.copy_exemplar import CopyExemplar

    torch.manual_seed(0)
    net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # random backbone: no download
    ds = _synthetic(5)
    loader = DataLoader(MultiExemplar(ds, 3), batch_size=4, collate_fn=collate_pairs)
    metrics = {"lpips_diversity": LPIPSDiversity(model=net)}
    out = evaluate(CopyExemplar(ds.spec), loader, metrics, tmp_path / "run", tmp_path / "cache", "k-x3", 32)
    # copy_exemplar's three outputs of an input are its three exemplars: distinct pictures, a positive diversity
    assert out.metrics["lpips_diversity"] > 0 and not out.skipped
    assert out.protocol["lpips_diversity.inputs"] == 5 and out.protocol["lpips_diversity.pairs"] == 15
    one_each = DataLoader(ds, batch_size=4, collate_fn=collate_pairs)
    metrics = {"lpips_diversity": LPIPSDiversity(model=net)}
    single = evaluate(CopyExemplar(ds.spec), one_each, metrics, tmp_path / "one", tmp_path / "cache", "k", 32)
    assert "exemplars_per_input" in single.skipped["lpips_diversity"]
