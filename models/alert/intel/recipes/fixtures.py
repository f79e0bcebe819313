"""Writes the intel loaders' test fixtures with the reference libraries, so the Rust loaders
are tested on what real producers emit: OASIS's `stix2` (STIX 2.1 bundles) and CIRCL's
`pymisp` (MISP events). All values are documentation ranges (RFC 5737, RFC 3849) and
`.example` names.

    python3 -m venv v && v/bin/pip install stix2==3.0.2 pymisp==2.5.34.4
    v/bin/python models/alert/intel/recipes/fixtures.py engine/src/operators/alert/intel/testdata
"""

import sys
from datetime import datetime, timezone

import stix2
from pymisp import MISPEvent, MISPObject, MISPOrganisation

out = sys.argv[1]
created = datetime(2026, 12, 1, tzinfo=timezone.utc)

identity = stix2.Identity(name="Example CERT", identity_class="organization", created=created,
                          modified=created)
common = dict(created_by_ref=identity.id, created=created, modified=created,
              valid_from=created, pattern_type="stix")
objects = [
    identity,
    stix2.Indicator(name="C2 network", pattern="[ipv4-addr:value = '198.51.100.0/24']",
                    confidence=85, valid_until=datetime(2027, 6, 1, tzinfo=timezone.utc), **common),
    stix2.Indicator(name="C2 hosts", pattern="[domain-name:value = 'c2.evil.example' OR "
                    "ipv6-addr:value = '2001:db8:bad::/48']", confidence=70, **common),
    stix2.Indicator(name="Dropper", pattern="[file:hashes.'SHA-256' = "
                    "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
                    confidence=90, **common),
    stix2.Indicator(name="Payload URL", pattern="[url:value = 'http://dl.evil.example/a.exe']",
                    **common),
    # Behaviour, not a value: skipped by the loader.
    stix2.Indicator(name="Beacon", pattern="[ipv4-addr:value = '203.0.113.9' AND "
                    "network-traffic:dst_port = 443]", confidence=60, **common),
    stix2.Indicator(name="Revoked", pattern="[ipv4-addr:value = '192.0.2.66']", revoked=True,
                    **common),
    stix2.Malware(name="ExampleRAT", is_family=True, created=created, modified=created),
]
with open(f"{out}/bundle.stix.json", "w") as file:
    file.write(stix2.Bundle(objects=objects, allow_custom=False).serialize(pretty=True))

event = MISPEvent()
event.info = "Phishing campaign against finance"
event.threat_level_id = 1
event.uuid = "5f0c8c1e-0000-4000-8000-000000000001"
event.date = "2026-12-01"
org = MISPOrganisation()
org.name = "Example ISAC"
event.Orgc = org
event.add_attribute("ip-dst", "203.0.113.50", to_ids=True)
event.add_attribute("domain", "login.phish.example", to_ids=True)
event.add_attribute("url", "https://login.phish.example/verify", to_ids=True)
event.add_attribute("ip-src|port", "192.0.2.77|8443", to_ids=True)
event.add_attribute("email-subject", "Your invoice", to_ids=False)  # not an indicator
event.add_attribute("ip-dst", "198.18.0.1", to_ids=False)  # context only: half confidence
deleted = event.add_attribute("domain", "old.phish.example", to_ids=True)
deleted.deleted = True
file_object = MISPObject("file")
file_object.add_attribute("filename", value="invoice.pdf.exe")
file_object.add_attribute("sha256", value="a" * 64)
event.add_object(file_object)
for attribute in event.attributes + file_object.attributes:
    attribute.timestamp = created
with open(f"{out}/event.misp.json", "w") as file:
    file.write(event.to_json(indent=2))
