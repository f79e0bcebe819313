"""Checks the Helm chart helm/threatflow with the real Helm engine (PyPI helm-python-sdk, Helm
v4's Go SDK) — no helm binary, no cluster.

For every scenario in helm/threatflow/ci/*-values.yaml: it renders, lints strictly without
errors, every manifest validates against the Kubernetes 1.30 schemas (kubernetes-validate), the
custom resources against models generated from their CRDs (PyPI cloudcoil-models-keda,
cloudcoil-models-prometheus-operator: types checked by pydantic, unknown fields found by a
round trip), and what matters holds — the rendered engine config
passes `threatflow config check --offline`; the probes point at routes the engine serves;
the KEDA triggers name the engine's consumer group and every input topic; the pods outlive
the engine's drain; the config checksum rolls the pods. Then it shows the checks bite: KEDA +
HPA together, a misspelled value and a too-short grace period fail to render, and a chart
with a broken probe path or a misspelled ScaledObject field fails the checks.

Usage: chart_check.py REPO THREATFLOW_BINARY. Prints one JSON line; exits 1 on any problem.
"""

import copy
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import cloudcoil.models.keda.v1alpha1 as keda
import cloudcoil.models.prometheus_operator.v1 as monitoring
import helm_python as hp
import kubernetes_validate
import yaml

REPO, BINARY = sys.argv[1], sys.argv[2]
CHART = os.path.join(REPO, "helm", "threatflow")
KUBERNETES = "1.30.0"
# Custom resources, by kind: the model generated from the CRD (KEDA 2.16, Prometheus Operator
# 0.80 — the API versions the chart writes).
CUSTOM_KINDS = {
    "ScaledObject": ("keda.sh/v1alpha1", keda.ScaledObject),
    "ServiceMonitor": ("monitoring.coreos.com/v1", monitoring.ServiceMonitor),
    "PrometheusRule": ("monitoring.coreos.com/v1", monitoring.PrometheusRule),
}
# The routes the engine's HTTP endpoint serves, read from its source.
HTTP_SOURCE = open(os.path.join(REPO, "engine", "src", "http.rs")).read()
SERVED = set(re.findall(r'\.route\("(/[a-z]+)"', HTTP_SOURCE))


def render(chart_dir, values):
    return hp.Chart.load(chart_dir).render(values, name="tf", namespace="security")


def manifests(rendered):
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                yield path, document


def unknown_fields(original, round_trip, path=""):
    """Keys of `original` the CRD model dropped (the models ignore unknown fields)."""
    if isinstance(original, dict) and isinstance(round_trip, dict):
        for key, value in original.items():
            if key not in round_trip:
                yield f"{path}.{key}"
            else:
                yield from unknown_fields(value, round_trip[key], f"{path}.{key}")
    elif isinstance(original, list) and isinstance(round_trip, list):
        for index, (value, kept) in enumerate(zip(original, round_trip)):
            yield from unknown_fields(value, kept, f"{path}[{index}]")


def validate_custom(document):
    """Problems of a custom resource against its CRD model: wrong apiVersion, wrong types,
    unknown fields."""
    api_version, model = CUSTOM_KINDS[document["kind"]]
    if document.get("apiVersion") != api_version:
        return [f"apiVersion {document.get('apiVersion')}, expected {api_version}"]
    try:
        parsed = model.model_validate(document)
    except Exception as error:
        return [f"does not match its CRD: {error}"]
    round_trip = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return [f"unknown field {field}" for field in unknown_fields(document, round_trip)]


def check_config(toml_text, problems, scenario):
    """The rendered engine config passes `threatflow config check --offline` (with the image's
    paths pointed at this checkout's models and a scratch state directory)."""
    with tempfile.TemporaryDirectory() as scratch:
        text = toml_text.replace("/opt/threatflow/models", os.path.join(REPO, "models"))
        text = text.replace("/var/lib/threatflow/state", os.path.join(scratch, "state"))
        path = os.path.join(scratch, "threatflow.toml")
        with open(path, "w") as out:
            out.write(text)
        run = subprocess.run([BINARY, "config", "check", "--offline", path],
                             capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            problems.append(f"{scenario}: config check failed:\n{run.stdout}\n{run.stderr}")


def check_scenario(chart_dir, values, scenario, problems, run_config_check=True):
    try:
        rendered = render(chart_dir, values)
    except Exception as error:  # the render error names the template and the reason
        problems.append(f"{scenario}: render failed: {error}")
        return None
    lint = hp.lint(chart_dir, values, strict=True)
    for message in lint.get("messages", []):
        if message.get("severity", 0) >= 3:
            problems.append(f"{scenario}: lint: {message}")
    kinds = {}
    for path, document in manifests(rendered):
        kind = document.get("kind")
        kinds.setdefault(kind, []).append(document)
        if kind in CUSTOM_KINDS:
            for problem in validate_custom(document):
                problems.append(f"{scenario}: {path} ({kind}) {problem}")
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
        except Exception as error:
            problems.append(f"{scenario}: {path} ({kind}) invalid: {error}")
    config_maps = [c for c in kinds.get("ConfigMap", []) if "threatflow.toml" in c.get("data", {})]
    if len(config_maps) != 1:
        problems.append(f"{scenario}: expected one engine ConfigMap, got {len(config_maps)}")
        return kinds
    for dashboard in (c for c in kinds.get("ConfigMap", []) if "threatflow.json" in c.get("data", {})):
        if not json.loads(dashboard["data"]["threatflow.json"]).get("panels"):
            problems.append(f"{scenario}: the dashboard ConfigMap holds no panels")
    toml_text = config_maps[0]["data"]["threatflow.toml"]
    if run_config_check:
        check_config(toml_text, problems, scenario)
    for deployment in kinds.get("Deployment", []):
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        for probe, expected in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
            path = container.get(probe, {}).get("httpGet", {}).get("path")
            if path != expected or path not in SERVED:
                problems.append(f"{scenario}: {deployment['metadata']['name']} {probe} on {path!r}, "
                                f"expected {expected!r} (the engine serves {sorted(SERVED)})")
        if "checksum/config" not in pod["metadata"].get("annotations", {}):
            problems.append(f"{scenario}: no checksum/config annotation")
        security = container.get("securityContext", {})
        if not (security.get("readOnlyRootFilesystem") and security.get("runAsNonRoot")):
            problems.append(f"{scenario}: container not read-only and non-root")
        grace_ms = values.get("config", {}).get("pipeline", {}).get("shutdown_grace_ms", 20000)
        if pod["spec"]["terminationGracePeriodSeconds"] * 1000 <= grace_ms:
            problems.append(f"{scenario}: pods are killed before the engine's drain ends")
    config = values["config"]
    for scaled in kinds.get("ScaledObject", []):
        topics = sorted(t["metadata"]["topic"] for t in scaled["spec"]["triggers"])
        wanted = sorted(b["topic"] for b in config["bindings"])
        if topics != wanted:
            problems.append(f"{scenario}: KEDA watches {topics}, the engine reads {wanted}")
        for trigger in scaled["spec"]["triggers"]:
            metadata = trigger["metadata"]
            if trigger["type"] != "kafka" or metadata["consumerGroup"] != config["kafka"]["group_id"]:
                problems.append(f"{scenario}: KEDA trigger {metadata} is not the engine's group")
            if not str(metadata.get("lagThreshold", "")).isdigit():
                problems.append(f"{scenario}: KEDA trigger without an explicit lagThreshold")
        keda = values["autoscaling"]["keda"]
        if scaled["spec"].get("maxReplicaCount", 0) > keda["partitionCount"]:
            problems.append(f"{scenario}: more replicas than partitions")
        if "replicas" in kinds["Deployment"][0]["spec"]:
            problems.append(f"{scenario}: Deployment fixes replicas under an autoscaler")
    gpu = values.get("gpu", {})
    if gpu.get("enabled"):
        limits = kinds["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        if limits.get("nvidia.com/gpu") != gpu["count"]:
            problems.append(f"{scenario}: no nvidia.com/gpu limit")
    return kinds


def must_fail(values, why, problems, expected_text):
    try:
        render(CHART, values)
        problems.append(f"{why}: rendered, should have been refused")
    except Exception as error:
        if expected_text not in str(error):
            problems.append(f"{why}: refused for another reason: {error}")


problems, scenarios = [], {}
for path in sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml"))):
    scenario = os.path.basename(path).removesuffix("-values.yaml")
    values = yaml.safe_load(open(path))
    kinds = check_scenario(CHART, values, scenario, problems) or {}
    scenarios[scenario] = sorted(f"{kind}x{len(docs)}" for kind, docs in kinds.items())

# The checksum follows the config: another config, another annotation.
base = yaml.safe_load(open(os.path.join(CHART, "ci", "minimal-values.yaml")))
changed = copy.deepcopy(base)
changed["config"]["kafka"]["group_id"] = "threatflow-other"
annotation = lambda values: next(d for _, d in manifests(render(CHART, values)) if d["kind"] == "Deployment")[
    "spec"]["template"]["metadata"]["annotations"]["checksum/config"]
if annotation(base) == annotation(changed):
    problems.append("the config checksum does not change with the config")

# The chart refuses what it must.
must_fail({**base, "autoscaling": {"keda": {"enabled": True}, "hpa": {"enabled": True}}},
          "KEDA + HPA", problems, "both enabled")
must_fail({**base, "replicaCont": 3}, "misspelled value", problems, "replicaCont")
must_fail({**base, "autoscaling": {"keda": {"enabled": True, "maxReplicaCount": 9, "partitionCount": 3}}},
          "more replicas than partitions", problems, "partitionCount")
must_fail({**base, "terminationGracePeriodSeconds": 10}, "grace shorter than the drain", problems,
          "shutdown_grace_ms")

def broken_chart_problems(template, old, new, values, scenario, count=-1):
    """The problems the checks find in a copy of the chart whose `template` has `old`
    replaced by `new` (`count` times; all by default)."""
    found = []
    with tempfile.TemporaryDirectory() as scratch:
        broken = os.path.join(scratch, "threatflow")
        shutil.copytree(CHART, broken)
        path = os.path.join(broken, "templates", template)
        text = open(path).read()
        assert old in text, f"{template} has no {old!r}"
        open(path, "w").write(text.replace(old, new, count))
        check_scenario(broken, values, scenario, found, run_config_check=False)
    return found


# The checks catch a broken chart: the same chart with its readiness probe on a path the
# engine does not serve ...
caught = broken_chart_problems("deployment.yaml", "path: /ready", "path: /readyz", base, "broken")
if not any("readinessProbe" in problem for problem in caught):
    problems.append(f"a broken probe path went unnoticed: {caught}")

# ... and a ScaledObject with a misspelled field (KEDA would ignore it and never scale).
keda_values = yaml.safe_load(open(os.path.join(CHART, "ci", "keda-values.yaml")))
keda_caught = broken_chart_problems("scaledobject.yaml", "maxReplicaCount:", "maxReplicasCount:",
                                    keda_values, "broken-keda", count=1)
if not any("unknown field .spec.maxReplicasCount" in problem for problem in keda_caught):
    problems.append(f"a misspelled ScaledObject field went unnoticed: {keda_caught}")
caught += keda_caught[:1]

print(json.dumps({"ok": not problems, "scenarios": scenarios, "served": sorted(SERVED),
                  "broken_chart_caught": caught[:2], "problems": problems}))
sys.exit(1 if problems else 0)
