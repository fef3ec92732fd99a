"""INT8 exports: the fast form's ONNX graph with its Linear weights quantized to int8 per output
channel, activations quantized on the fly (onnxruntime's dynamic quantization), and a torch-like
wrapper so `load_pruned` returns something that runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from blockprune_pl.io import atomic_file

INT8_FILE = "int8.json"
# MatMul and Gemm only: the embeddings (Gather) stay fp32, where int8 would cost accuracy and
# save no time
QUANTIZED_OPS = ["MatMul", "Gemm"]


def quantize_int8(onnx_file: Path, folder: Path) -> None:
    """Replace `onnx_file` by its dynamically quantized version; record how in `int8.json`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_file(onnx_file) as partial:
        quantize_dynamic(
            onnx_file,
            partial,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
    record = {
        "quantizer": "onnxruntime.quantization.quantize_dynamic",
        "weights": "int8, per output channel",
        "activations": "uint8, quantized at run time (dynamic)",
        "ops": QUANTIZED_OPS,
    }
    (folder / INT8_FILE).write_text(json.dumps(record, indent=2))


class OnnxClassifier(nn.Module):
    """Runs an exported `model.onnx` in onnxruntime with the call signature of a Hugging Face
    sequence classifier: `model(input_ids=..., attention_mask=...).logits` (a torch tensor)."""

    def __init__(self, onnx_file: str | Path, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.onnx_file = str(onnx_file)
        self.session = ort.InferenceSession(
            self.onnx_file, options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, **_unused
    ) -> SequenceClassifierOutput:
        feed = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids)
            if attention_mask is None
            else attention_mask,
            "token_type_ids": torch.zeros_like(input_ids)
            if token_type_ids is None
            else token_type_ids,
        }
        feed = {k: np.asarray(feed[k].cpu().numpy(), dtype=np.int64) for k in self.input_names}
        (logits,) = self.session.run(["logits"], feed)
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))
