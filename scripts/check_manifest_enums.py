#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests for what the JSON schemas miss.

The OpenAPI schemas kubernetes-validate uses type most enum-like fields as
plain strings: `protocol: udp` or `imagePullPolicy: IfNotPresnt` pass them and
fail only at apply time, or worse, at run time. This script checks those
fields, and the rules Switchboard's deployment depends on:

- container and Service port `protocol` in TCP, UDP, SCTP
- `imagePullPolicy`, pod and container `restartPolicy`, `dnsPolicy`,
  `terminationMessagePolicy`, Deployment `strategy.type`
- Service `type`, traffic policies, `sessionAffinity`, `ipFamilyPolicy`
- probe and lifecycle `httpGet.scheme` in HTTP, HTTPS; named probe ports exist
- HorizontalPodAutoscaler metric `type` (and its matching block), target
  `type`, scaling policy `type` and `selectPolicy`
- `hostNetwork: true` implies dnsPolicy ClusterFirstWithHostNet, a `hostPort`
  equal to `containerPort` on every UDP port, and no other hostPort value
- the drain timeout (SWITCHBOARD_DRAIN_TIMEOUT and `drain_timeout` in a
  mounted ConfigMap's TOML) agrees everywhere, and
  terminationGracePeriodSeconds exceeds it plus the preStop sleep

Usage:
  check_manifest_enums.py FILE...       check multi-document YAML files ("-": stdin)
  check_manifest_enums.py --self-test [FILE...]
      assert that every fixture under scripts/fixtures is rejected with exactly
      the errors its `# expect:` lines list, and that FILE... (default: every
      overlay under k8s/overlays, rendered with `kubectl kustomize`) passes
  check_manifest_enums.py --dashboard JSON --metrics-source RS
      check that every switchboard_* metric a Grafana dashboard queries is
      defined in the Rust metrics module

Exit status: 0 when everything passes, 1 when a check fails, 2 on bad usage.
Needs PyYAML (a dependency of kubernetes-validate); when it is missing, the
script re-runs itself with target/pyenv/bin/python if that exists.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "scripts" / "fixtures"
VENV_PYTHON = REPO / "target" / "pyenv" / "bin" / "python"

try:
    import yaml
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit(
        "check_manifest_enums.py: PyYAML is missing; run scripts/check-manifests.sh once "
        "(it creates target/pyenv) or install PyYAML"
    )

try:
    import tomllib
except ImportError:  # Python < 3.11: only drain_timeout is read, a regex will do
    tomllib = None

PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
POD_RESTART_POLICIES = ("Always", "OnFailure", "Never")
CONTAINER_RESTART_POLICIES = ("Always",)
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
DEPLOYMENT_STRATEGIES = ("RollingUpdate", "Recreate")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
TRAFFIC_POLICIES = ("Cluster", "Local")
SESSION_AFFINITIES = ("None", "ClientIP")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
PROBE_SCHEMES = ("HTTP", "HTTPS")
HPA_METRIC_TYPES = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "External": "external",
}
HPA_TARGET_TYPES = ("Utilization", "Value", "AverageValue")
HPA_POLICY_TYPES = ("Pods", "Percent")
HPA_SELECT_POLICIES = ("Max", "Min", "Disabled")
PDB_EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")

DRAIN_ENV = "SWITCHBOARD_DRAIN_TIMEOUT"
DRAIN_TOML_KEY = "drain_timeout"
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds


class Checker:
    """Collects errors over a set of documents rendered together."""

    def __init__(self, docs):
        self.docs = [d for d in docs if isinstance(d, dict)]
        self.errors = []
        self.config_maps = {
            d.get("metadata", {}).get("name"): d for d in self.docs if d.get("kind") == "ConfigMap"
        }

    def error(self, doc, path, message):
        kind = doc.get("kind", "?")
        name = doc.get("metadata", {}).get("name", "?")
        self.errors.append(f"{kind}/{name}: {path}: {message}")

    def one_of(self, doc, obj, key, allowed, path):
        if isinstance(obj, dict) and key in obj and obj[key] not in allowed:
            self.error(doc, f"{path}.{key}", f"{obj[key]!r} is not one of {', '.join(allowed)}")

    def run(self):
        for doc in self.docs:
            kind = doc.get("kind")
            spec = doc.get("spec") or {}
            if kind == "Pod":
                self.pod_spec(doc, spec, "spec")
            elif kind in WORKLOAD_KINDS or kind == "Job":
                pod = (spec.get("template") or {}).get("spec") or {}
                self.pod_spec(doc, pod, "spec.template.spec")
                if kind == "Deployment":
                    self.one_of(doc, spec.get("strategy"), "type", DEPLOYMENT_STRATEGIES, "spec.strategy")
            elif kind == "CronJob":
                job = ((spec.get("jobTemplate") or {}).get("spec") or {})
                pod = (job.get("template") or {}).get("spec") or {}
                self.pod_spec(doc, pod, "spec.jobTemplate.spec.template.spec")
            elif kind == "Service":
                self.service(doc, spec)
            elif kind == "HorizontalPodAutoscaler":
                self.hpa(doc, spec)
            elif kind == "PodDisruptionBudget":
                self.one_of(doc, spec, "unhealthyPodEvictionPolicy", PDB_EVICTION_POLICIES, "spec")
        return self.errors

    # Pods ------------------------------------------------------------------

    def pod_spec(self, doc, pod, path):
        restart = POD_RESTART_POLICIES
        if doc.get("kind") in WORKLOAD_KINDS:
            restart = ("Always",)  # the only value these controllers accept
        self.one_of(doc, pod, "restartPolicy", restart, path)
        self.one_of(doc, pod, "dnsPolicy", DNS_POLICIES, path)
        host_network = pod.get("hostNetwork") is True
        if host_network and pod.get("dnsPolicy", "ClusterFirst") == "ClusterFirst":
            self.error(
                doc,
                f"{path}.dnsPolicy",
                "hostNetwork pods need ClusterFirstWithHostNet to resolve cluster Services "
                f"(got {pod.get('dnsPolicy', 'ClusterFirst (default)')})",
            )
        for group in ("initContainers", "containers"):
            for i, c in enumerate(pod.get(group) or []):
                self.container(doc, c, f"{path}.{group}[{i}]", host_network, group == "initContainers")
        self.drain(doc, pod, path)

    def container(self, doc, c, path, host_network, init):
        self.one_of(doc, c, "imagePullPolicy", PULL_POLICIES, path)
        self.one_of(doc, c, "terminationMessagePolicy", TERMINATION_MESSAGE_POLICIES, path)
        if init:
            self.one_of(doc, c, "restartPolicy", CONTAINER_RESTART_POLICIES, path)
        elif "restartPolicy" in c:
            self.error(doc, f"{path}.restartPolicy", "only init containers may set restartPolicy")
        names = set()
        for j, p in enumerate(c.get("ports") or []):
            ppath = f"{path}.ports[{j}]"
            self.one_of(doc, p, "protocol", PORT_PROTOCOLS, ppath)
            if "name" in p:
                names.add(p["name"])
            if not host_network:
                continue
            host_port = p.get("hostPort")
            if host_port is not None and host_port != p.get("containerPort"):
                self.error(
                    doc,
                    f"{ppath}.hostPort",
                    f"with hostNetwork, hostPort ({host_port}) must equal containerPort "
                    f"({p.get('containerPort')})",
                )
            elif host_port is None and p.get("protocol", "TCP") == "UDP":
                self.error(
                    doc,
                    f"{ppath}.hostPort",
                    f"hostNetwork UDP port {p.get('containerPort')} needs hostPort equal to "
                    "containerPort, so the scheduler keeps two pods off one node's port",
                )
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.handler(doc, c.get(probe), f"{path}.{probe}", names)
        for hook in ("postStart", "preStop"):
            self.handler(doc, (c.get("lifecycle") or {}).get(hook), f"{path}.lifecycle.{hook}", names)

    def handler(self, doc, h, path, port_names):
        if not isinstance(h, dict):
            return
        self.one_of(doc, h.get("httpGet"), "scheme", PROBE_SCHEMES, f"{path}.httpGet")
        for action in ("httpGet", "tcpSocket"):
            port = (h.get(action) or {}).get("port")
            if isinstance(port, str) and not port.isdigit() and port not in port_names:
                self.error(doc, f"{path}.{action}.port", f"no container port is named {port!r}")

    # Drain -----------------------------------------------------------------

    def drain(self, doc, pod, path):
        """terminationGracePeriodSeconds must cover the preStop sleep plus the drain."""
        mounted = {}
        for v in pod.get("volumes") or []:
            if "configMap" in v:
                mounted[v.get("name")] = (v["configMap"] or {}).get("name")
        for i, c in enumerate(pod.get("containers") or []):
            cpath = f"{path}.containers[{i}]"
            sources = []  # (where, seconds)
            for e in c.get("env") or []:
                if e.get("name") == DRAIN_ENV and "value" in e:
                    self.add_duration(doc, sources, f"{cpath}.env[{DRAIN_ENV}]", e["value"])
            for m in c.get("volumeMounts") or []:
                cm = self.config_maps.get(mounted.get(m.get("name")))
                for key, text in ((cm or {}).get("data") or {}).items():
                    if key.endswith(".toml"):
                        value = toml_string(text, DRAIN_TOML_KEY)
                        if value is not None:
                            where = f"ConfigMap/{cm['metadata']['name']}.data[{key}].{DRAIN_TOML_KEY}"
                            self.add_duration(doc, sources, where, value)
            if not sources:
                continue
            distinct = {s for _, s in sources}
            if len(distinct) > 1:
                listed = ", ".join(f"{w} = {s:g}s" for w, s in sources)
                self.error(doc, cpath, f"drain timeouts disagree: {listed}")
            drain = max(distinct)
            pre_stop = pre_stop_sleep(c)
            grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            if not grace > drain + pre_stop:
                self.error(
                    doc,
                    f"{path}.terminationGracePeriodSeconds",
                    f"{grace} must exceed the preStop sleep ({pre_stop:g}s) plus the drain "
                    f"timeout ({drain:g}s), or SIGKILL cuts the calls still draining",
                )

    def add_duration(self, doc, sources, where, value):
        seconds = parse_duration(str(value))
        if seconds is None:
            self.error(doc, where, f"cannot parse duration {value!r} (use e.g. 300s, 5m, 1h30m)")
        else:
            sources.append((where, seconds))

    # Services and autoscalers ----------------------------------------------

    def service(self, doc, spec):
        self.one_of(doc, spec, "type", SERVICE_TYPES, "spec")
        self.one_of(doc, spec, "externalTrafficPolicy", TRAFFIC_POLICIES, "spec")
        self.one_of(doc, spec, "internalTrafficPolicy", TRAFFIC_POLICIES, "spec")
        self.one_of(doc, spec, "sessionAffinity", SESSION_AFFINITIES, "spec")
        self.one_of(doc, spec, "ipFamilyPolicy", IP_FAMILY_POLICIES, "spec")
        for j, p in enumerate(spec.get("ports") or []):
            self.one_of(doc, p, "protocol", PORT_PROTOCOLS, f"spec.ports[{j}]")

    def hpa(self, doc, spec):
        for i, m in enumerate(spec.get("metrics") or []):
            path = f"spec.metrics[{i}]"
            mtype = m.get("type")
            if mtype not in HPA_METRIC_TYPES:
                self.error(doc, f"{path}.type", f"{mtype!r} is not one of {', '.join(HPA_METRIC_TYPES)}")
                continue
            block = m.get(HPA_METRIC_TYPES[mtype])
            if not isinstance(block, dict):
                self.error(doc, path, f"type {mtype} needs a {HPA_METRIC_TYPES[mtype]!r} block")
                continue
            target = block.get("target") or {}
            tpath = f"{path}.{HPA_METRIC_TYPES[mtype]}.target"
            self.one_of(doc, target, "type", HPA_TARGET_TYPES, tpath)
            allowed = {"Pods": ("AverageValue",), "Resource": ("Utilization", "AverageValue")}
            if target.get("type") in HPA_TARGET_TYPES and target["type"] not in allowed.get(
                mtype, HPA_TARGET_TYPES
            ):
                self.error(doc, f"{tpath}.type", f"a {mtype} metric cannot use {target['type']}")
        for direction in ("scaleUp", "scaleDown"):
            rules = (spec.get("behavior") or {}).get(direction)
            if not isinstance(rules, dict):
                continue
            path = f"spec.behavior.{direction}"
            self.one_of(doc, rules, "selectPolicy", HPA_SELECT_POLICIES, path)
            for j, p in enumerate(rules.get("policies") or []):
                self.one_of(doc, p, "type", HPA_POLICY_TYPES, f"{path}.policies[{j}]")


def parse_duration(text):
    """Seconds in `300`, `300s`, `5m`, `1h30m`, `1500ms`; None when malformed."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def toml_string(text, key):
    """The top-level value of `key` in a TOML document, or None."""
    if tomllib is not None:
        try:
            value = tomllib.loads(text).get(key)
        except tomllib.TOMLDecodeError:
            return None
        return None if value is None else str(value)
    m = re.search(rf'^\s*{re.escape(key)}\s*=\s*"([^"]*)"', text, re.MULTILINE)
    return m.group(1) if m else None


def pre_stop_sleep(container):
    """Seconds a container's preStop hook sleeps: `sleep N` exec or the sleep action."""
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float((pre_stop["sleep"] or {}).get("seconds", 0))
    command = (pre_stop.get("exec") or {}).get("command") or []
    for i, word in enumerate(command[:-1]):
        if os.path.basename(str(word)) == "sleep":
            seconds = parse_duration(str(command[i + 1]))
            return seconds or 0.0
    return 0.0


def load(path):
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return list(yaml.safe_load_all(text)), text


def check_files(paths):
    failed = False
    for path in paths:
        docs, _ = load(path)
        errors = Checker(docs).run()
        for e in errors:
            print(f"FAIL {path}: {e}")
        if errors:
            failed = True
        else:
            print(f"ok   {path}: {sum(isinstance(d, dict) for d in docs)} documents")
    return 1 if failed else 0


def render_overlays():
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        sys.exit("check_manifest_enums.py: kubectl not found; pass rendered files instead")
    rendered = []
    for overlay in sorted((REPO / "k8s" / "overlays").iterdir()):
        if (overlay / "kustomization.yaml").exists():
            out = subprocess.run(
                [kubectl, "kustomize", str(overlay)], check=True, capture_output=True, text=True
            ).stdout
            rendered.append((f"k8s/overlays/{overlay.name}", out))
    return rendered


def self_test(paths):
    failures = []
    fixtures = sorted(FIXTURES.glob("*.yaml"))
    if not fixtures:
        failures.append(f"no fixtures under {FIXTURES}")
    for fixture in fixtures:
        docs, text = load(fixture)
        expected = [m.strip() for m in re.findall(r"^# expect: (.+)$", text, re.MULTILINE)]
        errors = Checker(docs).run()
        unmatched = [x for x in expected if not any(x in e for e in errors)]
        unexpected = [e for e in errors if not any(x in e for x in expected)]
        if not errors:
            failures.append(f"{fixture.name}: accepted, but it is meant to be rejected")
        for x in unmatched:
            failures.append(f"{fixture.name}: no error matched the expectation {x!r}")
        for e in unexpected:
            failures.append(f"{fixture.name}: error not listed by any '# expect:' line: {e}")
        if errors and not unmatched and not unexpected:
            print(f"ok   {fixture.relative_to(REPO)}: rejected with the {len(errors)} expected errors")
    real = [(p, load(p)[1]) for p in paths] if paths else render_overlays()
    for name, text in real:
        errors = Checker(list(yaml.safe_load_all(text))).run()
        failures.extend(f"{name}: rejected: {e}" for e in errors)
        if not errors:
            print(f"ok   {name}: accepted")
    for f in failures:
        print(f"FAIL {f}")
    print("self-test " + ("failed" if failures else "passed"))
    return 1 if failures else 0


def check_dashboard(dashboard, metrics_source):
    """Every switchboard_* name queried by the dashboard is defined in the Rust source."""
    defined = set(re.findall(r'"(switchboard_[a-z0-9_]+)"', Path(metrics_source).read_text()))
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(Path(dashboard).read_text()))
    used = {m for e in exprs for m in re.findall(r"\bswitchboard_[a-z0-9_]+", e)}
    unknown = sorted(used - defined)
    for m in unknown:
        print(f"FAIL {dashboard}: queries {m}, which {metrics_source} does not define")
    if not unknown:
        print(f"ok   {dashboard}: {len(exprs)} queries over {len(used)} metrics, all defined")
    return 1 if unknown or not exprs else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true", help="check the checker (see module doc)")
    parser.add_argument("--dashboard", help="Grafana dashboard JSON to check against --metrics-source")
    parser.add_argument("--metrics-source", help="Rust file that defines the metric names")
    parser.add_argument("files", nargs="*", help='rendered YAML files ("-" for stdin)')
    args = parser.parse_args()
    if args.dashboard:
        if not args.metrics_source:
            parser.error("--dashboard needs --metrics-source")
        return check_dashboard(args.dashboard, args.metrics_source)
    if args.self_test:
        return self_test(args.files)
    if not args.files:
        parser.error("give rendered YAML files, or --self-test")
    return check_files(args.files)


if __name__ == "__main__":
    sys.exit(main())
