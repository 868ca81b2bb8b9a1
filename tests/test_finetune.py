"""The fine-tuning code path on the real base model: data, a few LoRA steps, a usable adapter."""

from __future__ import annotations

import json
import random
from pathlib import Path

from casavox.export.llm.dataset import build_examples
from casavox.export.llm.homes import name_pools, random_home, sentence_case
from casavox.export.llm.sampler import sample_command
from casavox.export.llm.spec import domain_classes
from casavox.runtime.intents.prompt import PREFIX, SUFFIX
from casavox.runtime.intents.schema import ABSENT


def test_training_data_is_labelled_by_home_assistant(ha_intents) -> None:
    examples = build_examples(120, 7, ha_intents)
    kinds = {e.kind for e in examples}
    assert {"template", "paraphrase", "negative", "multi", "absent"} <= kinds
    for ex in examples:
        assert ex.prompt.startswith(PREFIX) and ex.prompt.endswith(SUFFIX)
        assert json.loads(ex.target.removesuffix("<|im_end|>")) == ex.intents
        names = {n for e in ex.home.exposed for n in e.names} | {"all"}
        for intent in ex.intents:
            name = intent["slots"].get("name")
            absent = [v for v in intent["slots"].values() if isinstance(v, str) and v.startswith(ABSENT)]
            # A name the home does not have is only ever a copy of the words said, in "absent" examples.
            assert not absent or ex.kind == "absent", (ex.text, intent)
            for value in absent:
                assert value[len(ABSENT) :] in ex.text.lower(), (ex.text, intent)
            if ex.kind == "absent":
                assert absent, (ex.text, intent)
            elif isinstance(name, str) and "Timer" not in intent["name"] and "List" not in intent["name"]:
                assert name in names, (ex.text, intent)  # labels only name the example's own home
    # Same seed, same data: the recipe is reproducible.
    assert [e.target for e in build_examples(30, 7, ha_intents)] == [e.target for e in examples[:30]]


def test_sampler_produces_home_assistant_labels(ha_intents) -> None:
    rng = random.Random(3)
    got = [s for _ in range(60) if (s := sample_command(rng, ha_intents, random_home(rng), None))]
    assert len(got) > 30
    assert all(s.intent.startswith("Hass") for s in got)


def test_training_homes_have_every_device_class_the_templates_ask_about(ha_intents) -> None:
    # A class no training home has is a question the model never sees answered: the cover class
    # "window" was missing ("close the kitchen windows" -> Kitchen Switch on the suite).
    have = {(d["domain"], d["device_class"]) for d in name_pools()["devices"] if d["device_class"]}
    for domain, classes in domain_classes(ha_intents).items():
        assert {(domain, c) for c in classes} <= have, domain


def test_training_names_come_in_title_and_sentence_case() -> None:
    assert sentence_case("Living Room PM2.5 Sensor") == "Living room PM2.5 sensor"
    assert sentence_case("Kitchen TV") == "Kitchen TV" and sentence_case("Desk Lamp") == "Desk lamp"
    rng = random.Random(5)
    names = [n for _ in range(40) for e in random_home(rng).exposed for n in e.names if " " in n]
    lower_rest = [n for n in names if any(w[:1].islower() for w in n.split()[1:])]
    assert 0.15 < len(lower_rest) / len(names) < 0.6  # both spellings, as real homes have them


def test_a_few_lora_steps_write_an_adapter(tmp_path: Path) -> None:
    from casavox.export.llm.finetune import finetune
    from casavox.export.llm.recipe import FinetuneConfig

    cfg = FinetuneConfig(steps=2, batch_size=2, train_examples=8, eval_examples=2)
    report = finetune(tmp_path / "adapter", config=cfg, progress=False)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size > 1_000_000
    recipe = json.loads((tmp_path / "adapter" / "recipe.json").read_text())
    assert recipe["config"]["steps"] == 2 and len(recipe["loss_curve"]) == 1
    assert report["held_out_eval"]["examples"] == 2
    assert report["final_loss"] > 0 and report["steps_run"] == 2


def test_stop_at_ends_a_longer_schedule_early(tmp_path: Path) -> None:
    from casavox.export.llm.finetune import finetune
    from casavox.export.llm.recipe import FinetuneConfig

    cfg = FinetuneConfig(
        steps=6, stop_at=2, batch_size=2, train_examples=8, eval_examples=2, checkpoint_every=1
    )
    report = finetune(tmp_path / "adapter", config=cfg, evaluate_after=False, progress=False,
                      checkpoint_dir=tmp_path / "ckpt")  # fmt: skip
    assert report["steps_run"] == 2 and report["config"]["stop_at"] == 2
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-1"]  # none past the stop


def test_every_training_answer_is_one_the_grammar_allows(intent_llm, ha_intents) -> None:
    # The model is trained on answers it can give on the device: each target, absent names included,
    # must be accepted whole by the answer grammar of its own home (runtime/intents/schema.py).
    import llguidance

    from casavox.runtime.intents.schema import answer_schema

    examples = build_examples(200, 5, ha_intents)
    assert sum(e.kind == "absent" for e in examples) >= 10
    rejected = []
    for ex in examples:
        matcher = llguidance.LLMatcher(
            intent_llm.ll_tokenizer, intent_llm.grammar(answer_schema(intent_llm.spec, ex.home)), log_level=0
        )
        ids = intent_llm.encode(ex.target.removesuffix("<|im_end|>"))
        if not (matcher.consume_tokens(ids) and matcher.is_accepting()):
            rejected.append((ex.kind, ex.text, ex.target))
    # Known gaps, not of the recipe: a relative volume step the exporter's spec sample never held
    # (an enum of seen steps), and Home Assistant's temperature template naming any entity ("temp of
    # Home Weather") where the grammar offers the intent only climate devices (IntentDef.domains).
    known = ("volume_step", "HassClimateGetTemperature")
    assert [r for r in rejected if not any(k in r[2] for k in known)] == [], rejected
