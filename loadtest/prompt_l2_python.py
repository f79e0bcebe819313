"""Python baseline of the prompt L2 path: onnxruntime + tokenizers on the shipped model.

Runs exactly what `threatflow bench prompt` times on its bare-L2 path: the first --limit prompts
of a JSONL/CSV file, cut into consecutive batches of each size, each batch tokenized (truncated
at the manifest's max_length, padded to the batch's longest sequence) and run through one
ONNX Runtime session on the CPU; one untimed warm-up batch per size. Prints one JSON line.
Usage: python3 prompt_l2_python.py --data FILE [--model models/prompt/v2] [--limit 512]
       [--batch-sizes 1,8,32] [--repeats 2] [--threads 0] [--disable SkipLayerNormFusion]
--disable names ONNX Runtime graph optimizers to skip (comma-separated), as the engine's
`[operators.prompt.l2] disabled_optimizers` does, so both sides run the same session.
"""
import argparse
import csv
import json
import os
import statistics
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def read_texts(path, limit):
    if path.endswith(".csv"):
        with open(path, encoding="utf-8") as f:
            rows = [r["text"] for r in csv.DictReader(f)]
    else:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(l)["text"] for l in f if l.strip()]
    return rows[:limit]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="models/prompt/v2")
    parser.add_argument("--limit", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--disable", default="")
    args = parser.parse_args()
    manifest = json.load(open(os.path.join(args.model, "manifest.json")))
    tokenizer = Tokenizer.from_file(os.path.join(args.model, manifest["tokenizer"]["path"]))
    tokenizer.enable_truncation(manifest["max_length"])
    tokenizer.enable_padding()  # pads to the longest sequence of each batch
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(os.path.join(args.model, manifest["model"]["path"]), options,
                                   providers=["CPUExecutionProvider"],
                                   disabled_optimizers=[n for n in args.disable.split(",") if n])
    texts = read_texts(args.data, args.limit)

    def score(batch):
        started = time.perf_counter()
        encodings = tokenizer.encode_batch(batch)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feeds = {name: feeds[name] for name in manifest["inputs"]}
        logits = session.run([manifest["output"]], feeds)[0]
        e = np.exp(logits - logits.max(-1, keepdims=True))
        _ = (e / e.sum(-1, keepdims=True))[:, manifest["attack_label"]]
        return time.perf_counter() - started

    figures = []
    for size in [int(s) for s in args.batch_sizes.split(",") if s]:
        score(texts[:size])
        timings, prompts, total = [], 0, 0.0
        for _ in range(max(args.repeats, 1)):
            for start in range(0, len(texts) - size + 1, size):
                elapsed = score(texts[start:start + size])
                timings.append(elapsed * 1000.0)
                prompts += size
                total += elapsed
        timings.sort()
        figures.append({
            "batch": size,
            "batches": len(timings),
            "median_batch_ms": statistics.median(timings),
            "p95_batch_ms": timings[max(int(np.ceil(0.95 * len(timings))) - 1, 0)],
            "prompts_per_second": prompts / total,
        })
        print(f"  batch {size:>3}: median {figures[-1]['median_batch_ms']:.2f} ms/batch, "
              f"{figures[-1]['prompts_per_second']:.0f} prompts/s", flush=True)
    print(json.dumps({"onnxruntime": ort.__version__, "direct": figures}))


if __name__ == "__main__":
    main()
