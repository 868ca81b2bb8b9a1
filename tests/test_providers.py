"""Execution-provider choice: the best device that really works here, and why others were skipped."""

from __future__ import annotations

import logging

import pytest

from casavox.runtime import providers
from casavox.runtime.providers import DeviceError, available_devices, resolve_device, unavailable_reason


def test_auto_takes_the_best_device_and_says_once_why_better_ones_were_skipped(caplog) -> None:
    providers._note_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="casavox.providers"):
        first = resolve_device("auto")
        assert resolve_device("auto") == first
    assert first == available_devices()[0]
    skipped = providers.PREFERENCE[: providers.PREFERENCE.index(first)]
    for device in skipped:
        lines = [r.getMessage() for r in caplog.records if f"skipping {device}:" in r.getMessage()]
        assert len(lines) == 1, lines  # logged once, with its reason
        assert unavailable_reason(device) in lines[0]


@pytest.mark.skipif("cuda" in available_devices(), reason="this machine has a working CUDA provider")
def test_a_named_gpu_that_is_not_here_is_refused_with_the_reason() -> None:
    with pytest.raises(DeviceError, match="not available: ") as err:
        resolve_device("cuda")
    assert str(err.value).endswith(unavailable_reason("cuda"))
    with pytest.raises(DeviceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_a_gpu_gets_the_fp16_graphs_and_the_cpu_the_int8_ones() -> None:
    from casavox.runtime.providers import preferred_variant

    assert preferred_variant("cpu", {"fp32": {}, "int8": {}, "fp16": {}}) == "int8"
    assert preferred_variant("cpu", {"fp16": {}}) == "fp16"  # the only one there is
    if "cuda" in available_devices():
        assert preferred_variant("cuda", {"fp32": {}, "int8": {}, "fp16": {}}) == "fp16"
