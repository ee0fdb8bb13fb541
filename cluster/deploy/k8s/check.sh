#!/usr/bin/env bash
# Checks cluster/deploy/k8s offline:
#  1. every manifest against the Kubernetes API's JSON schemas (kubernetes-validate, strict:
#     unknown fields are errors), for the oldest version the manifests support (1.27: gRPC
#     probes) and the newest the checker bundles;
#  2. lint.py: what schemas cannot see (selectors that select, names that match, the
#     bootstrap's choices: Parallel pods, published not-ready peers, id from the ordinal,
#     gRPC probes, an idempotent init Job, non-root and read-only pods, one image);
#  3. each check is shown to fail on a planted bug.
# Not checked: that a cluster accepts and runs them (no Kubernetes here). What the node
# promises them (health, an init that can be rerun) is tested by
# cluster/tests/deploy_bootstrap.rs. Needs: pip install -r cluster/deploy/requirements.txt
set -euo pipefail
cd "$(dirname "$0")"

command -v kubernetes-validate >/dev/null || {
    echo "kubernetes-validate is missing: pip install -r cluster/deploy/requirements.txt" >&2
    exit 1
}
python="$(command -v python3)"
# kubernetes-validate's own interpreter has PyYAML.
validator_python="$(head -1 "$(command -v kubernetes-validate)" | sed -n 's/^#!//p')"
[[ -x "$validator_python" ]] && python="$validator_python"

for version in 1.27.0 1.37.0; do
    kubernetes-validate --strict --quiet -k "$version" ./*.yaml
    echo "k8s: every manifest matches the Kubernetes $version schemas (strict)"
done
"$python" lint.py

planted="$(mktemp -d)"
trap 'rm -rf "$planted"' EXIT
cp ./*.yaml "$planted/"
sed -i 's/readinessProbe:/readinesProbe:/' "$planted/node-statefulset.yaml"
if kubernetes-validate --strict --quiet "$planted/node-statefulset.yaml" >/dev/null 2>&1; then
    echo "k8s: the schema check missed a misspelt field" >&2
    exit 1
fi
cp node-statefulset.yaml "$planted/"
sed -i 's/podManagementPolicy: Parallel/podManagementPolicy: OrderedReady/' \
    "$planted/node-statefulset.yaml"
if "$python" lint.py "$planted" 2>/dev/null; then
    echo "k8s: lint.py missed OrderedReady pods" >&2
    exit 1
fi
echo "k8s: both checks fail on a planted bug"
