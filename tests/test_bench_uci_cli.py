"""`dropkit bench uci` on tiny synthetic data: bad data, settings and flags exit 2 with one line
before any training; --resume gives the straight run's table bit for bit; odd --out folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dropkit.bench import uci_protocol
from dropkit.cli import main
from dropkit.datasets.uci import download_uci, load_uci
from dropkit.errors import DropkitValueError
from tests.uci_layout import write_uci_layout

TINY = ["--quick", "--epochs", "2", "--mc-samples", "20", "--threads", "1", "--n-splits", "3"]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_uci_layout(tmp_path / "data")
    write_uci_layout(tmp_path / "data", "toy2", seed=1)
    return tmp_path / "data"


@pytest.fixture()
def trained(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the batched trainings (grid search and retraining of each group)."""
    calls: list[int] = []
    real = uci_protocol._Nets.run

    def counted(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(uci_protocol._Nets, "run", counted)
    return calls


def _bench(root: Path, out: Path, *extra: str, datasets: str = "toy,toy2") -> int:
    return main(["bench", "uci", "--root", str(root), "--datasets", datasets,
                 "--out", str(out), *TINY, *extra])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


SPOILED = [  # (file, content, words the one-line error must contain)
    ("data.txt", "1 2 3\n4 inf 6\n", "line 2: non-finite value 'inf'"),
    ("data.txt", "1 2 3\nnan 5 6\n", "line 2: non-finite value 'nan'"),
    ("data.txt", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not a text file"),
    ("dropout_rates.txt", "0.05 1.0\n", "dropout_rates.txt: dropout rates must be in [0, 1)"),
    ("dropout_rates.txt", "1.5\n", "dropout_rates.txt: dropout rates must be in [0, 1)"),
    ("dropout_rates.txt", "nan\n", "dropout_rates.txt, line 1: non-finite value 'nan'"),
    ("tau_values.txt", "0.0 1.0\n", "tau_values.txt: tau values must be positive"),
    ("tau_values.txt", "-1\n", "tau_values.txt: tau values must be positive"),
    ("index_train_1.txt", "3\n", "split 1: 1 training and 10 test rows are too few"),
]


@pytest.mark.parametrize(("name", "content", "words"), SPOILED)
def test_bad_data_exits_2_with_one_line_before_any_training(
        root: Path, tmp_path: Path, name: str, content: str | bytes, words: str,
        trained: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    """Each of these used to exit 0 with NaN or nonsense in uci.csv (or a raw traceback)."""
    path = root / "toy2" / "data" / name  # the second data set: the first must not run
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert _bench(root, tmp_path / "out") == 2
    line = _error_line(capsys)
    assert words in line and str(path.parent) in line, line
    assert trained == [] and not (tmp_path / "out" / "uci.csv").exists()


def test_a_constant_target_is_rejected(root: Path, tmp_path: Path, trained: list[int],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = root / "toy" / "data" / "data.txt"
    values = np.loadtxt(data)
    values[:, 2] = 3.5
    np.savetxt(data, values)
    assert _bench(root, tmp_path / "out") == 2
    assert "target column 2 is constant (3.5)" in _error_line(capsys) and trained == []
    # constant only in the rows one split trains on: caught per split, before training
    values[:, 2] = np.arange(len(values))
    train = np.loadtxt(root / "toy" / "data" / "index_train_2.txt", dtype=int)
    values[train, 2] = 1.0
    np.savetxt(data, values)
    assert _bench(root, tmp_path / "out") == 2
    line = _error_line(capsys)
    assert "split 2: the target is constant (1) over its 24 grid-search" in line, line
    assert trained == []


@pytest.mark.parametrize(("flags", "words"), [
    (["--splits-per-batch", "-1"], "`--splits-per-batch` to be an integer >= 1, but got -1"),
    (["--splits-per-batch", "0"], "`--splits-per-batch` to be an integer >= 1, but got 0"),
    (["--threads", "0"], "`--threads` to be a positive integer, but got 0"),
    (["--seed", "-3"], "`--seed` to be an integer >= 0, but got -3"),
    (["--n-splits", "9"], "`--n-splits` to be an integer in [1, 3], but got 9"),
])
def test_bad_flags_exit_2_and_leave_the_previous_results(
        root: Path, tmp_path: Path, flags: list[str], words: str, trained: list[int],
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "uci.md").write_text("previous table")
    argv = ["bench", "uci", "--root", str(root), "--datasets", "toy", "--out", str(out),
            *TINY, *flags]
    assert main(argv) == 2
    assert words in _error_line(capsys)
    assert trained == [] and (out / "uci.md").read_text() == "previous table"


@pytest.mark.parametrize(("datasets", "words"), [
    ("", "`--datasets` to be comma-separated data set names, each once, but got ''"),
    (" , ", "`--datasets` to be comma-separated data set names"),
    ("toy,toy", "each once"),
    ("../toy", "`--datasets` to be plain data set names"),
    ("toy/../../x", "`--datasets` to be plain data set names"),
])
def test_bad_dataset_names(root: Path, tmp_path: Path, datasets: str, words: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench(root, tmp_path / "out", datasets=datasets) == 2
    assert words in _error_line(capsys)


def test_names_with_paths_never_leave_their_folder(tmp_path: Path) -> None:
    """A name is a folder under the root or cache, never a path out of it (no download is
    tried: the name is refused first)."""
    for bad in ("../../x", "a/b", "..", "/etc"):
        with pytest.raises(DropkitValueError, match="plain data set names"):
            download_uci(bad, tmp_path / "cache", base_url="http://127.0.0.1:9")
        with pytest.raises(DropkitValueError, match="plain data set names"):
            load_uci(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_out_that_cannot_take_the_results_fails_first(
        root: Path, tmp_path: Path, trained: list[int],
        capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out, words in ((a_file, "a folder (or a path to create one)"),
                       (a_file / "sub", "a writable folder"),
                       (Path("/sys"), "a writable folder")):  # /sys: read-only even for root
        assert _bench(root, out) == 2
        line = _error_line(capsys)
        assert f"Expected argument `--out` to be {words}, but got '{out}'" in line, line
    assert trained == []


def test_other_json_files_in_out_are_left_alone(root: Path, tmp_path: Path) -> None:
    """A lab results.json (or any other JSON) in --out used to end the run with KeyError."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"claims": []}')
    assert _bench(root, out, datasets="toy") == 0
    assert (out / "results.json").read_text() == '{"claims": []}'
    rows = list(csv.DictReader((out / "uci.csv").open()))
    assert [r["dataset"] for r in rows] == ["toy"]


def _table(out: Path) -> tuple[list[dict[str, str]], list[object]]:
    """The CSV rows without the wall time, and every split's numbers from uci.json."""
    rows = [{k: v for k, v in r.items() if k != "wall_s"}
            for r in csv.DictReader((out / "uci.csv").open())]
    splits = [r["splits"] for r in json.loads((out / "uci.json").read_text())["results"]]
    return rows, splits


def test_resume_after_an_interrupt_gives_the_straight_run_bit_for_bit(
        root: Path, tmp_path: Path, trained: list[int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dropkit.bench import uci_checkpoint

    per_batch = ["--splits-per-batch", "1"]  # 3 groups per data set
    assert _bench(root, tmp_path / "straight", *per_batch) == 0
    assert len(trained) == 2 * 3 * 2  # data sets x groups x (grid, retrain)
    straight = _table(tmp_path / "straight")
    config = json.loads((tmp_path / "straight" / "uci.json").read_text())["results"][0]
    assert config["config"]["splits_per_batch"] == 1

    out = tmp_path / "cut"
    out.mkdir()
    (out / "uci.md").write_text("previous table")
    real_save = uci_checkpoint.Checkpoints.save
    saves: list[int] = []

    def save_then_ctrl_c(self, dataset, result) -> None:  # noqa: ANN001
        real_save(self, dataset, result)
        saves.append(1)
        if len(saves) == 4:  # toy done (3 groups), toy2 after its first group
            raise KeyboardInterrupt

    monkeypatch.setattr(uci_checkpoint.Checkpoints, "save", save_then_ctrl_c)
    trained.clear()
    assert _bench(root, out, *per_batch) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "dropkit bench uci: interrupted"
    assert (out / "uci.md").read_text() == "previous table"  # the old set, untouched
    assert not (out / "uci.csv").exists()

    monkeypatch.setattr(uci_checkpoint.Checkpoints, "save", real_save)
    trained.clear()
    assert _bench(root, out, *per_batch, "--resume") == 0
    assert len(trained) == 2 * 2  # only toy2's last two groups
    assert _table(out) == straight

    # a resume with other settings is refused, naming what changed
    capsys.readouterr()
    assert _bench(root, out, "--splits-per-batch", "3", "--resume") == 2
    line = _error_line(capsys)
    assert "--resume needs the settings and data of the interrupted run" in line
    assert "splits_per_batch=1 (now 3)" in line


def test_diverged_training_is_an_error_not_nan_in_the_table(tmp_path: Path) -> None:
    from dropkit.bench.uci_config import UCIConfig

    write_uci_layout(tmp_path)
    dataset = load_uci("toy", tmp_path)
    config = UCIConfig.quick(epochs=2, mc_samples=10, lr=1e30, backend="torch")
    with pytest.raises(DropkitValueError, match="non-finite test metrics.*training diverged"):
        uci_protocol.run_uci(dataset, config)
