"""The suite installs like a library: a wheel carries the configs and benchmark definitions, and its commands
run from outside the checkout."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from e2e import TINY

from midms.record import RunRecord

ROOT = Path(__file__).resolve().parents[1]
# top-level folders of the checkout and the package they ship as
SHIPPED = {"midms": "midms", "baselines": "midms.baselines", "conf": "midms.conf", "benchmarks": "midms.benchmarks"}
NOT_SHIPPED = {"__pycache__", "results"}  # caches and benchmark outputs
SOURCES = {*SHIPPED, "pyproject.toml", "README.md"}  # what a wheel is built from


def test_the_package_list_names_every_folder_that_ships():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    expected = set()
    for folder, package in SHIPPED.items():
        for path in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if path.is_dir() and not NOT_SHIPPED & set(path.relative_to(ROOT).parts):
                expected.add(".".join([package, *path.relative_to(ROOT / folder).parts]))
    assert set(config["packages"]) == expected
    assert config["package-dir"] == {
        "midms.conf": "conf",
        "midms.benchmarks": "benchmarks",
        "midms.baselines": "baselines",
    }


def _package_dir(package: str) -> Path:
    top, *rest = package.split(".")
    shipped = {v: k for k, v in SHIPPED.items()}
    for name in sorted(shipped, key=len, reverse=True):  # midms.conf lives in conf/, midms.benchmarks in benchmarks/
        if package == name or package.startswith(name + "."):
            return ROOT / shipped[name] / Path(*package[len(name) + 1 :].split(".") if package != name else ())
    return ROOT / top / Path(*rest)


def _covered(path: Path, package: str, patterns: list[str]) -> bool:
    relative = path.relative_to(_package_dir(package))
    for pattern in patterns:  # setuptools: relative to the package folder; "**/" reaches into sub-folders
        if pattern.startswith("**/") and fnmatch.fnmatch(relative.name, pattern[3:]):
            return True
        if len(relative.parts) == 1 and fnmatch.fnmatch(relative.name, pattern):
            return True
    return False


def test_every_data_file_that_ships_is_named_in_the_package_data():
    """A file the code reads at run time (a config, a palette, a reference table) must be in the wheel too."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for folder, package in SHIPPED.items():
        for path in (ROOT / folder).rglob("*"):
            parts = path.relative_to(ROOT / folder).parts
            if path.is_dir() or path.suffix in {".py", ".pyc"} or NOT_SHIPPED & set(parts):
                continue
            owners = [".".join([package, *parts[:i]]) for i in range(len(parts))]  # its package and those above
            assert any(_covered(path, o, data.get(o, [])) for o in owners), f"{path} is not in package-data"


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The project built as a wheel (from a copy of its sources) and installed into a folder of its own."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "source"  # the build writes build/ next to pyproject.toml: build from a copy
    outputs = shutil.ignore_patterns("__pycache__", "*.egg-info", "results")
    shutil.copytree(ROOT, source, ignore=lambda d, names: [n for n in names if Path(d) == ROOT and n not in SOURCES]
                    + list(outputs(d, names)))  # fmt: skip
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("midms_bench-*.whl")
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    return wheel


def _site(wheel: Path) -> Path:
    return wheel.parents[1] / "site"


@pytest.mark.slow  # each installed command started in a fresh interpreter (17 s)
def test_the_wheel_installs_one_top_level_name_and_every_command_helps(installed_wheel, tmp_path, isolated_env):
    """``midms`` is the only import name the wheel adds (a top-level ``baselines`` would shadow, or be shadowed by,
    the PyPI project of that name); each command answers --help from outside the checkout."""
    with zipfile.ZipFile(installed_wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"midms"}
    site = _site(installed_wheel)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    env = {**isolated_env, "PYTHONPATH": str(site)}
    for name in scripts:
        proc = subprocess.run([str(site / "bin" / name), "--help"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0 and name in proc.stdout, (name, proc.stderr[-2000:])
    where = subprocess.run([sys.executable, "-c", "import midms.baselines.cocosnet.model as m; print(m.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr


@pytest.mark.slow  # an end-to-end run: the fast set stays under 10 minutes
def test_a_built_wheel_runs_its_commands_from_outside_the_checkout(installed_wheel, tmp_path, isolated_env):
    site = _site(installed_wheel)
    assert (site / "midms" / "conf" / "model" / "midms.yaml").is_file()
    assert (site / "midms" / "benchmarks" / "reference" / "published.csv").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**isolated_env, "PYTHONPATH": str(site)}  # the wheel's copy, not the checkout's editable install

    def command(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(site / "bin" / name), *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip

    where = subprocess.run([sys.executable, "-c", "import midms; print(midms.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    run_dir = elsewhere / "job"
    train = command("midms-train", *TINY, "model=copy_exemplar", "logger=none", f"hydra.run.dir={run_dir}")
    assert train.returncode == 0, train.stderr[-3000:]
    record = RunRecord.read(run_dir / "results.json")
    assert record.status == "completed" and record.metrics["psnr"] > 0
    report = command("midms-report", str(run_dir))
    assert report.returncode == 0 and "copy_exemplar" in report.stdout, report.stderr[-3000:]
    scored = command("midms-eval", "--fake", record.files["samples"], "--real", f"{record.files['reference']}/image",
                     "--metrics", "psnr", "--size", "32")  # fmt: skip
    assert scored.returncode == 0 and '"psnr"' in scored.stdout, scored.stderr[-3000:]
    check = command("midms-data-check", "dataset=synthetic", "dataset.image_size=32")
    assert check.returncode == 0 and "OK" in check.stdout, check.stderr[-3000:]
    bench = command("midms-benchmark", "no_such_matrix")  # the matrices ship with the package: it lists them
    assert bench.returncode != 0 and "'default'" in bench.stdout + bench.stderr
