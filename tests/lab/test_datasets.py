"""Loaders on the real shared data, and the generic format's validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pinfactory.errors import DatasetError
from pinfactory.lab import datasets, metrics
from pinfactory.routing.log_table import load_log


def test_routerbench_matches_the_published_figures(shared_data: Path) -> None:
    splits = datasets.load("routerbench", shared_data)
    assert len(splits.train) + len(splits.test) == 3150  # the complete rows
    gpt4 = splits.test.members.index("gpt-4-1106-preview")
    assert splits.test.quality[:, gpt4].mean() == pytest.approx(0.879, abs=0.001)
    cost, quality = splits.test.cost.mean(axis=0), splits.test.quality.mean(axis=0)
    # the zero router (hull of the single models) scores about 0.82, as RouterBench reports
    assert metrics.aiq(cost, quality, cost.min(), cost.max()) == pytest.approx(0.82, abs=0.01)


def test_mmlu_excludes_contamination_and_prices_by_tokens(shared_data: Path) -> None:
    splits = datasets.load("routellm_mmlu", shared_data)
    total = len(splits.train) + len(splits.test)
    assert 14_030 <= total < 14_042  # the contaminated prompts are gone
    weak, strong = splits.test.cost.mean(axis=0)
    assert strong / weak > 30  # GPT-4 is priced far above Mixtral
    prices = {datasets.ROUTELLM_STRONG: {"input": 0.24, "output": 0.24}}
    cheap = datasets.load("routellm_mmlu", shared_data, prices=prices)
    assert np.allclose(cheap.test.cost[:, 0], cheap.test.cost[:, 1])


def test_mt_bench_scores_map_into_unit_interval(shared_data: Path) -> None:
    splits = datasets.load("routellm_mt_bench", shared_data)
    both = np.vstack([splits.train.quality, splits.test.quality])
    assert len(both) == 160 and both.min() >= 0 and both.max() <= 1
    assert both[:, 1].mean() > both[:, 0].mean()  # GPT-4 is judged better than Mixtral


def test_clinc_domains_are_members_and_oos_goes_to_the_generalist(shared_data: Path) -> None:
    splits = datasets.load("clinc150", shared_data)
    assert len(splits.train.members) == 11 and splits.test.members[-1] == "generalist"
    assert len(splits.test) == 5500
    assert np.all(splits.test.quality.sum(axis=1) == 1)
    oos = [i for i, label in enumerate(splits.test.labels or []) if label == "oos"]
    assert len(oos) == 1000 and np.all(splits.test.oracle()[oos] == 10)


def write(tmp_path: Path, body: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


HEADER = "id,prompt,member,quality,cost_usd,label\n"


def test_generic_log_round_trip(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER + "1,hi,a,1,0.1,x\n1,hi,b,0,0.2,x\n2,yo,a,0.5,0.1,y\n2,yo,b,1,0.3,y\n"
    )
    table = load_log(path)
    assert table.members == ["a", "b"] and table.labels == ["x", "y"]
    assert table.quality.tolist() == [[1, 0], [0.5, 1]]
    jsonl = write(
        tmp_path,
        '{"id": 1, "prompt": "hi", "member": "a", "quality": 1, "cost_usd": 0}\n',
        "log.jsonl",
    )
    assert load_log(jsonl).quality.tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id,prompt,member,quality\n1,hi,a,1\n", "missing column(s) cost_usd"),
        (HEADER + "1,hi,a,1,0.1,x\n2,yo,a,good,0.1,y\n", "row 3: quality 'good' is not a number"),
        (HEADER + "1,hi,a,1,-0.1,x\n", "row 2: cost_usd -0.1 is negative"),
        (HEADER + "1,hi,a,1,0.1,x\n1,hi,a,0,0.1,x\n", "row 3: duplicate id '1'"),
        (HEADER + "1,hi,a,1.5,0.1,x\n", "row 2: quality 1.5 is outside"),
        (HEADER + "1,hi,a,1,0.1,x\n2,yo,b,1,0.1,x\n", "no record for member"),
    ],
)
def test_generic_log_errors_name_the_row(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_log(write(tmp_path, body))


def test_parquet_rows_are_numbered(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    columns = {
        "id": ["1", "2"],
        "prompt": ["a", "b"],
        "member": ["m", "m"],
        "quality": [1.0, 0.0],
        "cost_usd": [0.1, -1.0],
    }
    pq.write_table(pa.table(columns), path)
    with pytest.raises(DatasetError, match=r"row 2: cost_usd -1\.0 is negative"):
        load_log(path)
