#!/usr/bin/env bash
# Deploy restorefn.
#
#   ./deploy.sh gcp [--dry-run] [--project P] [--region R]
#   ./deploy.sh scf                      (Tencent SCF: not implemented yet, exits 2)
#
# gcp: builds a self-contained source directory (functions/gcp/main.py as main.py, the `shared`
# package, requirements.txt pinned to the versions installed in the venv), creates the request
# and completion-event Pub/Sub topics when they are missing, and deploys two Cloud Functions
# (gen2): `restore-http` (HTTP webhook, IAM-protected) and `restore-pubsub` (triggered by the
# request topic, with --retry). Re-running is safe: topics are described before being created and
# `gcloud functions deploy` updates an existing function.
#
# --dry-run builds the source directory (local files only) and prints every gcloud command,
# one per line prefixed "+ ", without running any. The topic `create` lines are what would run
# when the matching `describe` fails. A real run prints the same lines as it runs them.
#
# Environment (defaults in brackets):
#   RESTORE_GCP_PROJECT          project id [GOOGLE_CLOUD_PROJECT]; --project overrides
#   RESTORE_GCP_REGION           region [us-central1]; --region overrides
#   RESTORE_SERVICE_ACCOUNT      runtime service account [restorefn@PROJECT.iam.gserviceaccount.com]
#   RESTORE_TRIGGER_SERVICE_ACCOUNT  identity Eventarc uses to invoke restore-pubsub
#                                [RESTORE_SERVICE_ACCOUNT]
#   RESTORE_REQUEST_TOPIC        topic carrying restore requests [restore-requests]
#   RESTORE_EVENT_TOPIC          topic receiving completion CloudEvents [restore-events]
#   RESTORE_RUNTIME              [python312]
#   RESTORE_MEMORY               [256Mi]
#   RESTORE_TIMEOUT              [60s]
#   RESTORE_MAX_INSTANCES        [10]
#   RESTORE_GCS_ALLOWED_BUCKETS  comma-separated names/globs the functions may restore in [none]
#   RESTORE_COS_ALLOWED_BUCKETS  the same for Tencent COS [none]
#   RESTORE_WEBHOOK_AUTH         hmac or iam, for restore-http [hmac]
#   RESTORE_WEBHOOK_SECRET_NAME  Secret Manager secret mounted as RESTORE_WEBHOOK_SECRETS
#                                [restore-webhook-secrets]
#   RESTORE_COS_SECRET_KEY_NAME  Secret Manager secret mounted as COS_SECRET_KEY
#                                [restore-cos-secret-key]
#   RESTORE_SECRET_VERSION       secret version to mount [latest]
#   RESTORE_COS_SECRET_ID        COS SecretId (not secret), set as COS_SECRET_ID when non-empty
#   RESTORE_BUILD_DIR            source directory to build [<repo>/build/gcp]
#   RESTORE_GCP_MAIN             entry module to ship as main.py [<repo>/functions/gcp/main.py]
#   RESTORE_PYTHON               interpreter whose installed versions are pinned [<repo>/.venv/bin/python]
#   GCLOUD                       gcloud executable [gcloud]
#
# The secrets must exist in Secret Manager and be readable by the runtime service account.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNTIME_DEPS=(functions-framework google-cloud-storage cos-python-sdk-v5 pydantic)

usage() {
    echo "usage: $0 gcp [--dry-run] [--project P] [--region R] | $0 scf" >&2
    exit 2
}

die() {
    echo "deploy.sh: $*" >&2
    exit 1
}

DRY_RUN=0

# Print a command: "+ " and its words, shell-quoted.
show() {
    local line
    printf -v line ' %q' "$@"
    echo "+${line}"
}

# Print a command and run it, unless --dry-run.
run() {
    show "$@"
    if [[ "${DRY_RUN}" == 1 ]]; then
        return 0
    fi
    "$@"
}

ensure_topic() {
    local topic="$1"
    local describe=("${GCLOUD}" pubsub topics describe "${topic}" "--project=${PROJECT}")
    local create=("${GCLOUD}" pubsub topics create "${topic}" "--project=${PROJECT}")
    if [[ "${DRY_RUN}" == 1 ]]; then
        run "${describe[@]}"
        run "${create[@]}"
        return 0
    fi
    show "${describe[@]}"
    if "${describe[@]}" >/dev/null 2>&1; then
        echo "  topic ${topic} exists"
    else
        run "${create[@]}"
    fi
}

pinned_requirements() {
    "${PYTHON}" - "${RUNTIME_DEPS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"deploy.sh: {name} is not installed in {sys.executable}; run make venv")
PY
}

build_source() {
    [[ -n "${BUILD_DIR}" && "${BUILD_DIR}" != "/" ]] || die "refusing to use build dir '${BUILD_DIR}'"
    [[ -x "${PYTHON}" ]] || die "no Python at ${PYTHON} (set RESTORE_PYTHON or run make venv)"
    rm -rf "${BUILD_DIR}"
    mkdir -p "${BUILD_DIR}"
    if [[ -f "${MAIN_PY}" ]]; then
        cp "${MAIN_PY}" "${BUILD_DIR}/main.py"
    elif [[ "${DRY_RUN}" == 1 ]]; then
        echo "deploy.sh: warning: ${MAIN_PY} not found; a real deploy would stop here" >&2
    else
        die "${MAIN_PY} not found: the GCP entry module is required to deploy"
    fi
    cp -R "${ROOT}/shared" "${BUILD_DIR}/shared"
    find "${BUILD_DIR}/shared" -name __pycache__ -type d -prune -exec rm -rf {} +
    pinned_requirements >"${BUILD_DIR}/requirements.txt"
    echo "built ${BUILD_DIR}"
}

deploy_gcp() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --project) [[ $# -ge 2 ]] || usage; RESTORE_GCP_PROJECT="$2"; shift ;;
            --project=*) RESTORE_GCP_PROJECT="${1#*=}" ;;
            --region) [[ $# -ge 2 ]] || usage; RESTORE_GCP_REGION="$2"; shift ;;
            --region=*) RESTORE_GCP_REGION="${1#*=}" ;;
            *) echo "deploy.sh: unknown option $1" >&2; usage ;;
        esac
        shift
    done

    PROJECT="${RESTORE_GCP_PROJECT:-${GOOGLE_CLOUD_PROJECT:-}}"
    [[ -n "${PROJECT}" ]] || die "set RESTORE_GCP_PROJECT or pass --project"
    REGION="${RESTORE_GCP_REGION:-us-central1}"
    SERVICE_ACCOUNT="${RESTORE_SERVICE_ACCOUNT:-restorefn@${PROJECT}.iam.gserviceaccount.com}"
    TRIGGER_SERVICE_ACCOUNT="${RESTORE_TRIGGER_SERVICE_ACCOUNT:-${SERVICE_ACCOUNT}}"
    REQUEST_TOPIC="${RESTORE_REQUEST_TOPIC:-restore-requests}"
    EVENT_TOPIC="${RESTORE_EVENT_TOPIC:-restore-events}"
    RUNTIME="${RESTORE_RUNTIME:-python312}"
    MEMORY="${RESTORE_MEMORY:-256Mi}"
    TIMEOUT="${RESTORE_TIMEOUT:-60s}"
    MAX_INSTANCES="${RESTORE_MAX_INSTANCES:-10}"
    WEBHOOK_AUTH="${RESTORE_WEBHOOK_AUTH:-hmac}"
    WEBHOOK_SECRET_NAME="${RESTORE_WEBHOOK_SECRET_NAME:-restore-webhook-secrets}"
    COS_SECRET_KEY_NAME="${RESTORE_COS_SECRET_KEY_NAME:-restore-cos-secret-key}"
    SECRET_VERSION="${RESTORE_SECRET_VERSION:-latest}"
    BUILD_DIR="${RESTORE_BUILD_DIR:-${ROOT}/build/gcp}"
    MAIN_PY="${RESTORE_GCP_MAIN:-${ROOT}/functions/gcp/main.py}"
    PYTHON="${RESTORE_PYTHON:-${ROOT}/.venv/bin/python}"
    GCLOUD="${GCLOUD:-gcloud}"

    build_source

    # Bucket lists contain commas, gcloud's list separator: "^|^" makes "|" the separator
    # instead (see `gcloud topic escaping`). Bucket names and globs cannot contain "|".
    local env_vars="^|^GOOGLE_CLOUD_PROJECT=${PROJECT}"
    env_vars+="|RESTORE_GCS_ALLOWED_BUCKETS=${RESTORE_GCS_ALLOWED_BUCKETS:-}"
    env_vars+="|RESTORE_COS_ALLOWED_BUCKETS=${RESTORE_COS_ALLOWED_BUCKETS:-}"
    env_vars+="|RESTORE_EVENT_SINK=pubsub"
    env_vars+="|RESTORE_EVENT_PUBSUB_TOPIC=projects/${PROJECT}/topics/${EVENT_TOPIC}"
    if [[ -n "${RESTORE_COS_SECRET_ID:-}" ]]; then
        env_vars+="|COS_SECRET_ID=${RESTORE_COS_SECRET_ID}"
    fi
    local cos_secret="COS_SECRET_KEY=${COS_SECRET_KEY_NAME}:${SECRET_VERSION}"
    local webhook_secret="RESTORE_WEBHOOK_SECRETS=${WEBHOOK_SECRET_NAME}:${SECRET_VERSION}"

    local common=(
        --gen2 "--runtime=${RUNTIME}" "--region=${REGION}" "--project=${PROJECT}"
        "--source=${BUILD_DIR}" "--service-account=${SERVICE_ACCOUNT}"
        "--memory=${MEMORY}" "--timeout=${TIMEOUT}" "--max-instances=${MAX_INSTANCES}"
        --quiet
    )

    ensure_topic "${REQUEST_TOPIC}"
    ensure_topic "${EVENT_TOPIC}"

    run "${GCLOUD}" functions deploy restore-http "${common[@]}" \
        --entry-point=restore_http --trigger-http --no-allow-unauthenticated \
        "--set-env-vars=${env_vars}|RESTORE_WEBHOOK_AUTH=${WEBHOOK_AUTH}" \
        "--set-secrets=${webhook_secret},${cos_secret}"

    run "${GCLOUD}" functions deploy restore-pubsub "${common[@]}" \
        --entry-point=restore_pubsub "--trigger-topic=${REQUEST_TOPIC}" --retry \
        "--trigger-service-account=${TRIGGER_SERVICE_ACCOUNT}" \
        "--set-env-vars=${env_vars}" \
        "--set-secrets=${cos_secret}"
}

[[ $# -ge 1 ]] || usage
target="$1"
shift
case "${target}" in
    gcp) deploy_gcp "$@" ;;
    scf)
        echo "deploy.sh: the scf target is not implemented yet" >&2
        exit 2
        ;;
    -h | --help) usage ;;
    *) echo "deploy.sh: unknown target ${target}" >&2; usage ;;
esac
