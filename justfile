# Recipes for operators and developers. `./dev <recipe>` runs any of them on a fresh machine.
set dotenv-load := false
set positional-arguments := false
# A refusal reads as the platform's one line and its exit status: no echoed command line, and
# no "error: Recipe `promote` failed on line N" after it (`just --dry-run` shows the commands).
set quiet := true
set no-exit-message := true

py := justfile_directory() / ".venv/bin/python"
export PYTHONPATH := justfile_directory()

# list every recipe
default:
    @just --list --unsorted

# install Python dependencies and the offline datasets (Debian's fashion-mnist where apt works)
setup: _install-datasets _install-prometheus _install-chromium
    @{{py}} -c "import torch, litestar; print('ready: torch', torch.__version__)"

# Debian's fashion-mnist (the full 70,000 images), for training, batch jobs and the tests
_install-datasets: (_apt "dataset-fashion-mnist" "/usr/share/datasets/fashion-mnist" "set DATA_DIR or ALLOW_DOWNLOAD=1" "fashion_mnist needs 'sudo apt-get install dataset-fashion-mnist', DATA_DIR, or ALLOW_DOWNLOAD=1")

# Prometheus from Debian's package, for `just monitor` and the dashboard test (skipped without it)
_install-prometheus: (_apt "prometheus" "prometheus" "the dashboard test will skip" "`just monitor` needs 'sudo apt-get install prometheus'")

# Chromium from Debian's package, for the web console's browser tests (skipped without it)
_install-chromium: (_apt "chromium" "chromium" "the browser tests will skip" "the web console's browser tests need 'sudo apt-get install chromium'")

# install Debian's PACKAGE unless PRESENT (an absolute folder, or a command) is there already: as
# root with apt-get (again after apt-get update); else WARNING if that fails, or NOTE if not root
[positional-arguments]
_apt PACKAGE PRESENT WARNING NOTE:
    #!/bin/sh
    case "$2" in
        /*) if [ -d "$2" ]; then exit 0; fi ;;
        *) if command -v "$2" >/dev/null 2>&1; then exit 0; fi ;;
    esac
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing the Debian package $1" >&2
        (apt-get install -y -q "$1" >/dev/null 2>&1 \
            || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$1" >/dev/null)) \
            || echo "warning: could not install $1; $3" >&2
    else
        echo "note: $4" >&2
    fi

# the main job end to end on embedded servers: train, register, promote, roll back, history
demo: _install-datasets
    {{py}} -m cli demo

# run the whole test suite (embedded servers unless DATABASE_URL / REDIS_URL are set)
[positional-arguments]
test *ARGS: _install-datasets _install-prometheus _install-chromium
    {{py}} -m pytest "$@"

# lint and format check
lint:
    {{py}} -m ruff check .
    {{py}} -m ruff format --check .

# regenerate the README's configuration table from the settings (settings/table.py)
settings-table:
    {{py}} -m settings --write README.md

# regenerate docs/api.md's endpoint table from the app's routes (api/reference.py)
api-reference:
    {{py}} -m api.reference --write docs/api.md

# re-resolve requirements.lock (and the image's ops/requirements-image.lock) from pyproject.toml,
# with every file's hash, keeping current pins (`just lock --upgrade` takes the newest)
[positional-arguments]
lock *ARGS:
    {{py}} -m uv pip compile pyproject.toml --extra dev --extra mnist --generate-hashes \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --custom-compile-command "just lock" --quiet -o requirements.lock "$@"
    {{py}} -m uv pip compile pyproject.toml -c requirements.lock --generate-hashes \
        --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --custom-compile-command "just lock" --quiet -o ops/requirements-image.lock

# upgrade the database schema to head
migrate:
    {{py}} -m cli migrate

# start the embedded servers (if the URLs are unset) and print where they are
servers:
    {{py}} -m cli servers

# run the API on 127.0.0.1:8000 (PORT overrides): API_WORKERS processes on one port, models on DEVICE
serve:
    {{py}} -m api

# register NAME VERSION ARTIFACT (a torch state dict file)
register NAME VERSION ARTIFACT:
    {{py}} -m cli register "{{NAME}}" "{{VERSION}}" "{{ARTIFACT}}"

# promote NAME VERSION to prod; past a required gate: --force --reason "why"
[positional-arguments]
promote NAME VERSION *FLAGS:
    {{py}} -m cli promote "$@"

# approve a pending promotion request of NAME VERSION as a second key (four eyes): --reason "why"
[positional-arguments]
approve NAME VERSION *FLAGS:
    {{py}} -m cli approve "$@"

# roll NAME back to the version that was prod before the current one: [--reason "why"]
[positional-arguments]
rollback NAME *FLAGS:
    {{py}} -m cli rollback "$@"

# take NAME VERSION out of prod (the model then has no prod version)
[positional-arguments]
demote NAME VERSION *FLAGS:
    {{py}} -m cli demote "$@"

# set tags on NAME VERSION: just tag m v1 owner=ml stage=candidate (an empty value removes a tag)
[positional-arguments]
tag NAME VERSION +TAGS:
    {{py}} -m cli tag "$@"

# retire NAME VERSION so it can no longer be promoted
[positional-arguments]
archive NAME VERSION *FLAGS:
    {{py}} -m cli archive "$@"

# list all models, or the versions of NAME
list NAME="":
    {{py}} -m cli list {{NAME}}

# the audit trail of NAME, read from the event log; `--at TIME`: its versions and prod at that moment
[positional-arguments]
history NAME *ARGS:
    {{py}} -m cli history "$@"

# create an API key for NAME with ROLE (reader < predictor < operator < admin): printed once, stored as its SHA-256
[positional-arguments]
create-key NAME ROLE *FLAGS:
    {{py}} -m cli create-key "$@"

# revoke NAME's API key (every API process refuses it within KEY_CACHE_TTL_S)
[positional-arguments]
revoke-key NAME *FLAGS:
    {{py}} -m cli revoke-key "$@"

# list API keys: names, roles, who created or revoked them (never the keys)
keys:
    {{py}} -m cli keys

# dead-lettered entries with their reasons (of STREAM, e.g. jobs.shards, or of every stream)
[positional-arguments]
dlq STREAM="" *FLAGS:
    #!/bin/sh
    # no STREAM: drop the empty default, which the CLI would read as a stream's name
    if [ -z "$1" ]; then shift; fi
    exec {{py}} -m cli dlq "$@"

# hand dead letter ID back to its consumer group (recorded as DeadLetterRetried with your name)
[positional-arguments]
dlq-retry ID *FLAGS:
    {{py}} -m cli dlq-retry "$@"

# discard dead letter ID (recorded as DeadLetterDropped with your name)
[positional-arguments]
dlq-drop ID *FLAGS:
    {{py}} -m cli dlq-drop "$@"

# verify the event log's hash chain
verify:
    {{py}} -m cli verify

# drop the projections and rebuild them from the event log
rebuild-projections:
    {{py}} -m cli rebuild-projections

# publish pending events to Redis Streams once (the API does this continuously); `--rebuild STREAM` first recreates STREAM from the log, its consumer groups at their positions
[positional-arguments]
relay *ARGS:
    {{py}} -m cli relay "$@"

# the audit trail from the log: [--from POSITION | --since TIME] [--model NAME] [--type EVENT_TYPE] [--actor NAME] [--json] [--source stream]
[positional-arguments]
replay *ARGS:
    {{py}} -m cli replay "$@"

# print the log's head (position, hash, time) as one line to keep outside the database
anchor:
    @{{py}} -m cli anchor

# print the log's public key (made on first use, mode 600, under STATE_DIR): give it to verifiers and witnesses
audit-key:
    @{{py}} -m cli audit-key

# print the latest signed checkpoint (C2SP note, with cosignatures); --new signs one of the log now; --json
[positional-arguments]
checkpoint *FLAGS:
    @{{py}} -m cli checkpoint "$@"

# write a verifiable bundle of the log to FILE: every entry [up to --to POSITION], or with --model NAME the model's streams, each entry with its inclusion proof
[positional-arguments]
export-trail FILE *FLAGS:
    {{py}} -m cli export-trail "$@"

# verify a bundle with public keys only (no database, Redis or network): --key KEYFILE [--witness KEYFILE]... [--model NAME] [--at TIME]...; exit 0 verified, 4 not
[positional-arguments]
verify-offline FILE *FLAGS:
    {{py}} -m cli.offline verify-offline "$@"

# write the evidence of NAME VERSION's promotion to FILE: registration, gate verdict and promotion, proven into one signed checkpoint
[positional-arguments]
receipt NAME VERSION FILE:
    {{py}} -m cli receipt "$@"

# verify a promotion receipt offline: --key KEYFILE [--witness KEYFILE]... [--artifact PATH]; exit 0 verified, 4 not
[positional-arguments]
verify-receipt FILE *FLAGS:
    {{py}} -m cli.offline verify-receipt "$@"

# check the chain (and an anchor: --anchor LINE), every projection and every stream against the log; exit 4 naming the first bad position
[positional-arguments]
audit *ARGS:
    {{py}} -m cli audit "$@"

# make a witness key: FILE gets the private key (mode 600), stdout the public key line for WITNESS_KEYS
[positional-arguments]
witness-key NAME FILE:
    {{py}} -m cli witness-key "$@"

# run a witness of the log at URL: --key FILE --state DIR [--log-key FILE] [--api-key KEY] [--interval S] [--once]; cosigns consistent checkpoints, exit 4 (--once) on a refused one
[positional-arguments]
witness URL *ARGS:
    {{py}} -m cli witness "$@"

# retrain NAME VERSION from the recipe in its registration event and compare the sha256
reproduce NAME VERSION:
    {{py}} -m cli reproduce "{{NAME}}" "{{VERSION}}"

# write the AsyncAPI 3 document of every event stream (docs/asyncapi.json; also served at /asyncapi.json)
asyncapi OUT="docs/asyncapi.json":
    {{py}} -m cli asyncapi --out "{{OUT}}"

# stop the embedded servers
down:
    {{py}} -m cli down

# start the Docker Compose stack (needs a Docker engine)
up:
    docker compose up -d --build

# stop the Docker Compose stack and remove its volumes
compose-down:
    docker compose down -v

# remove artifacts, reports, caches and the embedded servers' state
clean: down
    rm -rf artifacts reports/*.json .platform .pytest_cache .ruff_cache

# train ARCH on DATASET's train split and register it as a new version of MODEL_NAME
train MODEL_NAME ARCH DATASET EPOCHS="":
    {{py}} -m cli train "{{MODEL_NAME}}" "{{ARCH}}" "{{DATASET}}" {{EPOCHS}}

# list the datasets installed here
datasets:
    {{py}} -m cli datasets

# train and register the demo model versions (alias of the original make target)
register-demo: demo

# load-test a running API (the original harness flags; reports under reports/)
loadtest URL="http://127.0.0.1:8000" CONCURRENCY="10" TOTAL="200" MODEL="mnist_cnn":
    {{py}} -m bench.loadtest --url "{{URL}}" --concurrency {{CONCURRENCY}} --total {{TOTAL}} --model_name "{{MODEL}}"

# the original target name for the load test
alias run-loadtest := loadtest

# benchmark: bare loop, a plain baseline server and ours at 1 and N processes, c=1/8/32 (--arch resnet18, --workers N...)
[positional-arguments]
bench-predict *ARGS:
    {{py}} -m bench.bench_predict "$@"

# benchmark: PSS of each process of an idle `python -m api` (defaults, a model loaded) against a bare `import torch`; reports/api_memory.json
[positional-arguments]
bench-memory *ARGS:
    {{py}} -m bench.bench_memory "$@"

# profile /predict at concurrency 1 and 32 with py-spy: microseconds per request by stage
[positional-arguments]
profile-predict *ARGS:
    {{py}} -m bench.profile_predict "$@"

# Prometheus on 127.0.0.1:9090 scraping the API and workers running here (PROMETHEUS_LISTEN overrides)
monitor: _install-prometheus
    {{py}} -m cli.monitor

# run a worker: the batch-inference, metric-aggregation and gate-evaluation consumer groups (run as many as you like)
worker:
    {{py}} -m consumers

# evaluate NAME (prod, or VERSION) on DATASET through the consumer groups, with a progress bar
batch NAME DATASET VERSION="":
    {{py}} -m cli batch "{{NAME}}" "{{DATASET}}" {{VERSION}}

# the original target: evaluate the prod mnist_cnn on fashion_mnist_1000
run-batch NAME="mnist_cnn" DATASET="fashion_mnist_1000":
    {{py}} -m cli batch "{{NAME}}" "{{DATASET}}"

# gate CANDIDATE against BASELINE of NAME through the gate-evaluation group: [--dataset ID] [--json]; exit 0 PASS, 1 FAIL, 4 INCONCLUSIVE
[positional-arguments]
gate NAME CANDIDATE BASELINE *FLAGS:
    {{py}} -m cli gate "$@"

# the original target: gate NAME's prod version against itself, which must PASS (delta 0, p-value 1)
gate-demo NAME="mnist_cnn":
    {{py}} -m cli gate-demo "{{NAME}}"

# show NAME's gate policy, or change it: --require-gate --auto-promote --no-auto-gate --max-accuracy-drop 0.01 --max-latency-increase 0.1 --alpha 0.025 --min-images 200 --on-inconclusive block --max-gate-age-s 86400 --gate-dataset ID --min-gate-images N --force-role admin --approvals-required 2 --max-request-age-s 86400 --reason "why"
[positional-arguments]
gate-policy NAME *FLAGS:
    {{py}} -m cli gate-policy "$@"

# show NAME's traffic capture policy, or set it: --fraction F --max-per-s N --retention-days D --reason "why" (docs/traffic.md)
[positional-arguments]
capture NAME *FLAGS:
    {{py}} -m cli capture "$@"

# shadow VERSION of NAME on prod's requests (sequential verdict): --fraction F --for 30m --margin 0.01; `just shadow NAME --stop` (docs/online.md)
[positional-arguments]
shadow NAME *ARGS:
    {{py}} -m cli shadow "$@"

# canary VERSION of NAME, followed live (exit 0 promoted, 1 aborted): --steps 5,25,50,100 --min-requests N --max-duration 1h; --abort (docs/online.md)
[positional-arguments]
canary NAME *ARGS:
    {{py}} -m cli canary "$@"

# freeze NAME's captured requests into a dataset (traffic:<name>) for batch and gate: --since T --until T --labelled-only
[positional-arguments]
dataset-from-traffic NAME DATASET_ID *FLAGS:
    {{py}} -m cli dataset-from-traffic "$@"

# benchmark: the batch pipeline with 1 and 2 workers vs the bare loop over fashion_mnist_10000, on DEVICE (--arch resnet18)
[positional-arguments]
bench-batch *ARGS:
    {{py}} -m bench.bench_batch "$@"

# benchmark: training mnist_cnn on fashion_mnist (target >= 0.90 accuracy in <= 3 minutes)
[positional-arguments]
bench-train *ARGS:
    {{py}} -m bench.bench_train "$@"

# benchmark (~11 min, scratch database): append throughput with and without the Merkle tree, replay, proofs on 1,000,000 events, export-trail + verify-offline, `just audit`
[positional-arguments]
bench-events *ARGS:
    {{py}} -m bench.bench_events "$@"

# time every web console page on 100,000 events and a model with 1,000 versions (scratch database)
[positional-arguments]
bench-console *ARGS:
    {{py}} -m bench.bench_console "$@"

# benchmark (~3 min; ~12 the first time, training 3 models; scratch STATE_DIR): prod at c=32 with no shadow / shadow 0.1 / 1.0, canaries (20,50,100) of a 3-points-worse and an equal candidate
[positional-arguments]
bench-shadow *ARGS:
    {{py}} -m bench.bench_shadow "$@"

# faults across hosts (root; ~2 min): network namespaces data, api (2 processes), worker1, worker2; SCENARIO: partition loss promotion restart leader (all by default); table + reports/chaos.json
[positional-arguments]
chaos *SCENARIOS: _install-datasets
    {{py}} -m bench.chaos "$@"

# soak (N min of load + start-up, warm-up and drain: 14 min for N=10 on 2 busy cores; scratch servers unless DATABASE_URL and REDIS_URL): the API (2 processes) and 2 workers under mixed load; RSS, fds, p99, errors, jobs each minute; table + reports/soak.json, exit 1 if a criterion fails
[positional-arguments]
soak *ARGS: _install-datasets
    {{py}} -m bench.soak "$@"
