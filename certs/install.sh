#!/usr/bin/env bash
# Creates (or rotates) pullcheck's serving certificate and installs it in the cluster:
#   1. `pullcheck certs` writes ca.crt, ca.key, tls.crt, tls.key into DIR,
#   2. the Secret pullcheck-tls (type kubernetes.io/tls) is created or updated,
#   3. the CA goes into the caBundle of every webhook of the ValidatingWebhookConfiguration.
#
# Usage: certs/install.sh [DIR]            (default DIR: ./pullcheck-certs)
#
# If DIR already holds ca.crt and ca.key, that CA is reused and only the serving
# certificate is renewed (the caBundle does not change). NEW_CA=1 replaces the CA.
#
# Environment:
#   PULLCHECK   pullcheck binary (default: `pullcheck` on PATH, else `cargo run --release`)
#   NAMESPACE   namespace of the webhook Service (default: pullcheck)
#   SERVICE     name of the webhook Service (default: pullcheck)
#   SECRET      TLS Secret the Deployment mounts (default: pullcheck-tls)
#   WEBHOOK     ValidatingWebhookConfiguration (default: pullcheck)
#   DAYS        validity of the serving certificate (default: 365)
#   KUBECTL     kubectl command (default: kubectl); KUBECONFIG/--context as usual
#   NEW_CA=1    create a new CA even if DIR has one
set -euo pipefail

NAMESPACE=${NAMESPACE:-pullcheck}
SERVICE=${SERVICE:-pullcheck}
SECRET=${SECRET:-pullcheck-tls}
WEBHOOK=${WEBHOOK:-pullcheck}
DAYS=${DAYS:-365}
KUBECTL=${KUBECTL:-kubectl}
DIR=${1:-./pullcheck-certs}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

pullcheck() {
    if [[ -n "${PULLCHECK:-}" ]]; then
        "$PULLCHECK" "$@"
    elif command -v pullcheck >/dev/null 2>&1; then
        command pullcheck "$@"
    else
        cargo run --quiet --release --manifest-path "$here/../Cargo.toml" -- "$@"
    fi
}

log() { printf '==> %s\n' "$*" >&2; }

# 1. Certificates.
args=(certs --service "$SERVICE" --namespace "$NAMESPACE" --out-dir "$DIR" --days "$DAYS")
if [[ -z "${NEW_CA:-}" && -f "$DIR/ca.crt" && -f "$DIR/ca.key" ]]; then
    log "reusing the CA in $DIR: renewing the serving certificate only"
    args+=(--ca-cert "$DIR/ca.crt" --ca-key "$DIR/ca.key")
elif [[ -n "${NEW_CA:-}" ]]; then
    log "creating a new CA in $DIR (NEW_CA is set)"
    args+=(--force)
fi
pullcheck "${args[@]}" >/dev/null

# 2. Secret. The namespace normally comes from `kubectl apply -k webhook-config/...`;
# create it if this runs first, so the Secret is waiting when the pods start.
if ! "$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1; then
    log "creating namespace $NAMESPACE"
    "$KUBECTL" create namespace "$NAMESPACE"
fi
# Server-side apply: a client-side `kubectl apply` would copy the private key into the
# kubectl.kubernetes.io/last-applied-configuration annotation.
log "applying Secret $NAMESPACE/$SECRET"
"$KUBECTL" -n "$NAMESPACE" create secret tls "$SECRET" \
    --cert="$DIR/tls.crt" --key="$DIR/tls.key" \
    --dry-run=client -o yaml |
    "$KUBECTL" apply --server-side --force-conflicts --field-manager=pullcheck-certs -f -

# 3. caBundle of every webhook entry ("add" creates or replaces the field).
if ! "$KUBECTL" get validatingwebhookconfiguration "$WEBHOOK" >/dev/null 2>&1; then
    log "ValidatingWebhookConfiguration $WEBHOOK not found: apply webhook-config/overlays/<mode> and run this again"
    exit 1
fi
ca_bundle=$(base64 < "$DIR/ca.crt" | tr -d '\n')
count=$("$KUBECTL" get validatingwebhookconfiguration "$WEBHOOK" -o go-template='{{len .webhooks}}')
ops=()
for ((i = 0; i < count; i++)); do
    ops+=("{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_bundle\"}")
done
if ((count > 0)); then
    patch="[$(IFS=,; echo "${ops[*]}")]"
    log "setting the caBundle of $count webhooks in $WEBHOOK"
    "$KUBECTL" patch validatingwebhookconfiguration "$WEBHOOK" --type=json -p "$patch"
fi

log "done. Keep $DIR/ca.key private (it signs the next serving certificate);"
log "the pods pick up a renewed Secret within about a minute, without a restart."
