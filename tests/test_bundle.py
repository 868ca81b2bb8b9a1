"""The bundle format: every tampering the manifest is meant to catch is caught, with one clear line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casavox.runtime import bundle as fmt


def make_bundle(root: Path) -> Path:
    root.mkdir()
    (root / "asr").mkdir()
    (root / "asr" / "a.onnx").write_bytes(b"graph-a" * 100)
    (root / "asr" / "tok.json").write_text('{"x": 1}')
    manifest = fmt.new_manifest()
    for rel in ("asr/a.onnx", "asr/tok.json"):
        fmt.add_file(root, manifest, rel)
    manifest["graphs"]["asr/a.onnx"] = {
        "component": "asr",
        "role": "encoder",
        "quant": "fp32",
        "inputs": [],
        "outputs": [],
    }
    manifest["components"]["asr"] = {"tokenizer_file": "asr/tok.json"}
    fmt.write_manifest(root, manifest)
    return root


def test_valid_bundle_verifies(tmp_path: Path) -> None:
    b = fmt.verify(make_bundle(tmp_path / "b"))
    assert b.component("asr")["tokenizer_file"] == "asr/tok.json"
    assert b.path("asr/a.onnx").is_file()


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: (r / "asr" / "a.onnx").unlink(), "missing file asr/a.onnx"),
        (lambda r: (r / "asr" / "a.onnx").write_bytes(b"graph-a" * 50), "truncated"),
        (lambda r: (r / "asr" / "a.onnx").write_bytes(b"graph-b" * 100), "does not match its sha256"),
        (lambda r: (r / "manifest.json").unlink(), "no manifest.json"),
        (lambda r: (r / "manifest.json").write_text("{not json"), "not valid JSON"),
    ],
)
def test_tampering_is_caught(tmp_path: Path, tamper, message: str) -> None:
    root = make_bundle(tmp_path / "b")
    tamper(root)
    with pytest.raises(fmt.BundleError, match=message):
        fmt.verify(root)


def test_referenced_but_unlisted_file(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    m = _manifest(root)
    (root / "asr" / "extra.npy").write_bytes(b"123")
    m["components"]["asr"]["mel_filters_file"] = "asr/extra.npy"
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(fmt.BundleError, match="asr/extra.npy is referenced but not listed"):
        fmt.verify(root)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    m = _manifest(root)
    m["format_version"] = fmt.FORMAT_VERSION + 1
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(fmt.BundleError, match="newer than this runtime supports"):
        fmt.verify(root)


def test_path_escape_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    m = _manifest(root)
    m["files"]["../outside"] = {"sha256": "0", "size": 0}
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(fmt.BundleError, match="escapes the bundle"):
        fmt.verify(root)


def test_no_hash_mode_still_catches_truncation_but_not_same_size_edits(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (root / "asr" / "a.onnx").write_bytes(b"graph-b" * 100)  # same size, other bytes
    fmt.verify(root, hash_files=False)  # documented: sizes only
    (root / "asr" / "a.onnx").write_bytes(b"g")
    with pytest.raises(fmt.BundleError, match="truncated"):
        fmt.verify(root, hash_files=False)


def test_unlisted_path_cannot_be_opened(tmp_path: Path) -> None:
    b = fmt.verify(make_bundle(tmp_path / "b"))
    with pytest.raises(fmt.BundleError, match="not listed"):
        b.path("asr/other.onnx")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", *args], capture_output=True, text=True
    )


def test_cli_verify_real_bundle_and_tampered_copy(asr_bundle: Path, tmp_path: Path) -> None:
    ok = _cli("verify", str(asr_bundle))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:") and "asr" in ok.stdout
    copy = tmp_path / "copy"
    shutil.copytree(asr_bundle, copy)
    graph = copy / "asr" / "decoder.int8.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle of the weights
    graph.write_bytes(bytes(data))
    bad = _cli("verify", str(copy))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0  # one line
    assert "decoder.int8.onnx does not match its sha256" in bad.stderr
    # The runtime verifies on load too: transcribing with the tampered bundle is refused.
    refused = _cli("transcribe", str(copy), __file__)
    assert refused.returncode == 1 and "does not match its sha256" in refused.stderr


def test_manifest_records_graphs_parity_and_versions(asr_bundle: Path) -> None:
    m = fmt.load_manifest(asr_bundle)
    assert m["sources"]["whisper"]["sha256"] and len(m["sources"]["whisper"]["sha256"]) == 64
    asr = m["components"]["asr"]
    assert set(asr["variants"]) == {"fp32", "int8", "fp16"}
    for name, variant in asr["variants"].items():
        p = variant["parity"]
        assert p["clips"] >= 8 and p["wer_vs_reference"] <= p["max_wer_allowed"] <= 0.10, name
        graph = m["graphs"][variant["decoder_file"]]
        assert graph["quant"] == name and graph["opset"] >= 17
        names = [i["name"] for i in graph["inputs"]]
        assert names == ["tokens", "self_k", "self_v", "cross_k", "cross_v"]
        assert "past" in graph["inputs"][1]["shape"]
    assert asr["variants"]["fp32"]["parity"]["max_abs_logit_diff"] < 1e-2
    for lib in ("torch", "onnx", "onnxruntime", "transformers"):
        assert lib in m["versions"]


def test_subset_keeps_only_what_one_device_runs(full_bundle: Path, clips, tmp_path: Path) -> None:
    """`casavox subset`: the copy verifies with hashes, lists exactly the kept graphs and their
    tokenizers, and transcribes like the original."""
    full = fmt.verify(full_bundle, hash_files=False).manifest
    done = _cli(
        "subset", str(full_bundle), "--out", str(tmp_path / "cpu"), "--keep", "asr=int8", "--keep", "llm="
    )
    assert done.returncode == 0, done.stderr
    small = fmt.verify(tmp_path / "cpu").manifest
    assert set(small["components"]) == {"asr"}
    assert set(small["components"]["asr"]["variants"]) == {"int8"}
    kept = set(small["files"])
    assert kept == {
        "asr/encoder.int8.onnx",
        "asr/decoder.int8.onnx",
        "asr/tokenizer.json",
        "asr/mel_filters.npy",
    }
    assert set(small["graphs"]) == {"asr/encoder.int8.onnx", "asr/decoder.int8.onnx"}
    assert all(small["files"][rel] == full["files"][rel] for rel in kept)
    from casavox.runtime.asr.transcriber import load_transcriber

    original = load_transcriber(full_bundle, "int8", verify_hashes=False)
    copy = load_transcriber(tmp_path / "cpu", "int8")
    assert copy.transcribe(clips[0].audio).text == original.transcribe(clips[0].audio).text


def test_subset_keeps_external_weights_and_verify_requires_them_listed(
    full_bundle: Path, tmp_path: Path
) -> None:
    llm_variant = next(iter(fmt.verify(full_bundle, hash_files=False).component("llm")["variants"]))
    out = tmp_path / "llm"
    b = fmt.subset(full_bundle, out, {"asr": [], "llm": [llm_variant]})
    data_files = b.component("llm")["variants"][llm_variant]["data_files"]
    assert data_files and all(rel in b.manifest["files"] for rel in data_files)
    assert b.component("llm")["default_variant"] == llm_variant
    m = _manifest(out)
    del m["files"][data_files[0]]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(fmt.BundleError, match=f"{data_files[0]} is referenced but not listed"):
        fmt.verify(out)


def test_subset_refuses_an_unknown_variant_and_a_used_folder(full_bundle: Path, tmp_path: Path) -> None:
    bad = _cli("subset", str(full_bundle), "--out", str(tmp_path / "x"), "--keep", "asr=fp64")
    assert bad.returncode == 1 and "asr has no variant fp64" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    bad = _cli("subset", str(full_bundle), "--out", str(used), "--keep", "asr=int8")
    assert bad.returncode == 1 and "not empty" in bad.stderr
    assert (used / "notes.txt").read_text() == "mine"


def _write_raw(root: Path, manifest: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"x": 1}')  # same bytes: hashes and sizes would all agree
    (root / "asr" / "tok.json").unlink()
    (root / "asr" / "tok.json").symlink_to(outside)
    with pytest.raises(fmt.BundleError, match="asr/tok.json is a symbolic link"):
        fmt.verify(root)


def test_a_symlinked_folder_or_unlisted_link_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    shutil.move(root / "asr", tmp_path / "asr-elsewhere")
    (root / "asr").symlink_to(tmp_path / "asr-elsewhere")
    with pytest.raises(fmt.BundleError, match="asr is a symbolic link"):
        fmt.verify(root)
    other = make_bundle(tmp_path / "c")
    (other / "notes").mkdir()
    (other / "notes" / "link").symlink_to("/etc/passwd")
    with pytest.raises(fmt.BundleError, match="notes/link is a symbolic link"):
        fmt.verify(other)


def test_the_bundle_folder_itself_may_be_a_link(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (tmp_path / "current").symlink_to(root)
    assert fmt.verify(tmp_path / "current").path("asr/a.onnx").is_file()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=True), "format_version must be an integer from 1, not true"),
        (lambda m: m.update(format_version=-5), "format_version must be an integer from 1, not -5"),
        (lambda m: m.update(format_version=0), "format_version must be an integer from 1, not 0"),
        (lambda m: m.update(format_version="1"), 'format_version must be an integer from 1, not "1"'),
        (lambda m: m.update(format_version=1.0), "format_version must be an integer from 1, not 1.0"),
        (lambda m: m.pop("format_version"), "format_version must be an integer from 1, not null"),
        (lambda m: m["files"].update({"asr/a.onnx": "abc"}), "files.asr/a.onnx must be an object"),
        (
            lambda m: m["files"]["asr/a.onnx"].update(size="700"),
            "files.asr/a.onnx.size must be a whole number",
        ),
        (
            lambda m: m["files"]["asr/a.onnx"].update(size=True),
            "files.asr/a.onnx.size must be a whole number",
        ),
        (
            lambda m: m["files"]["asr/a.onnx"].update(sha256=7),
            "files.asr/a.onnx.sha256 must be 64 hex digits",
        ),
        (lambda m: m.update(files=["asr/a.onnx"]), "'files' missing or not an object"),
        (lambda m: m["graphs"].update({"asr/a.onnx": []}), "graphs.asr/a.onnx must be an object"),
        (lambda m: m["components"].update(asr="asr"), "components.asr must be an object"),
        (lambda m: m.update(engines=[]), "'engines' must be an object"),
        (lambda m: m["files"].update({"": {"sha256": "0" * 64, "size": 0}}), "escapes the bundle"),
        (lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64, "size": 0}}), "escapes the bundle"),
    ],
)
def test_a_malformed_manifest_is_one_line(tmp_path: Path, edit, message: str) -> None:
    root = make_bundle(tmp_path / "b")
    m = _manifest(root)
    edit(m)
    _write_raw(root, m)
    with pytest.raises(fmt.BundleError, match=re.escape(message)) as info:
        fmt.verify(root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("depth", [fmt.MAX_DEPTH + 5, 100_000])
def test_deep_nesting_is_one_line(tmp_path: Path, depth: int) -> None:
    root = make_bundle(tmp_path / "b")
    text = (root / "manifest.json").read_text()
    deep = "[" * depth + "]" * depth
    (root / "manifest.json").write_text(text.replace('"versions": {}', f'"versions": {{"x": {deep}}}'))
    with pytest.raises(fmt.BundleError, match="nested too deeply"):
        fmt.verify(root)


def test_cli_malformed_manifest_is_one_line_without_traceback(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    m = _manifest(root)
    m["files"]["asr/a.onnx"] = "abc"
    _write_raw(root, m)
    bad = _cli("verify", str(root))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "must be an object" in bad.stderr
