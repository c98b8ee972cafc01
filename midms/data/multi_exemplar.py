"""Several exemplars per input for evaluation (``evaluation.exemplars_per_input=k``): diversity that runs.

The papers' protocol translates each test input with one exemplar. Multimodal diversity (``lpips_diversity``:
the mean LPIPS between the outputs of one input) needs several. :class:`MultiExemplar` wraps an evaluation
split that can name and build further pairs (``exemplar_candidates(index, k)`` and ``pair(index, exemplar)``)
and yields, for every input in order, its k pairs: the dataset's own exemplar first (the one-exemplar protocol's
pair), then the next candidates of its pairing list, then seeded partners, all fixed for every model and run.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from midms.errors import UserError


class MultiExemplar(Dataset):
    def __init__(self, dataset: Dataset, k: int) -> None:
        if int(k) < 1:
            raise UserError(f"evaluation.exemplars_per_input={k}: use 1 (the papers' protocol) or more")
        missing = [m for m in ("exemplar_candidates", "pair") if not hasattr(dataset, m)]
        if missing and int(k) > 1:
            raise UserError(
                f"evaluation.exemplars_per_input={k}: the dataset {type(dataset).__name__} cannot build further "
                f"pairs (it lacks {', '.join(missing)}); evaluate it with exemplars_per_input=1"
            )
        self.dataset, self.k = dataset, int(k)
        self._candidates: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset) * self.k

    def candidates(self, index: int) -> list[Any]:
        if index not in self._candidates:
            found = list(self.dataset.exemplar_candidates(index, self.k))
            if len(found) < self.k:
                raise UserError(
                    f"input {index} of {type(self.dataset).__name__} has only {len(found)} possible exemplars; "
                    f"lower evaluation.exemplars_per_input below {self.k}"
                )
            self._candidates[index] = found
        return self._candidates[index]

    def __getitem__(self, item: int) -> dict[str, Any]:
        if not 0 <= item < len(self):
            raise IndexError(item)
        index, j = divmod(item, self.k)
        if self.k == 1:
            return self.dataset[index]
        return self.dataset.pair(index, self.candidates(index)[j])

    @property
    def spec(self):
        return self.dataset.spec

    @property
    def dataset_key(self) -> str:
        key = self.dataset.dataset_key
        return key if self.k == 1 else f"{key}-x{self.k}"

    def protocol(self) -> dict[str, Any]:
        return {**self.dataset.protocol(), "exemplars_per_input": self.k}
