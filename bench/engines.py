"""CPU engines for the sentiment model: torch fp32 and bf16 against ONNX Runtime, fp32 and int8.

The serving sentiment model (``SentimentClassifier.from_settings()``: by default the trunk's
sentiment head, the trunk's adapter merged into all-MiniLM-L6-v2, fed the trunk's word
features; ``SENTINEL_SENTIMENT_MODEL`` names another) is exported to ONNX (``torch.onnx.export``, dynamic batch and
sequence axes) into a temporary folder, quantised there, and run over the Financial PhraseBank
test split on the same length-sorted, padded batches (the runtime's tokenizer output and
``plan_batches``) by five engines:

- torch fp32 (``loaded.logits``, as ``BatchedModel.run`` calls it, under ``inference_mode``);
- torch bf16 (the same network in bfloat16, as ``SENTINEL_DTYPE=bfloat16`` loads it; oneDNN runs
  its matmuls on the AMX units of CPUs that have them, see ``cpu_amx_bf16`` in the result);
- ONNX Runtime fp32 (CPUExecutionProvider, all graph optimisations);
- ONNX Runtime int8, dynamic quantisation (``quantize_dynamic``, per channel);
- ONNX Runtime int8, static quantisation (``quantize_static``, QDQ, per channel, calibrated on
  FPB *train* sentences).

Each engine runs one warm-up pass (whose logits give the labels and the differences), then
three timed passes, the engines taking turns in every round; the rate is the median pass.
Only the engines are timed: tokenisation and padding are done once, beforehand, for all of
them. An engine is within tolerance when at most 0.5% of the test labels differ from torch
fp32 and its macro-F1 is within 0.3 points of torch fp32's.

Needs the bench extras (``pip install -e '.[bench]'``). Run: ``python -m bench.engines``.
Writes ``docs/bench/engines.json``; no ONNX file is kept.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

MISSING = "error: onnxruntime is not installed: install the bench extras: pip install -e '.[bench]'"

MAX_CHANGED = 0.005  # share of FPB test labels that may differ from torch fp32
MAX_F1_DELTA = 0.003  # macro-F1 within 0.3 points of torch fp32
OPSET = 18


def _need_extras() -> None:
    for module in ("onnxruntime", "onnx", "onnxscript"):  # onnxscript: the torch.onnx exporter's
        try:
            importlib.import_module(module)
        except ImportError:
            print(MISSING.replace("onnxruntime", module), file=sys.stderr)
            raise SystemExit(2) from None


def _export(net, example: dict, path: Path, head: str | None) -> None:
    """The merged network to ONNX with dynamic batch and sequence axes: inputs ``input_ids``,
    ``attention_mask`` (and ``shape_ids`` for the trunk), output the sentiment logits (of ``head``)."""
    import torch

    inputs = [k for k in ("input_ids", "attention_mask", "shape_ids") if k in example]

    class Wrapped(torch.nn.Module):  # only the inputs the runtime feeds, only the sentiment output
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, shape_ids=None):
            given = {"input_ids": input_ids, "attention_mask": attention_mask}
            if shape_ids is not None:
                given["shape_ids"] = shape_ids
            out = self.inner(**given, **({"heads": (head,)} if head else {}))
            return out[head] if head else out

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(Wrapped(net).eval(), tuple(example[k] for k in inputs), str(path),
                      input_names=inputs, output_names=["logits"],
                      opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                      dynamic_shapes={k: {0: batch, 1: sequence} for k in inputs})


class _Calibration:
    """The calibration data reader of ``quantize_static``: padded batches of FPB train sentences."""

    def __init__(self, batches: list[dict]):
        self.batches = iter(batches)

    def get_next(self):
        return next(self.batches, None)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(data: Path | None = None, batch_size: int = 64, calibration: int = 200, passes: int = 3) -> dict:
    _need_extras()
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from sklearn.metrics import accuracy_score, f1_score

    from bench.common import print_table, save
    from infra.progress import console, progress
    from infra.settings import get_settings
    from models.training import datasets
    from models.runtime import collate, cpu_has_amx_bf16, plan_batches
    from models.sentiment import SentimentClassifier

    settings = get_settings().model_copy(update={"dtype": "float32"})  # the reference; bf16 is one engine
    data = data or settings.data_dir
    try:
        fpb = datasets.fpb_splits(data)
    except datasets.DataMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    test, train = fpb["test"], fpb["train"]

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    model = SentimentClassifier.from_settings(settings)
    model.max_batch = batch_size
    if model.device.type != "cpu":
        print("error: this benchmark compares CPU engines: set SENTINEL_DEVICE=cpu", file=sys.stderr)
        raise SystemExit(2)

    # The runtime's own batches: its tokenizer output (max_length), length-sorted, padded per batch.
    features = model.encode(test.texts)
    lengths = [len(f["input_ids"]) for f in features]
    plan = plan_batches(lengths, batch_size, model.token_budget)
    batches = [collate([features[i] for i in ids]) for ids in plan]
    fed = [k for k in ("input_ids", "attention_mask", "shape_ids") if k in batches[0]]
    feeds = [{k: b[k].numpy() for k in fed} for b in batches]
    calib_features = model.encode(train.texts[:calibration])
    calib_plan = plan_batches([len(f["input_ids"]) for f in calib_features], 32, model.token_budget)
    calib_feeds = []
    for ids in calib_plan:
        b = collate([calib_features[i] for i in ids])
        calib_feeds.append({k: b[k].numpy() for k in fed})

    notes: dict[str, str] = {}
    sizes: dict[str, float] = {}
    engines: dict[str, object] = {}

    def torch_fp32(batch_index: int):
        with torch.inference_mode():
            return model.loaded.logits(batches[batch_index]).float().numpy()

    engines["torch fp32"] = torch_fp32
    # bf16 weights and activations: oneDNN runs the matmuls on AMX tiles where the CPU has them.
    bf16 = replace(model.loaded, model=copy.deepcopy(model.loaded.model).to(torch.bfloat16), dtype=torch.bfloat16)

    def torch_bf16(batch_index: int):
        with torch.inference_mode():
            return bf16.logits(batches[batch_index]).float().numpy()

    engines["torch bf16"] = torch_bf16

    with tempfile.TemporaryDirectory(prefix="sentinel-engines-") as tmp, progress() as bar:
        folder = Path(tmp)
        fp32, prepared = folder / "fp32.onnx", folder / "fp32-prepared.onnx"
        dynamic, static = folder / "int8-dynamic.onnx", folder / "int8-static.onnx"
        steps = bar.add_task("export and quantise", total=4, info="export")
        started = time.perf_counter()
        _export(model.loaded.model, batches[0], fp32, model.loaded.head)
        onnx.checker.check_model(str(fp32))
        export_s = time.perf_counter() - started
        bar.update(steps, advance=1, info="pre-process")
        try:  # ONNX Runtime's recommended step before quantising: shape inference and graph clean-up.
            # ONNX's own shape inference: the symbolic one stops at the exporter's Min(512, sequence) broadcast.
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            source = prepared
        except Exception as exc:  # noqa: BLE001  (recorded; the quantisers take the export as it is)
            notes["pre_process"] = f"quant_pre_process failed ({type(exc).__name__}: {str(exc)[:200]}); " \
                                   "quantised the export as it is"
            source = fp32
        bar.update(steps, advance=1, info="int8 dynamic")
        quantize_dynamic(str(source), str(dynamic), per_channel=True, weight_type=QuantType.QInt8)
        bar.update(steps, advance=1, info="int8 static (calibration)")
        started = time.perf_counter()
        try:
            quantize_static(str(source), str(static), _Calibration(calib_feeds), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:  # noqa: BLE001  (reported: the other engines still run)
            notes["int8_static"] = f"quantize_static failed: {type(exc).__name__}: {str(exc)[:300]}"
        static_s = time.perf_counter() - started
        bar.update(steps, advance=1, info="done")
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8 dynamic", dynamic),
                           ("onnxruntime int8 static", static)):
            if not path.exists():
                continue
            sizes[name] = round(path.stat().st_size / 2**20, 1)
            session = _session(path, threads)
            engines[name] = lambda i, s=session: s.run(["logits"], feeds[i])[0]
        for name, net in (("torch fp32", model.loaded.model), ("torch bf16", bf16.model)):
            sizes[name] = round(sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20, 1)

        def one_pass(engine) -> tuple[float, list]:
            started = time.perf_counter()
            out = [engine(i) for i in range(len(batches))]
            return time.perf_counter() - started, out

        logits: dict[str, np.ndarray] = {}
        times: dict[str, list[float]] = {name: [] for name in engines}
        rounds = bar.add_task("passes (warm-up + timed)", total=(passes + 1) * len(engines), info="")
        for round_ in range(passes + 1):
            for name, engine in engines.items():
                bar.update(rounds, info=f"{'warm-up' if round_ == 0 else f'pass {round_}'}: {name}")
                elapsed, out = one_pass(engine)
                if round_ == 0:  # back in input order
                    rows = np.zeros((len(features), out[0].shape[-1]), dtype=np.float32)
                    for ids, part in zip(plan, out):
                        rows[ids] = part
                    logits[name] = rows
                else:
                    times[name].append(elapsed)
                bar.update(rounds, advance=1)

    n = len(test.texts)
    reference = logits["torch fp32"]
    predicted = {name: [s.label for s in model.decode(test.texts, features, list(torch.from_numpy(rows)))]
                 for name, rows in logits.items()}
    base_rate = n / statistics.median(times["torch fp32"])
    base_f1 = f1_score(test.labels, predicted["torch fp32"], average="macro")
    figures = {}
    for name in engines:
        rate = n / statistics.median(times[name])
        f1 = f1_score(test.labels, predicted[name], average="macro")
        changed = sum(a != b for a, b in zip(predicted[name], predicted["torch fp32"])) / n
        figures[name] = {
            "sentences_per_s": round(rate, 1),
            "ratio_to_torch_fp32": round(rate / base_rate, 3),
            "pass_seconds": [round(t, 3) for t in times[name]],
            "changed_labels": sum(a != b for a, b in zip(predicted[name], predicted["torch fp32"])),
            "changed_label_share": round(changed, 4),
            "accuracy": round(accuracy_score(test.labels, predicted[name]), 4),
            "macro_f1": round(f1, 4),
            "macro_f1_delta_points": round(100 * (f1 - base_f1), 2),
            "max_abs_logit_diff": float(f"{float(np.abs(logits[name] - reference).max()):.3g}"),
            "model_mib": sizes.get(name),
            "within_tolerance": bool(changed <= MAX_CHANGED and abs(f1 - base_f1) <= MAX_F1_DELTA + 1e-12),
        }
    result = {
        "model": (f"the trunk ({model.loaded.version}: one adapter merged into all-MiniLM-L6-v2), its sentiment head"
                  if model.loaded.head else f"sentiment ({model.loaded.version}, LoRA merged into all-MiniLM-L6-v2)"),
        "split": "FPB test (models.training.datasets.fpb_splits)",
        "sentences": n, "batch_size": batch_size, "max_length": model.max_length,
        "batches": len(plan), "mean_tokens": round(sum(lengths) / n, 1), "max_tokens": max(lengths),
        "timed_passes": passes, "cpu_amx_bf16": cpu_has_amx_bf16(), "torch_threads": torch.get_num_threads(), "ort_intra_op_threads": threads,
        "onnxruntime": ort.__version__, "onnx": onnx.__version__,
        "exporter": f"torch.onnx.export (dynamo), opset {OPSET}, dynamic batch and sequence axes",
        "export_seconds": round(export_s, 1), "int8_static_seconds": round(static_s, 1),
        "pre_process": notes.get("pre_process", "quant_pre_process (ONNX shape inference, skip_symbolic_shape=True) "
                                                "before both quantisers"),
        "int8_dynamic": "quantize_dynamic, per_channel=True, weights QInt8",
        "int8_static": f"quantize_static, QDQ, per_channel=True, activations and weights QInt8, MinMax "
                       f"calibration on the first {len(calib_features)} FPB train sentences, MatMul and Gemm",
        "tolerance": {"max_changed_label_share": MAX_CHANGED, "max_macro_f1_delta_points": 100 * MAX_F1_DELTA},
        "engines": figures,
        **({"notes": notes} if notes else {}),
    }
    if "onnxruntime int8 static" not in engines:
        result["engines"]["onnxruntime int8 static"] = {"failed": notes.get("int8_static", "not run")}
    print_table(f"FPB test, {n} sentences, batch {batch_size}, at most {model.max_length} tokens, "
                f"{threads} threads", {
                    name: (f"{f['sentences_per_s']} sent/s ({f['ratio_to_torch_fp32']}x), "
                           f"changed {100 * f['changed_label_share']:.2f}%, acc {f['accuracy']}, "
                           f"F1 {f['macro_f1']} ({f['macro_f1_delta_points']:+}), "
                           f"max |dlogit| {f['max_abs_logit_diff']}, "
                           f"{'within' if f['within_tolerance'] else 'OUTSIDE'} tolerance")
                    if "failed" not in f else f["failed"]
                    for name, f in result["engines"].items()})
    for key, note in notes.items():
        console.print(f"note ({key}): {note}", highlight=False)
    console.print(f"written to {save('engines', result)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="the shared data folder (default: SENTINEL_DATA_DIR, ../shared/data)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calibration", type=int, default=200, help="FPB train sentences for int8 static")
    args = parser.parse_args()
    main(args.data, args.batch, args.calibration)
