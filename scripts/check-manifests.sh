#!/usr/bin/env bash
# Checks the deployment files without a cluster:
#
#   1. renders every kustomize overlay under k8s/overlays with `kubectl kustomize`
#   2. validates each rendering against the Kubernetes API schemas, strictly
#      (unknown fields are errors), for every version in K8S_VERSIONS, with
#      kubernetes-validate
#   3. runs scripts/check_manifest_enums.py over each rendering (enum values the
#      schemas do not check, hostNetwork ports, drain timeout vs grace period),
#      then its self-test (its fixtures must be rejected)
#   4. checks that the Grafana dashboard queries only metrics src/metrics.rs defines
#
# kubernetes-validate and PyYAML live in a virtualenv under target/pyenv, created
# on first use (needs python3 with venv and network access to PyPI). kubectl is
# never downloaded: install it first (any recent version; it bundles kustomize).
# Renderings are kept in target/manifests/ for inspection.
#
# Usage: scripts/check-manifests.sh          (from any directory)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

# Pinned: the newest release, and the first that ships schemas for Kubernetes 1.37.
KUBERNETES_VALIDATE_VERSION="1.37.0"
# The oldest Kubernetes we support and the newest the pinned release knows.
K8S_VERSIONS=(1.30.0 1.37.0)

venv="target/pyenv"
out_dir="target/manifests"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'check-manifests: %s\n' "$*" >&2; exit 1; }

kubectl="${KUBECTL:-$(command -v kubectl || true)}"
[[ -n "${kubectl}" && -x "${kubectl}" ]] \
  || fail "kubectl not found on PATH (or \$KUBECTL): install kubectl; this script downloads nothing for it"

step "python environment (${venv}, kubernetes-validate ${KUBERNETES_VALIDATE_VERSION})"
installed="$("${venv}/bin/kubernetes-validate" --version 2>/dev/null || true)"
if [[ "${installed}" != "${KUBERNETES_VALIDATE_VERSION}" ]]; then
  if [[ ! -x "${venv}/bin/python" ]]; then
    command -v python3 >/dev/null 2>&1 || fail "python3 not found on PATH"
    python3 -m venv "${venv}" \
      || fail "cannot create ${venv}: install python3-venv (Debian: apt-get install python3-venv)"
  fi
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
echo "kubernetes-validate $("${venv}/bin/kubernetes-validate" --version), $("${venv}/bin/python" --version)"

mkdir -p "${out_dir}"
rendered=()
for overlay in k8s/overlays/*/; do
  overlay="${overlay%/}"
  name="$(basename "${overlay}")"
  step "render ${overlay}"
  "${kubectl}" kustomize "${overlay}" > "${out_dir}/${name}.yaml"
  kinds="$(grep -E '^kind: ' "${out_dir}/${name}.yaml" | cut -d' ' -f2 | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')"
  echo "${out_dir}/${name}.yaml: ${kinds}"
  rendered+=("${out_dir}/${name}.yaml")
done
(( ${#rendered[@]} > 0 )) || fail "no overlays under k8s/overlays"

for file in "${rendered[@]}"; do
  for version in "${K8S_VERSIONS[@]}"; do
    step "kubernetes-validate --strict ${file} (Kubernetes ${version})"
    "${venv}/bin/kubernetes-validate" --strict --quiet -k "${version}" "${file}"
    echo "ok: $(grep -c '^kind: ' "${file}") resources valid for Kubernetes ${version}"
  done
done

step "enum and deployment rules (scripts/check_manifest_enums.py)"
"${venv}/bin/python" scripts/check_manifest_enums.py "${rendered[@]}"

step "checker self-test (scripts/fixtures)"
"${venv}/bin/python" scripts/check_manifest_enums.py --self-test "${rendered[@]}"

step "Grafana dashboard metric names"
"${venv}/bin/python" scripts/check_manifest_enums.py \
  --dashboard deploy/grafana/switchboard-dashboard.json --metrics-source src/metrics.rs

step "all manifest checks passed (Kubernetes ${K8S_VERSIONS[*]})"
