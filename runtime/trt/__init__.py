"""TensorRT: optimization profiles for the GPU graphs, engines built on the target device, and the
check that an engine belongs to the GPU and TensorRT version it is about to run on.

Engines run through onnxruntime's TensorRT execution provider (an ``EPContext`` wrapper graph points
at the engine file), so the GPU path keeps one runtime, IO binding and the CPU fallback.
"""
