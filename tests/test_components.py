"""Typed bundle components: the manifest JSON is unchanged, malformed entries fail with one line naming
the key, and every component key is spelled only in casavox.runtime.components."""

from __future__ import annotations

import ast
import copy
import dataclasses
import io
import json
import tokenize
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from casavox.runtime import bundle as fmt
from casavox.runtime.asr.transcriber import TrimPolicy
from casavox.runtime.components import AsrComponent, AsrVariant, LlmComponent, LlmPrompt, LlmVariant

ROOT = Path(__file__).resolve().parents[1]


def asr_entry_as_exported() -> dict:
    """``components.asr`` exactly as export/asr/pipeline.py wrote it before the typed classes
    (the dict literal of that code, with a small fake source and parity figures)."""
    variants = {}
    for quant in ("fp32", "int8", "fp16"):
        variants[quant] = {
            "encoder_file": f"asr/encoder.{quant}.onnx",
            "decoder_file": f"asr/decoder.{quant}.onnx",
            "quant": quant,
        }
    component = {
        "model": "whisper",
        "source": "ctranslate2:tiny.en",
        "sample_rate": 16000,
        "n_mels": 80,
        "n_fft": 400,
        "hop_length": 160,
        "prompt": [50257, 50362],
        "eot": 50256,
        "no_speech": 50361,
        "suppress": [1, 2, 7, 50257],
        "begin_suppress": [220, 50256],
        "max_tokens": 224,
        "trim": asdict(TrimPolicy()),
        "tokenizer_file": "asr/tokenizer.json",
        "mel_filters_file": "asr/mel_filters.npy",
        "variants": variants,
    }
    for quant, v in variants.items():  # added after hashing, as the exporter does
        v["parity"] = {"clips": 8, "wer_vs_reference": 0.0, "reference": "pytorch-eager-fp32"}
        v["parity"]["max_wer_allowed"] = {"fp32": 0.025, "fp16": 0.05, "int8": 0.1}[quant]
    return component


def llm_entry_as_exported() -> dict:
    """``components.llm`` exactly as export/llm/pipeline.py wrote it before the typed classes."""
    variants = {
        "int8": {
            "file": "llm/model.int8.onnx",
            "data_files": ["llm/model.int8.onnx.data"],
            "quant": "int8",
            "provider": "cpu",
        },
        "fp16": {"file": "llm/model.fp16.onnx", "data_files": [], "quant": "fp16", "provider": "cuda"},
    }
    component = {
        "model": "smollm2-135m-instruct+casavox-lora",
        "source": "gguf:smollm2-135m",
        "adapter_sha256": None,
        "tokenizer_file": "llm/tokenizer.json",
        "intent_spec_file": "llm/intent_spec.json",
        "eos_token_id": 2,
        "num_layers": 30,
        "num_kv_heads": 3,
        "head_dim": 64,
        "max_new_tokens": 96,
        "prompt": {"prefix": "<|im_start|>system\n...", "suffix": "<|im_end|>\n", "end": "<|im_end|>"},
        "default_variant": "int8",
        "variants": variants,
    }
    variants["fp16"]["parity"] = {"measured": False, "reason": "needs the cuda execution provider"}
    variants["int8"]["parity"] = {"token_agreement": 0.99, "task_accuracy": 0.7, "measured": True}
    return component


def _same_json(a: dict, b: dict) -> bool:
    """Equal, and written as the same bytes (key order included)."""
    return a == b and json.dumps(a, indent=2) == json.dumps(b, indent=2)


@pytest.mark.parametrize(
    ("cls", "entry"), [(AsrComponent, asr_entry_as_exported), (LlmComponent, llm_entry_as_exported)]
)
def test_an_entry_written_by_the_old_exporter_loads_and_round_trips(cls, entry) -> None:
    raw = entry()
    component = cls.from_manifest(copy.deepcopy(raw))
    assert _same_json(component.to_manifest(), raw)
    assert cls.from_manifest(component.to_manifest()) == component


def test_the_typed_exporter_code_writes_the_same_json() -> None:
    """What the exporters now build from the classes is the old dict, byte for byte."""
    old_asr = asr_entry_as_exported()
    variants = {
        q: AsrVariant(encoder_file=f"asr/encoder.{q}.onnx", decoder_file=f"asr/decoder.{q}.onnx", quant=q)
        for q in ("fp32", "int8", "fp16")
    }
    asr = AsrComponent(
        model="whisper",
        source="ctranslate2:tiny.en",
        sample_rate=16000,
        n_mels=80,
        n_fft=400,
        hop_length=160,
        prompt=(50257, 50362),
        eot=50256,
        no_speech=50361,
        suppress=(1, 2, 7, 50257),
        begin_suppress=(220, 50256),
        max_tokens=224,
        trim=asdict(TrimPolicy()),
        tokenizer_file="asr/tokenizer.json",
        mel_filters_file="asr/mel_filters.npy",
        variants=variants,
    )
    before_parity = copy.deepcopy(old_asr)
    for v in before_parity["variants"].values():
        del v["parity"]
    assert _same_json(asr.to_manifest(), before_parity)  # what the parity check loads
    parity = {q: v["parity"] for q, v in old_asr["variants"].items()}
    asr = replace(asr, variants={q: replace(v, parity=parity[q]) for q, v in asr.variants.items()})
    assert _same_json(asr.to_manifest(), old_asr)

    old_llm = llm_entry_as_exported()
    llm = LlmComponent(
        model="smollm2-135m-instruct+casavox-lora",
        source="gguf:smollm2-135m",
        adapter_sha256=None,
        tokenizer_file="llm/tokenizer.json",
        intent_spec_file="llm/intent_spec.json",
        eos_token_id=2,
        num_layers=30,
        num_kv_heads=3,
        head_dim=64,
        max_new_tokens=96,
        prompt=LlmPrompt(prefix="<|im_start|>system\n...", suffix="<|im_end|>\n", end="<|im_end|>"),
        default_variant="int8",
        variants={
            "int8": LlmVariant(
                file="llm/model.int8.onnx",
                data_files=("llm/model.int8.onnx.data",),
                quant="int8",
                provider="cpu",
                parity=old_llm["variants"]["int8"]["parity"],
            ),
            "fp16": LlmVariant(
                file="llm/model.fp16.onnx",
                quant="fp16",
                provider="cuda",
                parity=old_llm["variants"]["fp16"]["parity"],
            ),
        },
    )
    assert _same_json(llm.to_manifest(), old_llm)


def test_keys_written_after_the_export_survive() -> None:
    """bundle.subset adds default_variant to asr; lm_head_int4 adds a note; unknown keys are kept."""
    asr = asr_entry_as_exported()
    asr["default_variant"] = "int8"
    asr["variants"]["int8"]["calibrated_on"] = "piper"  # a key this runtime does not know
    assert _same_json(AsrComponent.from_manifest(copy.deepcopy(asr)).to_manifest(), asr)
    llm = llm_entry_as_exported()
    llm["variants"]["int8"]["note"] = "lm_head re-quantized to 4 bits (benchmarks/lm_head_int4.py)"
    llm["future_key"] = {"x": 1}
    loaded = LlmComponent.from_manifest(copy.deepcopy(llm))
    assert loaded.variants["int8"].note.startswith("lm_head")
    assert _same_json(loaded.to_manifest(), llm)


def test_keys_the_runtime_always_defaulted_keep_their_defaults() -> None:
    asr = asr_entry_as_exported()
    for key in ("max_tokens", "trim", "no_speech"):
        del asr[key]
    loaded = AsrComponent.from_manifest(asr)
    assert (loaded.max_tokens, loaded.no_speech, TrimPolicy.from_manifest(loaded.trim)) == (
        224,
        None,
        TrimPolicy(),
    )
    llm = llm_entry_as_exported()
    for key in ("max_new_tokens", "default_variant", "adapter_sha256"):
        del llm[key]
    del llm["variants"]["fp16"]["data_files"]
    loaded = LlmComponent.from_manifest(llm)
    assert (loaded.max_new_tokens, loaded.default_variant, loaded.adapter_sha256) == (96, "int8", None)
    assert loaded.variants["fp16"].data_files == ()


def test_the_trim_policy_reads_what_the_exporter_recorded() -> None:
    assert TrimPolicy.from_manifest(asdict(TrimPolicy())) == TrimPolicy()
    assert TrimPolicy.from_manifest({"bucket_s": 4, "enabled": False}) == TrimPolicy(
        bucket_s=4.0, enabled=False
    )
    with pytest.raises(fmt.BundleError, match=r"^components\.asr\.trim\.pad_s: expected a number, got str$"):
        TrimPolicy.from_manifest({"pad_s": "0.5"})


def _drop(path: tuple[str, ...]):
    def edit(entry: dict) -> None:
        for key in path[:-1]:
            entry = entry[key]
        del entry[path[-1]]

    return edit


def _set(path: tuple[str, ...], value):
    def edit(entry: dict) -> None:
        for key in path[:-1]:
            entry = entry[key]
        entry[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("cls", "entry", "edit", "message"),
    [
        (AsrComponent, asr_entry_as_exported, _drop(("eot",)), "components.asr.eot: missing"),
        (
            AsrComponent,
            asr_entry_as_exported,
            _set(("eot",), "50256"),
            "components.asr.eot: expected an integer, got str",
        ),
        (
            AsrComponent,
            asr_entry_as_exported,
            _set(("n_mels",), True),
            "components.asr.n_mels: expected an integer, got bool",
        ),
        (
            AsrComponent,
            asr_entry_as_exported,
            _set(("suppress",), [1, "2"]),
            "components.asr.suppress: expected a list of integers, got list",
        ),
        (
            AsrComponent,
            asr_entry_as_exported,
            _drop(("variants", "int8", "encoder_file")),
            "components.asr.variants.int8.encoder_file: missing",
        ),
        (
            AsrComponent,
            asr_entry_as_exported,
            _set(("variants", "fp16"), ["asr/encoder.fp16.onnx"]),
            "components.asr.variants.fp16: expected an object, got list",
        ),
        (
            LlmComponent,
            llm_entry_as_exported,
            _drop(("head_dim",)),
            "components.llm.head_dim: missing",
        ),
        (
            LlmComponent,
            llm_entry_as_exported,
            _set(("prompt", "prefix"), None),
            "components.llm.prompt.prefix: expected a string, got null",
        ),
        (
            LlmComponent,
            llm_entry_as_exported,
            _set(("variants", "int8", "data_files"), "llm/model.int8.onnx.data"),
            "components.llm.variants.int8.data_files: expected a list of strings, got str",
        ),
    ],
)
def test_a_missing_or_mistyped_key_is_one_line_naming_it(cls, entry, edit, message: str) -> None:
    raw = entry()
    edit(raw)
    with pytest.raises(fmt.BundleError) as info:
        cls.from_manifest(raw)
    assert str(info.value) == message


def test_from_bundle_names_the_bundle_and_the_key(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    manifest = fmt.new_manifest()
    manifest["components"]["asr"] = asr_entry_as_exported()
    del manifest["components"]["asr"]["mel_filters_file"]
    fmt.write_manifest(root, manifest)
    bundle = fmt.Bundle(root, fmt.load_manifest(root))  # no files: verify would refuse the references
    with pytest.raises(fmt.BundleError) as info:
        AsrComponent.from_bundle(bundle)
    assert str(info.value) == f"{root}: components.asr.mel_filters_file: missing"
    with pytest.raises(fmt.BundleError, match="bundle has no 'llm' component"):
        LlmComponent.from_bundle(bundle)


def test_the_exporter_refuses_to_write_what_it_could_not_read() -> None:
    good = AsrComponent.from_manifest(asr_entry_as_exported())
    with pytest.raises(fmt.BundleError, match=r"components\.asr\.n_mels: expected an integer, got float"):
        replace(good, n_mels=80.0).to_manifest()


def _component_keys() -> set[str]:
    keys = set()
    for cls in (AsrComponent, AsrVariant, LlmComponent, LlmVariant, LlmPrompt):
        keys |= {f.name for f in dataclasses.fields(cls) if not f.metadata.get("extra")}
    return keys


# Component keys that are also ordinary words of other formats (graph and engine entries have
# "file"/"quant"/"parity"; the Whisper source and the decoder have "prompt"/"eot"/"no_speech"...),
# so a literal of them elsewhere is not a component read. "variants"/"default_variant" are the
# generic part every component shares and live in runtime/bundle.py.
SHARED_WORDS = {
    "model",
    "source",
    "file",
    "quant",
    "parity",
    "note",
    "prompt",
    "eot",
    "no_speech",
    "max_tokens",
    "prefix",
    "suffix",
    "end",
    "variants",
    "default_variant",
}


def test_no_component_key_is_spelled_outside_the_component_module() -> None:
    keys = _component_keys() - SHARED_WORDS
    assert {"encoder_file", "decoder_file", "data_files", "head_dim", "mel_filters_file"} <= keys
    found = []
    for folder in ("runtime", "export", "edge_app", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "runtime" / "components.py":
                continue
            for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
                if tok.type != tokenize.STRING:
                    continue
                try:
                    value = ast.literal_eval(tok.string)
                except (ValueError, SyntaxError):
                    continue  # f-strings and the like
                if value in keys:
                    found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {value!r}")
    assert not found, "component keys read or written outside runtime/components.py:\n" + "\n".join(found)


def test_a_real_exported_asr_bundle_round_trips(asr_bundle: Path) -> None:
    raw = fmt.load_manifest(asr_bundle)["components"]["asr"]
    assert _same_json(AsrComponent.from_manifest(copy.deepcopy(raw)).to_manifest(), raw)


def test_a_real_exported_llm_bundle_round_trips(llm_bundle: Path) -> None:
    raw = fmt.load_manifest(llm_bundle)["components"]["llm"]
    assert _same_json(LlmComponent.from_manifest(copy.deepcopy(raw)).to_manifest(), raw)
