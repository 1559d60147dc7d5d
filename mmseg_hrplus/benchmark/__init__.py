"""The parts of ``tools/benchmark.py`` (timing our models against their mmseg reference with the
same weights), one concept per module:

* :mod:`.build`: a config's model for timing (no checkpoint, SyncBN as BN);
* :mod:`.weights`: the same weights in both models (BN calibration, converters);
* :mod:`.steps`: the timed calls (a batch, one inference, one training step);
* :mod:`.timing`: interleaved repeats and their min/median/speed-up summary;
* :mod:`.memory`: the peak memory of one training step, in a process of its own
  (``python -m mmseg_hrplus.benchmark.memory``);
* :mod:`.onnxruntime_peer`: our model exported to ONNX and run by onnxruntime.
"""
