"""Validates OCSF findings (one JSON object per line of the file given) against the pinned OCSF
1.5.0 models of PyPI py-ocsf-models 0.10.0: every finding must build a DetectionFinding
(required fields, types, enum values), and carry no attribute the schema does not define
(anything of ours belongs under `unmapped`). Prints one JSON line with the counts; exits 1
with every problem found.
"""

import json
import sys
import typing

import py_ocsf_models
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from pydantic import BaseModel, ValidationError

assert py_ocsf_models.OCSF_VERSION == "1.5.0", py_ocsf_models.OCSF_VERSION


def model_of(annotation):
    """The pydantic model inside Optional[...] / list[...] annotations, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = model_of(argument)
        if found is not None:
            return found
    return None


def unknown_keys(model, value, path):
    problems = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += unknown_keys(model, item, f"{path}[{index}]")
        return problems
    if not isinstance(value, dict):
        return problems
    for key, item in value.items():
        field = model.model_fields.get(key)
        if field is None:
            problems.append(f"{path}.{key} is not an attribute of {model.__name__}")
            continue
        if key == "unmapped":
            continue
        nested = model_of(field.annotation)
        if nested is not None:
            problems += unknown_keys(nested, item, f"{path}.{key}")
    return problems


problems, counts = [], {}
with open(sys.argv[1]) as lines:
    for number, line in enumerate(lines, 1):
        finding = json.loads(line)
        try:
            DetectionFinding.model_validate(finding)
        except ValidationError as error:
            problems.append(f"line {number}: {error}")
        problems += [f"line {number}: {p}" for p in unknown_keys(DetectionFinding, finding, "$")]
        key = f"{finding.get('unmapped', {}).get('threatflow', {}).get('operator')}/{finding.get('activity_id')}"
        counts[key] = counts.get(key, 0) + 1

print(json.dumps({"valid": not problems, "counts": counts, "problems": problems[:20]}))
sys.exit(1 if problems else 0)
