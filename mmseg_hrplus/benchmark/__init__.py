"""The parts of ``tools/benchmark.py`` (timing our models against their mmseg reference with the
same weights), one concept per module:

* :mod:`.build`: a config's model for timing (no checkpoint, SyncBN as BN);
* :mod:`.weights`: the same weights in both models (BN calibration, converters);
* :mod:`.steps`: the timed calls (a batch, one inference, one training step);
* :mod:`.timing`: interleaved repeats and their min/median/speed-up summary;
* :mod:`.memory`: the peak memory of one training step, in a process of its own
  (``python -m mmseg_hrplus.benchmark.memory``);
* :mod:`.onnxruntime_peer`: our model exported to ONNX and run by onnxruntime;
* :mod:`.openvino_peer`: the same export compiled by OpenVINO.

The parts of ``tools/analysis_tools/deploy_accuracy.py`` (accuracy after deployment):

* :mod:`.deploy_paths`: the deployment paths by name (f32 PyTorch, optimised, onnxruntime,
  OpenVINO f32 / int8 / bf16, PyTorch bf16), each a logits function;
* :mod:`.deploy_data`: the config's test split pointed at a dataset folder, the calibration
  images;
* :mod:`.deploy_accuracy`: mIoU, label agreement and logit difference of each path against
  f32 PyTorch over the split;
* :mod:`.deploy_speed`: their speed and frames per second at given sizes;
* :mod:`.deploy_report`: the markdown tables, one page section per config.
"""
