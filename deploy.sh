#!/usr/bin/env bash
# Deploy restorefn.
#
#   ./deploy.sh gcp [--dry-run] [--project P] [--region R] [--print-cam-policy]
#   ./deploy.sh scf [--dry-run] [--build-only] [--print-policy] [--stage S] [--region R]
#
# gcp: builds a self-contained source directory (functions/gcp/main.py as main.py, the `shared`
# package, requirements.txt pinned to the versions installed in the venv), creates the request
# and completion-event Pub/Sub topics and the re-check Cloud Tasks queue when they are missing,
# grants each function's runtime account exactly what its code calls (below), and deploys three
# Cloud Functions (gen2): `restore-recheck` (HTTP target of the delayed re-check tasks,
# IAM-protected), `restore-http` (HTTP webhook, IAM-protected) and `restore-pubsub` (triggered
# by the request topic, with --retry). The two functions that start COS restores, and
# restore-recheck itself, schedule re-checks on the queue (RESTORE_RECHECK_SCHEDULER=cloudtasks);
# the tasks carry an OIDC token of the invoker account, which gets the invoker role on
# restore-recheck. Re-running is safe: topics, the queue and the custom roles are described
# before being created (an existing role is updated to exactly its permissions), IAM bindings
# are added idempotently, and `gcloud functions deploy` updates an existing function.
#
# Permissions (deploy/permissions.py computes them; README "Permissions" lists them): project
# custom roles restorefnGcs* bound on the allowed GCS buckets only (an exact name on the bucket
# itself, a "prefix*" pattern as a project binding with an IAM condition on the bucket name;
# any other glob is refused), roles/pubsub.publisher on the event topic (and on the request
# topic for bulk chunks), roles/cloudtasks.enqueuer on the queue, roles/iam.serviceAccountUser
# on the invoker account, roles/secretmanager.secretAccessor on each secret mounted, the
# invoker role on restore-recheck for the invoker and on restore-pubsub for the trigger
# account. Custom roles are project roles: the buckets must be in the same project.
# --print-cam-policy prints the Tencent CAM policy the COS sub-account (COS_SECRET_ID) needs and
# deploys nothing.
#
# --dry-run builds the source directory (local files only) and prints every gcloud command,
# one per line prefixed "+ ", without running any. The topic, queue and role `create` lines are
# what would run when the matching `describe` fails. A real run prints the same lines as it runs
# them.
#
# Environment (defaults in brackets):
#   RESTORE_GCP_PROJECT          project id [GOOGLE_CLOUD_PROJECT]; --project overrides
#   RESTORE_GCP_REGION           region [us-central1]; --region overrides
#   RESTORE_SERVICE_ACCOUNT      runtime service account [restorefn@PROJECT.iam.gserviceaccount.com]
#   RESTORE_SERVICE_ACCOUNT_HTTP, RESTORE_SERVICE_ACCOUNT_PUBSUB, RESTORE_SERVICE_ACCOUNT_RECHECK
#                                one function's runtime account [RESTORE_SERVICE_ACCOUNT]; with
#                                one account for all three, it gets the union of their grants
#   RESTORE_TRIGGER_SERVICE_ACCOUNT  identity Eventarc uses to invoke restore-pubsub
#                                [RESTORE_SERVICE_ACCOUNT_PUBSUB]
#   RESTORE_REQUEST_TOPIC        topic carrying restore requests [restore-requests]
#   RESTORE_EVENT_TOPIC          topic receiving completion CloudEvents [restore-events]
#   RESTORE_RUNTIME              [python312]
#   RESTORE_MEMORY               [256Mi]
#   RESTORE_TIMEOUT              [60s]
#   RESTORE_MAX_INSTANCES        [10]
#   RESTORE_GCS_ALLOWED_BUCKETS  comma-separated names or "prefix*" patterns the functions may
#                                restore in, and where the GCS roles are granted [none]
#   RESTORE_COS_ALLOWED_BUCKETS  the same for Tencent COS [none]; when empty the COS secret is
#                                neither mounted nor granted
#   RESTORE_GCS_ALLOW_OVERWRITE  1: restores may replace a live object (allow_overwrite):
#                                storage.objects.delete on the allowed buckets [0]
#   RESTORE_GCS_COPY_ACL         1: copySourceAcl / projection=full on fine-grained ACL buckets:
#                                storage.objects.getIamPolicy and setIamPolicy [0]
#   RESTORE_BULK_QUEUE           none or pubsub: bulk chunks go to the request topic (publisher
#                                role there, bulkRestore and report roles) [none]
#   RESTORE_GCS_REPORT_BUCKETS   allowed buckets bulk reports are written to (required with
#                                RESTORE_BULK_QUEUE=pubsub and a GCS allowlist) [none]
#   RESTORE_LEDGER               memory or gs://BUCKET/PREFIX (objects create/get/delete on
#                                BUCKET) [memory]
#   RESTORE_WORKFLOWS_CALLBACKS  1: callbacks may go to Cloud Workflows callback endpoints:
#                                workflows.callbacks.send on the project [0]
#   RESTORE_COS_REGIONS, RESTORE_COS_APPID, RESTORE_COS_REPORT_BUCKETS  for --print-cam-policy:
#                                the COS regions, the APPID of "prefix*" patterns, report buckets
#   RESTORE_WEBHOOK_AUTH         hmac or iam, for restore-http [hmac]
#   RESTORE_WEBHOOK_SECRET_NAME  Secret Manager secret mounted as RESTORE_WEBHOOK_SECRETS
#                                [restore-webhook-secrets]
#   RESTORE_COS_SECRET_KEY_NAME  Secret Manager secret mounted as COS_SECRET_KEY
#                                [restore-cos-secret-key]
#   RESTORE_SECRET_VERSION       secret version to mount [latest]
#   RESTORE_COS_SECRET_ID        COS SecretId (not secret), set as COS_SECRET_ID when non-empty
#   RESTORE_RECHECK_QUEUE        Cloud Tasks queue id for delayed re-checks [restore-rechecks]
#   RESTORE_RECHECK_LOCATION     its location [RESTORE_GCP_REGION]
#   RESTORE_RECHECK_QUEUE_MAX_ATTEMPTS, RESTORE_RECHECK_QUEUE_MIN_BACKOFF,
#   RESTORE_RECHECK_QUEUE_MAX_BACKOFF  retry settings of a queue this script creates (an existing
#                                queue is left as it is) [100, 10s, 600s]
#   RESTORE_RECHECK_INVOKER      service account whose OIDC token the tasks carry; gets the
#                                invoker role on restore-recheck [RESTORE_SERVICE_ACCOUNT]
#   RESTORE_RECHECK_URL          URL the tasks call, also the token's audience
#                                [https://REGION-PROJECT.cloudfunctions.net/restore-recheck, the
#                                function's URL]
#   RESTORE_BUILD_DIR            source directory to build [<repo>/build/gcp]
#   RESTORE_GCP_MAIN             entry module to ship as main.py [<repo>/functions/gcp/main.py]
#   RESTORE_PYTHON               interpreter whose installed versions are pinned [<repo>/.venv/bin/python]
#   GCLOUD                       gcloud executable [gcloud]
#
# The secrets must exist in Secret Manager (deploy.sh grants the runtime accounts access to
# each one it mounts). All three functions get the webhook secret: restore-http authenticates
# callers with it, the functions that schedule re-checks sign each task body with it, and
# restore-recheck verifies those signatures when RESTORE_WEBHOOK_AUTH is hmac (with iam it
# relies on the OIDC token alone).
#
# scf: builds the SCF code package in <build dir>/package: functions/tencent/index.py as
# index.py, the `shared` package, and the runtime dependencies (those of pyproject.toml except
# functions-framework) installed as manylinux2014_x86_64 CPython wheels for SCF_PYTHON_VERSION
# by `pip install --platform ... --only-binary=:all: --target`. They are pinned to the versions
# installed in RESTORE_PYTHON's environment (what the tests ran against); pip resolves their own
# dependencies for the target Python. crcmod (required by the COS SDK) publishes no wheel: its
# pure-Python wheel is built first (its C extension is only a speed-up, used nowhere on the
# restore path). When an interpreter of SCF_PYTHON_VERSION is found, the package is
# byte-compiled: everything but /tmp is read-only on SCF, so modules would otherwise be compiled
# again at every cold start (measured: ~0.7 s of imports become ~0.25 s). The size of the package
# is printed unzipped and zipped (<build dir>/restorefn-scf.zip, also usable for an upload in the
# console). Then serverless.yml is copied next to the package and `scf deploy` (npm
# serverless-cloud-framework) runs there with every ${env:...} the file references exported:
# one function with an API Gateway (HTTPS webhook), a CMQ topic and two COS
# (cos:ObjectRestore:Completed and :Post) triggers. Running the CLI in the build directory keeps
# the .env that `scf login` writes out of the repository. Re-running is safe: the build directory
# is rebuilt from scratch and `scf deploy` updates the existing function and triggers.
#
# --dry-run writes only local files (index.py, shared/, requirements.txt, the serverless.yml
# copy), then prints every command, one per line prefixed "+ ", without running any: the
# dependency download and build, the byte-compilation, `cd` and `scf deploy`. The size is not
# measured (no dependencies). --build-only builds the complete package (dependencies
# included) and stops before deploying; the deployment settings are not needed then.
#
# Environment for scf (defaults in brackets; variables named like the function's own are
# passed to the function as they are):
#   RESTORE_SCF_REGION           region of the function, its triggers and the COS trigger
#                                bucket [ap-guangzhou]; --region overrides
#   RESTORE_SCF_STAGE            stage [dev]; --stage overrides
#   RESTORE_SCF_APP              application name [restorefn]
#   RESTORE_SCF_FUNCTION_NAME    function name [restorefn-<stage>]
#   RESTORE_SCF_ROLE             execution role name (required): its temporary keys reach the
#                                function; the generated CAM policy is attached to it
#   RESTORE_SCF_POLICY_NAME      name of that CAM policy [RESTORE_SCF_FUNCTION_NAME]
#   RESTORE_COS_REGIONS          regions of the allowed COS buckets [RESTORE_SCF_REGION]
#   RESTORE_COS_APPID            APPID for "prefix*" bucket patterns [the trigger bucket's]
#   RESTORE_COS_REPORT_BUCKETS   allowed buckets bulk reports (and manifests) live in [none: bulk
#                                jobs are denied writing reports]
#   RESTORE_TENCENT_UIN          account owning the TDMQ topics and queue [the policy creator's]
#   RESTORE_SCF_REQUEST_TOPIC    TDMQ CMQ topic whose messages are restore requests
#                                [restore-requests]
#   RESTORE_SCF_COS_TRIGGER_BUCKET  bucket whose restore events trigger the function (required):
#                                BucketName-APPID, or BucketName-APPID.cos.<region>.myqcloud.com
#   RESTORE_SCF_COS_TRIGGER_PREFIX, RESTORE_SCF_COS_TRIGGER_SUFFIX  object key filter [none]
#   RESTORE_SCF_APIGW_SERVICE_ID existing API Gateway service [none: one is created]
#   RESTORE_SCF_APIGW_SERVICE_NAME  [restorefn]
#   RESTORE_SCF_WEBHOOK_PATH     path of the webhook [/restore]: POST restores, GET with query
#                                parameters and POST <path>/status answer an object's status
#   RESTORE_COS_ALLOWED_BUCKETS, RESTORE_GCS_ALLOWED_BUCKETS  names/globs the function may
#                                restore in (at least one of the two is required)
#   RESTORE_EVENT_TDMQ_TOPIC     TDMQ CMQ topic receiving completion CloudEvents [restore-events]
#   RESTORE_EVENT_TDMQ_REGION    its region [RESTORE_SCF_REGION]
#   RESTORE_WEBHOOK_SECRETS      comma-separated HMAC secrets (required); the webhook always
#                                uses HMAC on SCF (the gateway endpoint itself is public)
#   SCF_PYTHON_VERSION           Python version the dependencies are built for [3.10]; a deploy
#                                requires it to match serverless.yml's runtime
#   RESTORE_SCF_COMPILE_PYTHON   interpreter of that version used to byte-compile the package
#                                [python<SCF_PYTHON_VERSION> when on PATH; "none" skips]
#   RESTORE_SCF_BUILD_DIR        build directory [<repo>/build/scf]
#   RESTORE_SCF_INDEX            entry module shipped as index.py [<repo>/functions/tencent/index.py]
#   RESTORE_PYTHON               interpreter whose installed versions are pinned and whose pip
#                                builds the package [<repo>/.venv/bin/python]
#   SCF                          serverless-cloud-framework executable [scf]
#   TCCLI                        Tencent Cloud CLI executable, for the CAM policy [tccli]
#
# `scf deploy` takes Tencent Cloud credentials from TENCENT_SECRET_ID, TENCENT_SECRET_KEY (and
# TENCENT_TOKEN) or asks for a QR-code login.
#
# The execution role's permissions: <build dir>/cam-policy.json (deploy/permissions.py) allows
# exactly the COS actions (HeadObject and PostObjectRestore on the allowed buckets; for bulk
# jobs GetBucket there and GetBucket/GetObject/PutObject on the report buckets) and TDMQ
# actions (PublishCmqMsg on the event and request topics, SendCmqMsg on the re-check queue)
# the function calls. With tccli (TCCLI) on PATH it is created or updated (`tccli cam
# ListPolicies`, then `UpdatePolicy` or `CreatePolicy`) and attached to RESTORE_SCF_ROLE
# (`AttachRolePolicy`, unless `ListAttachedRolePolicies` lists it); without tccli, and with
# --dry-run, those commands are printed instead. --print-policy prints the policy (only the
# settings it depends on are needed) and does nothing else.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNTIME_DEPS=(functions-framework google-cloud-storage cos-python-sdk-v5 pydantic)

usage() {
    echo "usage: $0 gcp [--dry-run] [--project P] [--region R] [--print-cam-policy]" >&2
    echo "       $0 scf [--dry-run] [--build-only] [--print-policy] [--stage S] [--region R]" >&2
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

ensure_queue() {
    local describe=("${GCLOUD}" tasks queues describe "${RECHECK_QUEUE}"
        "--location=${RECHECK_LOCATION}" "--project=${PROJECT}")
    local create=("${GCLOUD}" tasks queues create "${RECHECK_QUEUE}"
        "--location=${RECHECK_LOCATION}" "--project=${PROJECT}"
        "--max-attempts=${RECHECK_MAX_ATTEMPTS}" "--min-backoff=${RECHECK_MIN_BACKOFF}"
        "--max-backoff=${RECHECK_MAX_BACKOFF}")
    if [[ "${DRY_RUN}" == 1 ]]; then
        run "${describe[@]}"
        run "${create[@]}"
        return 0
    fi
    show "${describe[@]}"
    if "${describe[@]}" >/dev/null 2>&1; then
        echo "  queue ${RECHECK_QUEUE} exists"
    else
        run "${create[@]}"
    fi
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

# The least-privilege plan and policies (deploy/permissions.py, run by RESTORE_PYTHON).
permissions() {
    [[ -x "${PYTHON}" ]] || die "no Python at ${PYTHON} (set RESTORE_PYTHON or run make venv)"
    "${PYTHON}" "${ROOT}/deploy/permissions.py" "$@"
}

# A project custom role with exactly these permissions: created, or updated when it exists
# (undeleted first when it was deleted less than 7 days ago, which blocks a new one of its id).
ensure_role() {
    local id="$1" title="$2" permissions="$3" deleted
    local describe=("${GCLOUD}" iam roles describe "${id}" "--project=${PROJECT}"
        "--format=value(deleted)")
    local create=("${GCLOUD}" iam roles create "${id}" "--project=${PROJECT}" "--title=${title}"
        "--permissions=${permissions}" --stage=GA --quiet)
    local update=("${GCLOUD}" iam roles update "${id}" "--project=${PROJECT}" "--title=${title}"
        "--permissions=${permissions}" --stage=GA --quiet)
    if [[ "${DRY_RUN}" == 1 ]]; then
        run "${describe[@]}"
        run "${create[@]}"
        return 0
    fi
    show "${describe[@]}"
    if deleted="$("${describe[@]}" 2>/dev/null)"; then
        if [[ "${deleted}" == True ]]; then
            run "${GCLOUD}" iam roles undelete "${id}" "--project=${PROJECT}" --quiet
        fi
        run "${update[@]}"
    else
        run "${create[@]}"
    fi
}

# Create the plan's roles and add its bindings: one "kind target member role" line each.
apply_plan() {
    local kind target member role condition
    while IFS=$'\t' read -r -u 3 kind target member role; do
        case "${kind}" in
            role) ensure_role "${target}" "${member}" "${role}" ;;
            bucket)
                run "${GCLOUD}" storage buckets add-iam-policy-binding "gs://${target}" \
                    "--member=${member}" "--role=${role}" ;;
            bucket-prefix)
                # Every bucket (and its objects) whose name starts with the prefix.
                condition="expression=resource.name.startsWith(\"projects/_/buckets/${target}\")"
                run "${GCLOUD}" projects add-iam-policy-binding "${PROJECT}" \
                    "--member=${member}" "--role=${role}" \
                    "--condition=${condition},title=restorefn buckets ${target}*" ;;
            topic)
                run "${GCLOUD}" pubsub topics add-iam-policy-binding "${target}" \
                    "--project=${PROJECT}" "--member=${member}" "--role=${role}" ;;
            secret)
                run "${GCLOUD}" secrets add-iam-policy-binding "${target}" \
                    "--project=${PROJECT}" "--member=${member}" "--role=${role}" ;;
            service-account)
                run "${GCLOUD}" iam service-accounts add-iam-policy-binding "${target}" \
                    "--project=${PROJECT}" "--member=${member}" "--role=${role}" ;;
            queue)
                run "${GCLOUD}" tasks queues add-iam-policy-binding "${target}" \
                    "--location=${RECHECK_LOCATION}" "--project=${PROJECT}" \
                    "--member=${member}" "--role=${role}" ;;
            project)
                run "${GCLOUD}" projects add-iam-policy-binding "${target}" \
                    "--member=${member}" "--role=${role}" --condition=None ;;
            *) die "unknown grant kind '${kind}' in the permission plan" ;;
        esac
    done 3<<<"${PLAN}"
}

flag() {
    local name="$1" value="${!1:-0}"
    [[ "${value}" == 0 || "${value}" == 1 ]] || die "${name} must be 0 or 1, not '${value}'"
    echo "${value}"
}

deploy_gcp() {
    local print_cam_policy=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --print-cam-policy) print_cam_policy=1 ;;
            --project) [[ $# -ge 2 ]] || usage; RESTORE_GCP_PROJECT="$2"; shift ;;
            --project=*) RESTORE_GCP_PROJECT="${1#*=}" ;;
            --region) [[ $# -ge 2 ]] || usage; RESTORE_GCP_REGION="$2"; shift ;;
            --region=*) RESTORE_GCP_REGION="${1#*=}" ;;
            *) echo "deploy.sh: unknown option $1" >&2; usage ;;
        esac
        shift
    done

    PYTHON="${RESTORE_PYTHON:-${ROOT}/.venv/bin/python}"
    local bulk_queue="${RESTORE_BULK_QUEUE:-none}"
    [[ "${bulk_queue}" == none || "${bulk_queue}" == pubsub ]] \
        || die "RESTORE_BULK_QUEUE must be none or pubsub on Google, not '${bulk_queue}'"
    local bulk=0
    [[ "${bulk_queue}" == none ]] || bulk=1
    if [[ "${print_cam_policy}" == 1 ]]; then
        # The sub-account whose keys are COS_SECRET_ID / COS_SECRET_KEY: COS actions only.
        permissions cam-policy --cos-buckets "${RESTORE_COS_ALLOWED_BUCKETS:-}" \
            --cos-regions "${RESTORE_COS_REGIONS:-}" --appid "${RESTORE_COS_APPID:-}" \
            --cos-report-buckets "${RESTORE_COS_REPORT_BUCKETS:-}" --bulk "${bulk}"
        return 0
    fi

    PROJECT="${RESTORE_GCP_PROJECT:-${GOOGLE_CLOUD_PROJECT:-}}"
    [[ -n "${PROJECT}" ]] || die "set RESTORE_GCP_PROJECT or pass --project"
    REGION="${RESTORE_GCP_REGION:-us-central1}"
    SERVICE_ACCOUNT="${RESTORE_SERVICE_ACCOUNT:-restorefn@${PROJECT}.iam.gserviceaccount.com}"
    local account_http="${RESTORE_SERVICE_ACCOUNT_HTTP:-${SERVICE_ACCOUNT}}"
    local account_pubsub="${RESTORE_SERVICE_ACCOUNT_PUBSUB:-${SERVICE_ACCOUNT}}"
    local account_recheck="${RESTORE_SERVICE_ACCOUNT_RECHECK:-${SERVICE_ACCOUNT}}"
    TRIGGER_SERVICE_ACCOUNT="${RESTORE_TRIGGER_SERVICE_ACCOUNT:-${account_pubsub}}"
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
    GCLOUD="${GCLOUD:-gcloud}"
    RECHECK_QUEUE="${RESTORE_RECHECK_QUEUE:-restore-rechecks}"
    RECHECK_LOCATION="${RESTORE_RECHECK_LOCATION:-${REGION}}"
    RECHECK_MAX_ATTEMPTS="${RESTORE_RECHECK_QUEUE_MAX_ATTEMPTS:-100}"
    RECHECK_MIN_BACKOFF="${RESTORE_RECHECK_QUEUE_MIN_BACKOFF:-10s}"
    RECHECK_MAX_BACKOFF="${RESTORE_RECHECK_QUEUE_MAX_BACKOFF:-600s}"
    RECHECK_INVOKER="${RESTORE_RECHECK_INVOKER:-${SERVICE_ACCOUNT}}"
    # A gen2 function answers on https://REGION-PROJECT.cloudfunctions.net/NAME as well as on its
    # run.app URL; this one is known before the first deploy.
    RECHECK_URL="${RESTORE_RECHECK_URL:-https://${REGION}-${PROJECT}.cloudfunctions.net/restore-recheck}"
    local allow_overwrite copy_acl workflows_callbacks
    allow_overwrite="$(flag RESTORE_GCS_ALLOW_OVERWRITE)"
    copy_acl="$(flag RESTORE_GCS_COPY_ACL)"
    workflows_callbacks="$(flag RESTORE_WORKFLOWS_CALLBACKS)"
    local ledger="${RESTORE_LEDGER:-memory}"

    # The COS key only where COS can be used at all.
    local secrets=("--secret=${WEBHOOK_SECRET_NAME}")
    local set_secrets="RESTORE_WEBHOOK_SECRETS=${WEBHOOK_SECRET_NAME}:${SECRET_VERSION}"
    if [[ -n "${RESTORE_COS_ALLOWED_BUCKETS:-}" ]]; then
        secrets+=("--secret=${COS_SECRET_KEY_NAME}")
        set_secrets+=",COS_SECRET_KEY=${COS_SECRET_KEY_NAME}:${SECRET_VERSION}"
    fi

    # Refused settings stop here, before anything is built or called.
    PLAN="$(permissions gcp-plan --project "${PROJECT}" --account-http "${account_http}" \
        --account-pubsub "${account_pubsub}" --account-recheck "${account_recheck}" \
        --invoker "${RECHECK_INVOKER}" --event-topic "${EVENT_TOPIC}" \
        --request-topic "${REQUEST_TOPIC}" --queue "${RECHECK_QUEUE}" "${secrets[@]}" \
        --gcs-buckets "${RESTORE_GCS_ALLOWED_BUCKETS:-}" \
        --gcs-report-buckets "${RESTORE_GCS_REPORT_BUCKETS:-}" --bulk-queue "${bulk_queue}" \
        --ledger "${ledger}" --allow-overwrite "${allow_overwrite}" --copy-acl "${copy_acl}" \
        --workflows-callbacks "${workflows_callbacks}")"

    build_source

    # Bucket lists contain commas, gcloud's list separator: "^|^" makes "|" the separator
    # instead (see `gcloud topic escaping`). Bucket names and globs cannot contain "|".
    local env_vars="^|^GOOGLE_CLOUD_PROJECT=${PROJECT}"
    env_vars+="|RESTORE_GCS_ALLOWED_BUCKETS=${RESTORE_GCS_ALLOWED_BUCKETS:-}"
    env_vars+="|RESTORE_COS_ALLOWED_BUCKETS=${RESTORE_COS_ALLOWED_BUCKETS:-}"
    env_vars+="|RESTORE_GCS_ALLOW_OVERWRITE=${allow_overwrite}"
    env_vars+="|RESTORE_EVENT_SINK=pubsub"
    # google-cloud-storage 3.17 otherwise reads every bucket it touches (and re-checks it after a
    # 404) in a background thread, for tracing attributes: storage.buckets.get, which the report
    # and ledger roles leave out. It tolerates the 403, but each one is a wasted call.
    env_vars+="|DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=true"
    env_vars+="|RESTORE_EVENT_PUBSUB_TOPIC=projects/${PROJECT}/topics/${EVENT_TOPIC}"
    if [[ -n "${RESTORE_COS_SECRET_ID:-}" ]]; then
        env_vars+="|COS_SECRET_ID=${RESTORE_COS_SECRET_ID}"
    fi
    # Delayed re-checks of initiated COS restores, for every function that starts or re-checks
    # one (shared.schedulers.cloudtasks).
    env_vars+="|RESTORE_RECHECK_SCHEDULER=cloudtasks"
    local queue_path="projects/${PROJECT}/locations/${RECHECK_LOCATION}/queues/${RECHECK_QUEUE}"
    env_vars+="|RESTORE_RECHECK_CLOUDTASKS_QUEUE=${queue_path}"
    env_vars+="|RESTORE_RECHECK_URL=${RECHECK_URL}"
    env_vars+="|RESTORE_RECHECK_SERVICE_ACCOUNT=${RECHECK_INVOKER}"
    if [[ "${ledger}" != memory ]]; then
        env_vars+="|RESTORE_LEDGER=${ledger}"
    fi
    if [[ "${bulk}" == 1 ]]; then
        # Chunks go to the request topic, which restore-pubsub consumes: its instances are the
        # workers sharing the restore rate.
        env_vars+="|RESTORE_BULK_QUEUE=pubsub"
        env_vars+="|RESTORE_BULK_PUBSUB_TOPIC=projects/${PROJECT}/topics/${REQUEST_TOPIC}"
        env_vars+="|RESTORE_BULK_MAX_INSTANCES=${MAX_INSTANCES}"
    fi

    local common=(
        --gen2 "--runtime=${RUNTIME}" "--region=${REGION}" "--project=${PROJECT}"
        "--source=${BUILD_DIR}" "--memory=${MEMORY}" "--timeout=${TIMEOUT}"
        "--max-instances=${MAX_INSTANCES}" --quiet
    )

    ensure_topic "${REQUEST_TOPIC}"
    ensure_topic "${EVENT_TOPIC}"
    ensure_queue
    # Before the deploys: a revision whose account cannot read its secrets is refused.
    apply_plan

    run "${GCLOUD}" functions deploy restore-recheck "${common[@]}" \
        "--service-account=${account_recheck}" \
        --entry-point=restore_recheck --trigger-http --no-allow-unauthenticated \
        "--set-env-vars=${env_vars}|RESTORE_WEBHOOK_AUTH=${WEBHOOK_AUTH}" \
        "--set-secrets=${set_secrets}"
    # Cloud Tasks calls it with the invoker account's OIDC token.
    run "${GCLOUD}" functions add-invoker-policy-binding restore-recheck "--region=${REGION}" \
        "--project=${PROJECT}" "--member=serviceAccount:${RECHECK_INVOKER}"

    run "${GCLOUD}" functions deploy restore-http "${common[@]}" \
        "--service-account=${account_http}" \
        --entry-point=restore_http --trigger-http --no-allow-unauthenticated \
        "--set-env-vars=${env_vars}|RESTORE_WEBHOOK_AUTH=${WEBHOOK_AUTH}" \
        "--set-secrets=${set_secrets}"

    run "${GCLOUD}" functions deploy restore-pubsub "${common[@]}" \
        "--service-account=${account_pubsub}" \
        --entry-point=restore_pubsub "--trigger-topic=${REQUEST_TOPIC}" --retry \
        "--trigger-service-account=${TRIGGER_SERVICE_ACCOUNT}" \
        "--set-env-vars=${env_vars}" \
        "--set-secrets=${set_secrets}"
    # Eventarc pushes each message with the trigger account's token: invoker on this one only.
    run "${GCLOUD}" functions add-invoker-policy-binding restore-pubsub "--region=${REGION}" \
        "--project=${PROJECT}" "--member=serviceAccount:${TRIGGER_SERVICE_ACCOUNT}"
}

# -- Tencent SCF -------------------------------------------------------------------------------
# pyproject.toml's runtime dependencies without functions-framework (Google's HTTP server).
SCF_RUNTIME_DEPS=(google-cloud-storage cos-python-sdk-v5 pydantic tencentcloud-sdk-python-tdmq)
# Dependencies that publish no wheel: built here as pure-Python wheels (C extension disabled).
SCF_PURE_SDISTS=(crcmod)
SCF_PLATFORM=manylinux2014_x86_64
# Every ${env:...} that serverless.yml references; deploy_scf sets and exports each one.
SCF_YML_VARS=(
    RESTORE_SCF_APP RESTORE_SCF_STAGE RESTORE_SCF_FUNCTION_NAME RESTORE_SCF_PACKAGE_DIR
    RESTORE_SCF_REGION RESTORE_SCF_ROLE
    RESTORE_COS_ALLOWED_BUCKETS RESTORE_GCS_ALLOWED_BUCKETS
    RESTORE_EVENT_TDMQ_TOPIC RESTORE_EVENT_TDMQ_REGION RESTORE_WEBHOOK_SECRETS
    RESTORE_SCF_APIGW_SERVICE_NAME RESTORE_SCF_APIGW_SERVICE_ID RESTORE_SCF_WEBHOOK_PATH
    RESTORE_SCF_STATUS_PATH
    RESTORE_SCF_REQUEST_TOPIC
    RESTORE_SCF_COS_TRIGGER_BUCKET RESTORE_SCF_COS_TRIGGER_PREFIX RESTORE_SCF_COS_TRIGGER_SUFFIX
    RESTORE_RECHECK_TDMQ_QUEUE RESTORE_RECHECK_MARGIN RESTORE_LEDGER RESTORE_CALLBACK_SECRET
    RESTORE_CALLBACK_ALLOWED_HOSTS
)

# requirements.txt: the SCF runtime dependencies pinned to RESTORE_PYTHON's installed versions,
# and the pinned version of each SCF_PURE_SDISTS distribution installed there (pure.txt).
scf_pins() {
    "${PYTHON}" - "$1" "$2" "${#SCF_RUNTIME_DEPS[@]}" "${SCF_RUNTIME_DEPS[@]}" \
        "${SCF_PURE_SDISTS[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

requirements, pure, count, *names = sys.argv[1:]
deps, sdists = names[: int(count)], names[int(count):]
lines = []
for name in deps:
    try:
        lines.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"deploy.sh: {name} is not installed in {sys.executable}; run make venv")
with open(requirements, "w") as out:
    out.write("\n".join(lines) + "\n")
with open(pure, "w") as out:
    for name in sdists:
        try:
            out.write(f"{name}=={version(name)}\n")
        except PackageNotFoundError:
            pass  # not a dependency any more
PY
}

# COMPILE_PYTHON: an interpreter of SCF_PYTHON_VERSION, or empty when none is available.
find_compile_python() {
    local candidate="${RESTORE_SCF_COMPILE_PYTHON:-}" found=""
    COMPILE_PYTHON=""
    [[ "${candidate}" != none ]] || return 0
    found="$("${candidate:-python${SCF_PYTHON_VERSION}}" -c \
        'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || found=""
    if [[ "${found}" == "${SCF_PYTHON_VERSION}" ]]; then
        COMPILE_PYTHON="${candidate:-python${SCF_PYTHON_VERSION}}"
    elif [[ -n "${candidate}" ]]; then
        die "RESTORE_SCF_COMPILE_PYTHON=${candidate} is not a Python ${SCF_PYTHON_VERSION} interpreter"
    fi
}

# Sizes of the package directory and of its zip (written next to it), and what it holds.
scf_measure() {
    "${PYTHON}" - "${PACKAGE_DIR}" "${BUILD_DIR}/restorefn-scf.zip" <<'PY'
import os
import sys
import zipfile

package, archive = sys.argv[1:]
unzipped = files = 0
with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
    for root, dirs, names in os.walk(package):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            unzipped += os.path.getsize(path)
            files += 1
            zf.write(path, os.path.relpath(path, package))
zipped = os.path.getsize(archive)
dists = sorted(n[: -len(".dist-info")] for n in os.listdir(package) if n.endswith(".dist-info"))
print(f"dependencies ({len(dists)}): {', '.join(dists)}")
print(f"package size: {unzipped / 2**20:.1f} MiB unzipped ({unzipped} bytes, {files} files), "
      f"{zipped / 2**20:.1f} MiB zipped ({zipped} bytes): {archive}")
PY
}

build_scf_package() {
    [[ -n "${BUILD_DIR}" && "${BUILD_DIR}" != "/" ]] || die "refusing to use build dir '${BUILD_DIR}'"
    [[ -x "${PYTHON}" ]] || die "no Python at ${PYTHON} (set RESTORE_PYTHON or run make venv)"
    rm -rf "${BUILD_DIR}"
    mkdir -p "${BUILD_DIR}"
    BUILD_DIR="$(cd "${BUILD_DIR}" && pwd)"
    PACKAGE_DIR="${BUILD_DIR}/package"
    mkdir "${PACKAGE_DIR}"
    if [[ -f "${INDEX_PY}" ]]; then
        cp "${INDEX_PY}" "${PACKAGE_DIR}/index.py"
    elif [[ "${DRY_RUN}" == 1 ]]; then
        echo "deploy.sh: warning: ${INDEX_PY} not found; a real deploy would stop here" >&2
    else
        die "${INDEX_PY} not found: the SCF entry module is required"
    fi
    cp -R "${ROOT}/shared" "${PACKAGE_DIR}/shared"
    find "${PACKAGE_DIR}/shared" -name __pycache__ -type d -prune -exec rm -rf {} +
    cp "${ROOT}/serverless.yml" "${BUILD_DIR}/serverless.yml"
    scf_pins "${BUILD_DIR}/requirements.txt" "${BUILD_DIR}/pure.txt"

    local wheelhouse="${BUILD_DIR}/wheelhouse" name pinned
    mkdir "${wheelhouse}"
    while IFS='=' read -r name _ pinned; do
        # CC=false makes the C extension fail to build: crcmod's setup.py then builds the pure
        # package (py3-none-any). No cache: a wheel cached with the C extension would be reused.
        run env CC=false "${PYTHON}" -m pip wheel --quiet --no-cache-dir --no-deps \
            "--no-binary=${name}" --wheel-dir "${wheelhouse}" "${name}==${pinned}"
        if [[ "${DRY_RUN}" != 1 ]] \
            && ! compgen -G "${wheelhouse}/${name}-${pinned}-py3-none-any.whl" >/dev/null; then
            die "could not build a pure-Python wheel of ${name}==${pinned}"
        fi
    done <"${BUILD_DIR}/pure.txt"
    run "${PYTHON}" -m pip install --quiet --platform "${SCF_PLATFORM}" \
        --python-version "${SCF_PYTHON_VERSION}" --only-binary=:all: --implementation cp \
        --target "${PACKAGE_DIR}" --no-compile --find-links "${wheelhouse}" \
        -r "${BUILD_DIR}/requirements.txt"
    rm -rf "${PACKAGE_DIR:?}/bin"  # console scripts, pointing at this machine's interpreter

    if [[ -z "${COMPILE_PYTHON}" ]]; then
        echo "deploy.sh: no Python ${SCF_PYTHON_VERSION} interpreter (RESTORE_SCF_COMPILE_PYTHON):" \
            "the package is not byte-compiled" >&2
    elif ! run "${COMPILE_PYTHON}" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
        "${PACKAGE_DIR}"; then
        echo "deploy.sh: warning: some files of the package did not byte-compile" >&2
    fi

    echo "built ${PACKAGE_DIR}"
    if [[ "${DRY_RUN}" == 1 ]]; then
        echo "dry run: dependencies not installed, package size not measured"
    else
        scf_measure
    fi
}

# Fail unless serverless.yml deploys the runtime the package is built for.
check_scf_runtime() {
    local runtime
    runtime="$(sed -n 's/^[[:space:]]*runtime:[[:space:]]*\(Python[0-9.]*\).*/\1/p' \
        "${ROOT}/serverless.yml" | head -n 1)"
    [[ "${runtime}" == "Python${SCF_PYTHON_VERSION}" ]] \
        || die "serverless.yml deploys ${runtime:-no Python runtime} but SCF_PYTHON_VERSION is" \
            "${SCF_PYTHON_VERSION} (use --build-only to build for another version)"
}

# Check the deployment settings and export every variable serverless.yml references.
scf_settings() {
    local region="${RESTORE_SCF_REGION:-ap-guangzhou}" bucket secret count=0
    local stage="${RESTORE_SCF_STAGE:-dev}"
    export RESTORE_SCF_REGION="${region}"
    export RESTORE_SCF_STAGE="${stage}"
    export RESTORE_SCF_APP="${RESTORE_SCF_APP:-restorefn}"
    export RESTORE_SCF_FUNCTION_NAME="${RESTORE_SCF_FUNCTION_NAME:-restorefn-${stage}}"
    export RESTORE_SCF_ROLE="${RESTORE_SCF_ROLE:-}"
    [[ -n "${RESTORE_SCF_ROLE}" ]] || die "set RESTORE_SCF_ROLE to the function's execution role"
    export RESTORE_SCF_REQUEST_TOPIC="${RESTORE_SCF_REQUEST_TOPIC:-restore-requests}"

    bucket="${RESTORE_SCF_COS_TRIGGER_BUCKET:-}"
    [[ -n "${bucket}" ]] || die "set RESTORE_SCF_COS_TRIGGER_BUCKET to the bucket whose restore" \
        "events trigger the function (BucketName-APPID)"
    if [[ "${bucket}" != *.* ]]; then
        bucket="${bucket}.cos.${region}.myqcloud.com"
    fi
    [[ "${bucket}" == *".cos.${region}.myqcloud.com" ]] || die "RESTORE_SCF_COS_TRIGGER_BUCKET" \
        "must be a bucket of ${region} (the function's region): ${bucket}"
    export RESTORE_SCF_COS_TRIGGER_BUCKET="${bucket}"
    export RESTORE_SCF_COS_TRIGGER_PREFIX="${RESTORE_SCF_COS_TRIGGER_PREFIX:-}"
    export RESTORE_SCF_COS_TRIGGER_SUFFIX="${RESTORE_SCF_COS_TRIGGER_SUFFIX:-}"

    export RESTORE_SCF_APIGW_SERVICE_ID="${RESTORE_SCF_APIGW_SERVICE_ID:-}"
    export RESTORE_SCF_APIGW_SERVICE_NAME="${RESTORE_SCF_APIGW_SERVICE_NAME:-restorefn}"
    export RESTORE_SCF_WEBHOOK_PATH="${RESTORE_SCF_WEBHOOK_PATH:-/restore}"
    [[ "${RESTORE_SCF_WEBHOOK_PATH}" == /* ]] || die "RESTORE_SCF_WEBHOOK_PATH must start with /"
    # shared.webhook treats a path whose last segment is "status" as the status route.
    export RESTORE_SCF_STATUS_PATH="${RESTORE_SCF_WEBHOOK_PATH%/}/status"

    export RESTORE_COS_ALLOWED_BUCKETS="${RESTORE_COS_ALLOWED_BUCKETS:-}"
    export RESTORE_GCS_ALLOWED_BUCKETS="${RESTORE_GCS_ALLOWED_BUCKETS:-}"
    [[ -n "${RESTORE_COS_ALLOWED_BUCKETS}${RESTORE_GCS_ALLOWED_BUCKETS}" ]] || die "set" \
        "RESTORE_COS_ALLOWED_BUCKETS and/or RESTORE_GCS_ALLOWED_BUCKETS (else every bucket is refused)"
    export RESTORE_EVENT_TDMQ_TOPIC="${RESTORE_EVENT_TDMQ_TOPIC:-restore-events}"
    export RESTORE_EVENT_TDMQ_REGION="${RESTORE_EVENT_TDMQ_REGION:-${region}}"
    export RESTORE_RECHECK_TDMQ_QUEUE="${RESTORE_RECHECK_TDMQ_QUEUE:-restore-rechecks}"
    export RESTORE_RECHECK_MARGIN="${RESTORE_RECHECK_MARGIN:-}"
    export RESTORE_LEDGER="${RESTORE_LEDGER:-memory}"
    export RESTORE_CALLBACK_SECRET="${RESTORE_CALLBACK_SECRET:-}"
    export RESTORE_CALLBACK_ALLOWED_HOSTS="${RESTORE_CALLBACK_ALLOWED_HOSTS:-}"

    export RESTORE_WEBHOOK_SECRETS="${RESTORE_WEBHOOK_SECRETS:-}"
    local secrets
    IFS=, read -ra secrets <<<"${RESTORE_WEBHOOK_SECRETS}"
    for secret in "${secrets[@]}"; do
        [[ -z "${secret// /}" ]] || count=$((count + 1))
    done
    [[ "${count}" -gt 0 ]] || die "set RESTORE_WEBHOOK_SECRETS (comma-separated HMAC secrets):" \
        "the webhook is public and HMAC-signed"
    SECRET_COUNT="${count}"
}

print_scf_settings() {
    local name
    echo "serverless.yml settings (exported):"
    for name in "${SCF_YML_VARS[@]}"; do
        if [[ "${name}" == RESTORE_WEBHOOK_SECRETS ]]; then
            echo "  ${name}=<${SECRET_COUNT} secret(s), not shown>"
        elif [[ "${name}" == RESTORE_CALLBACK_SECRET ]]; then
            echo "  ${name}=<${RESTORE_CALLBACK_SECRET:+set, }not shown>"
        else
            echo "  ${name}=${!name}"
        fi
    done
}

# The execution role's CAM policy for the current settings (deploy/permissions.py), from only
# the settings it depends on (their defaults are scf_settings'). Fails on a setting no
# resource can express.
scf_policy() {
    local region="${RESTORE_SCF_REGION:-ap-guangzhou}"
    permissions cam-policy "$@" --cos-buckets "${RESTORE_COS_ALLOWED_BUCKETS:-}" \
        --cos-regions "${RESTORE_COS_REGIONS:-${region}}" --appid "${RESTORE_COS_APPID:-}" \
        --trigger-bucket "${RESTORE_SCF_COS_TRIGGER_BUCKET:-}" \
        --uin "${RESTORE_TENCENT_UIN:-}" \
        --cos-report-buckets "${RESTORE_COS_REPORT_BUCKETS:-}" --bulk 1 \
        --event-topic "${RESTORE_EVENT_TDMQ_TOPIC:-restore-events}" \
        --event-region "${RESTORE_EVENT_TDMQ_REGION:-${region}}" \
        --bulk-topic "${RESTORE_SCF_REQUEST_TOPIC:-restore-requests}" \
        --recheck-queue "${RESTORE_RECHECK_TDMQ_QUEUE:-restore-rechecks}" \
        --recheck-region "${region}"
}

# Create or update the CAM policy POLICY and attach it to the execution role, with tccli; with
# --dry-run, or without tccli, print what would do it instead.
scf_apply_policy() {
    local name="${RESTORE_SCF_POLICY_NAME:-${RESTORE_SCF_FUNCTION_NAME}}" answer id command
    local role="${RESTORE_SCF_ROLE}"
    local description="restorefn: what ${RESTORE_SCF_FUNCTION_NAME} calls (deploy.sh)"
    local list=("${TCCLI}" cam ListPolicies --Scope Local --Keyword "${name}" --Page 1 --Rp 200)
    local create=("${TCCLI}" cam CreatePolicy --PolicyName "${name}" --PolicyDocument "${POLICY}"
        --Description "${description}")
    local attached=("${TCCLI}" cam ListAttachedRolePolicies --RoleName "${role}" --Page 1
        --Rp 200)
    local attach=("${TCCLI}" cam AttachRolePolicy --PolicyName "${name}"
        --AttachRoleName "${role}")
    if [[ "${DRY_RUN}" == 1 ]]; then
        show "${list[@]}"
        show "${create[@]}"
        show "${attached[@]}"
        show "${attach[@]}"
        return 0
    fi
    if ! command -v "${TCCLI}" >/dev/null; then
        {
            echo "deploy.sh: warning: ${TCCLI} not found: the policy was not applied. Create it"
            echo "  (or, when it exists, UpdatePolicy --PolicyName ${name} --PolicyDocument ...)"
            echo "  and attach it to ${role}:"
            printf -v command ' %q' "${create[@]}"
            echo "   ${command}"
            printf -v command ' %q' "${attach[@]}"
            echo "   ${command}"
        } >&2
        return 0
    fi
    show "${list[@]}"
    answer="$("${list[@]}")"
    id="$(permissions policy-id "${name}" <<<"${answer}")"
    if [[ -n "${id}" ]]; then
        run "${TCCLI}" cam UpdatePolicy --PolicyId "${id}" --PolicyDocument "${POLICY}" \
            --Description "${description}"
    else
        run "${create[@]}"
    fi
    show "${attached[@]}"
    answer="$("${attached[@]}")"
    if permissions attached "${name}" <<<"${answer}"; then
        echo "  policy ${name} is attached to ${role}"
    else
        run "${attach[@]}"
    fi
}

deploy_scf() {
    local build_only=0 print_policy=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --build-only) build_only=1 ;;
            --print-policy) print_policy=1 ;;
            --stage) [[ $# -ge 2 ]] || usage; RESTORE_SCF_STAGE="$2"; shift ;;
            --stage=*) RESTORE_SCF_STAGE="${1#*=}" ;;
            --region) [[ $# -ge 2 ]] || usage; RESTORE_SCF_REGION="$2"; shift ;;
            --region=*) RESTORE_SCF_REGION="${1#*=}" ;;
            *) echo "deploy.sh: unknown option $1" >&2; usage ;;
        esac
        shift
    done

    PYTHON="${RESTORE_PYTHON:-${ROOT}/.venv/bin/python}"
    if [[ "${print_policy}" == 1 ]]; then
        scf_policy
        return 0
    fi
    SCF_PYTHON_VERSION="${SCF_PYTHON_VERSION:-3.10}"
    [[ "${SCF_PYTHON_VERSION}" =~ ^3\.[0-9]+$ ]] \
        || die "SCF_PYTHON_VERSION must look like 3.10, not '${SCF_PYTHON_VERSION}'"
    BUILD_DIR="${RESTORE_SCF_BUILD_DIR:-${ROOT}/build/scf}"
    INDEX_PY="${RESTORE_SCF_INDEX:-${ROOT}/functions/tencent/index.py}"
    SCF="${SCF:-scf}"
    TCCLI="${TCCLI:-tccli}"
    find_compile_python

    if [[ "${build_only}" == 0 ]]; then
        check_scf_runtime
        scf_settings
        POLICY="$(scf_policy --compact)"
        if [[ "${DRY_RUN}" != 1 ]] && ! command -v "${SCF}" >/dev/null; then
            die "${SCF} not found: npm install -g serverless-cloud-framework (or set SCF)"
        fi
    fi

    build_scf_package
    [[ "${build_only}" == 0 ]] || return 0

    "${PYTHON}" -m json.tool --indent 2 <<<"${POLICY}" >"${BUILD_DIR}/cam-policy.json"
    echo "CAM policy for ${RESTORE_SCF_ROLE}: ${BUILD_DIR}/cam-policy.json"
    scf_apply_policy

    export RESTORE_SCF_PACKAGE_DIR="${PACKAGE_DIR}"
    print_scf_settings
    # In the build directory: serverless.yml's copy is there, and so is the .env that
    # `scf login` writes (credentials), out of the repository.
    show cd "${BUILD_DIR}"
    show "${SCF}" deploy
    if [[ "${DRY_RUN}" == 1 ]]; then
        return 0
    fi
    (cd "${BUILD_DIR}" && "${SCF}" deploy)
}

[[ $# -ge 1 ]] || usage
target="$1"
shift
case "${target}" in
    gcp) deploy_gcp "$@" ;;
    scf) deploy_scf "$@" ;;
    -h | --help) usage ;;
    *) echo "deploy.sh: unknown target ${target}" >&2; usage ;;
esac
