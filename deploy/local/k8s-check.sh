#!/usr/bin/env bash
# Validates deploy/k8s offline: kustomize renders the base, each component and both together;
# deploy/local/k8s_check.py checks them against kubernetes-validate's schemas (CRDs structurally).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The newest kustomize whose module builds with this machine's Go (1.26); built once into .local.
KUSTOMIZE_VERSION=v5.8.2
KUSTOMIZE="$ROOT/.local/bin/kustomize"
WORK="$ROOT/.local/k8s-check"

if [[ "$("$KUSTOMIZE" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]]; then
  GO="$(command -v go || echo /usr/local/go/bin/go)"
  [[ -x "$GO" ]] || { echo "k8s-check: ERROR: Go is needed to build kustomize" >&2; exit 1; }
  echo "k8s-check: building kustomize $KUSTOMIZE_VERSION into .local/bin (once)" >&2
  (cd "$ROOT" && GOBIN="$ROOT/.local/bin" GOTOOLCHAIN=local "$GO" install \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
fi

rm -rf "$WORK"
mkdir -p "$WORK"
# Each component is rendered the way an overlay would use it: the base plus the component.
overlay() {
  local name="$1"; shift
  mkdir -p "$WORK/$name"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [../../../deploy/k8s]"
    echo "components:"
    for component in "$@"; do echo "  - ../../../deploy/k8s/components/$component"; done
  } >"$WORK/$name/kustomization.yaml"
}
targets=(base)
"$KUSTOMIZE" build "$ROOT/deploy/k8s" >"$WORK/base.yaml"
components=()
for dir in "$ROOT"/deploy/k8s/components/*/; do
  component="$(basename "$dir")"
  components+=("$component")
  overlay "$component" "$component"
  targets+=("$component")
done
overlay all "${components[@]}"
targets+=(all)
for name in "${targets[@]:1}"; do "$KUSTOMIZE" build "$WORK/$name" >"$WORK/$name.yaml"; done

rendered=()
for name in "${targets[@]}"; do rendered+=("$WORK/$name.yaml"); done
"$ROOT/.venv/bin/python" "$ROOT/deploy/local/k8s_check.py" "${rendered[@]}"
