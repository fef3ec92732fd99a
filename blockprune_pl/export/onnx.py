"""ONNX exports: the fast form traced with dynamic batch and length axes; and INT8 exports, that
graph with its Linear weights quantized to int8 per output
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


def onnx_inputs(config) -> list[str]:
    """The graph's inputs: `token_type_ids` too where the model has segment embeddings (BERT's
    sentence pairs: without them the second sentence would be read as the first)."""
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0) > 1:
        names.append("token_type_ids")
    return names


def save_onnx(model, file: Path, seq: int = 128) -> None:
    names = onnx_inputs(model.config)
    # the traced length must fit the position table (RoBERTa's is offset by the pad id); the
    # graph's sequence axis stays dynamic
    seq = min(seq, getattr(model.config, "max_position_embeddings", 2 * seq) // 2)
    inputs = {name: torch.ones(1, seq, dtype=torch.long) for name in names}
    if "token_type_ids" in inputs:
        inputs["token_type_ids"][:, seq // 2 :] = 1  # both segments, so neither is folded away
    with torch.no_grad():
        model(**inputs)  # gathered layers pack once, outside the trace
    torch.onnx.export(
        model,
        (),
        str(file),
        kwargs=inputs,
        input_names=names,
        output_names=["logits"],
        dynamo=False,
        dynamic_axes={name: {0: "batch", 1: "seq"} for name in names},
    )
