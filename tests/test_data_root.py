"""Data root resolution, the registry's missing-file errors, and checksummed fetching (local server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgformer.cli.main import main
from ledgformer.data import fetch as fetch_mod
from ledgformer.data.fetch import download, fetch_dataset, fetch_plan, verify_dataset
from ledgformer.data.registry import BENCHMARKS, DATASETS, list_benchmarks, load_benchmark
from ledgformer.data.root import resolve_data_root
from ledgformer.errors import LedgformerError


def test_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEDGFORMER_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("LEDGFORMER_DATA")
    default = resolve_data_root()
    assert default.name == "data" and "ledgformer" in str(default)


def test_missing_file_error_names_file_root_and_fix(tmp_path: Path) -> None:
    with pytest.raises(LedgformerError) as err:
        load_benchmark("help-nb201", tmp_path)
    msg = str(err.value)
    assert "help/nasbench201/str_arch2idx.pt" in msg and str(tmp_path) in msg
    assert "ledgformer data fetch help" in msg and "\n" not in msg
    with pytest.raises(LedgformerError, match=r"nasbench_only108\.tfrecord"):
        load_benchmark("nb101-official", tmp_path)
    with pytest.raises(LedgformerError, match="unknown benchmark 'nope'"):
        load_benchmark("nope", tmp_path)


def test_registry_is_consistent() -> None:
    names = [b.name for b in list_benchmarks()]
    assert {"help-nb201", "help-fbnet", "help-ofa", "nb201-cifar10", "nb201-cifar100",
            "nb201-imagenet16", "nb101-cifar10", "mini-nb201-cifar10", "accel-nasbench"} <= set(names)
    for b in BENCHMARKS.values():
        assert b.dataset in DATASETS and set(b.files) <= set(DATASETS[b.dataset].files), b.name
    # every fetchable file has a pinned URL and a reference checksum
    for name, ds in DATASETS.items():
        if ds.fetchable:
            assert all(item.url.startswith("https://") and len(item.sha256) == 64
                       for item in fetch_plan(name))


def test_reference_checksums_match_shared_data(data_root: Path) -> None:
    for name, ds in DATASETS.items():
        if ds.fetchable:
            assert verify_dataset(name, data_root) == {}, name


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving a temporary folder (stops by itself)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_download_checksum_ok_and_mismatch(server: tuple[str, Path], tmp_path: Path) -> None:
    base, served = server
    payload = b"ledgformer" * 1000
    (served / "f.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "root" / "sub" / "f.bin"
    assert download(f"{base}/f.bin", dest, good).read_bytes() == payload
    dest2 = tmp_path / "root" / "g.bin"
    with pytest.raises(LedgformerError, match="checksum mismatch") as err:
        download(f"{base}/f.bin", dest2, "0" * 64)
    assert "nothing was written" in str(err.value)
    assert not dest2.exists() and not dest2.with_name("g.bin.part").exists()
    with pytest.raises(LedgformerError, match="HTTP 404"):
        download(f"{base}/absent.bin", tmp_path / "root" / "h.bin", None)
    assert list((tmp_path / "root").iterdir()) == [dest.parent]


def test_unreachable_host_fails_fast_with_instructions(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.pt"
    with pytest.raises(LedgformerError) as err:
        download(url, tmp_path / "x.pt", None, timeout=5)
    msg = str(err.value)
    assert msg.startswith(f"cannot reach 127.0.0.1:{port}") and url in msg and str(tmp_path / "x.pt") in msg
    assert not any(tmp_path.iterdir())


def test_fetch_dataset_through_mirror(server: tuple[str, Path], data_root: Path, tmp_path: Path) -> None:
    base, served = server
    for item in fetch_plan("mini_nasbench201"):  # lay the originals out as the upstream URLs
        rel = item.url.removeprefix(fetch_mod.RAW).lstrip("/")
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / item.path, served / rel)
    root = tmp_path / "root"
    got = fetch_dataset("mini_nasbench201", root, mirror=base, show_progress=False)
    assert sorted(p.relative_to(root).as_posix() for p in got) == sorted(DATASETS["mini_nasbench201"].files)
    assert verify_dataset("mini_nasbench201", root) == {}
    assert fetch_dataset("mini_nasbench201", root, mirror=base, show_progress=False) == []  # all valid
    (root / "mini_nasbench201" / "LICENSE").write_text("tampered")
    assert "sha256 differs" in verify_dataset("mini_nasbench201", root)["mini_nasbench201/LICENSE"]


def test_fetch_not_downloadable_dataset_explains(tmp_path: Path) -> None:
    with pytest.raises(LedgformerError, match=r"storage\.googleapis\.com/nasbench"):
        fetch_dataset("nasbench101", tmp_path)


def test_cli_data_list_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--data-root", str(tmp_path), "--no-count"]) == 0
    out = capsys.readouterr().out
    assert "help-nb201" in out and "missing" in out
    assert main(["data", "info", "help-ofa", "--data-root", str(tmp_path)]) == 2
    assert "missing help/ofa/" in capsys.readouterr().err
    assert main(["data", "fetch", "help-nb201", "--data-root", str(tmp_path),
                 "--mirror", "http://127.0.0.1:9"]) == 2
    assert "cannot reach 127.0.0.1:9" in capsys.readouterr().err


def test_fetch_naslib_extracts_the_zero_cost_zip(server: tuple[str, Path], data_root: Path,
                                                 tmp_path: Path) -> None:
    import zipfile

    base, served = server
    for item in fetch_plan("naslib"):
        rel = item.url.removeprefix(fetch_mod.RAW).lstrip("/")
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / item.path, served / rel)
    zip_rel = fetch_mod._ZEN_ZIP.removeprefix(fetch_mod.RAW).lstrip("/")
    (served / zip_rel).parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(served / zip_rel, "w") as zf:  # NB201 chunks plus an unrelated member
        for f in sorted((data_root / "naslib" / "nb201_zen_run").iterdir()):
            zf.write(f, f"all_benchmarks/{f.name}")
        zf.writestr("all_benchmarks/benchmark--nasbench301--cifar10--0.json", "[]")
    root = tmp_path / "root"
    fetch_dataset("naslib", root, mirror=base, show_progress=False)
    assert verify_dataset("naslib", root) == {}
    assert len(list((root / "naslib" / "nb201_zen_run").iterdir())) == 189
    assert not [p for p in root.iterdir() if p.name != "naslib"]  # temp folder cleaned up
