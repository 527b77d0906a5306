#!/usr/bin/env bash
# GPU figures to put beside the CPU ones (issue 12), on a machine with one CUDA GPU.
#
#     bash benchmarks/gpu.sh
#
# Unattended, at most GPU_BENCH_BUDGET_S seconds in all (default 465, under 8 minutes): every
# step runs under its own `timeout` (GPU_BENCH_MATRIX_S 100, GPU_BENCH_ALDA_S 60 each,
# GPU_BENCH_SERVE_S 90, GPU_BENCH_ALGEBRA_S what is left, at most 300), each capped by what
# is left of the budget, and a step that fails or times out does not stop the others.
# Steps, in this order (the last writes its JSON after every case, so a squeezed budget
# still keeps what it measured):
#
#   determinism   the ALDA determinism matrix on the GPU (tests/workers/alda_worker.py, as
#                 tests/test_alda_determinism.py runs it, one process per topology): every
#                 executor and workload on the GPU must give the bytes of the host loop over
#                 single chunks on the GPU, with XLA_FLAGS=--xla_gpu_deterministic_ops=true,
#                 in two processes (run to run); the same without the flag, and 8 simulated
#                 CPU devices, for comparison                -> determinism.json
#   alda-det-ops  benchmarks/alda.py's workloads on the GPU (jit, LaborArray(1), fast), with
#                 --xla_gpu_deterministic_ops=true          -> logs/alda-deterministic-ops.json
#   alda-default  the same with XLA's default flags, and _machine.device_memory_bandwidth()
#                                                            -> logs/alda-default.json
#   alda-cost     what the flag costs, side by side          -> alda.json
#   serve         benchmarks/serve.py --quick --no-mlserver  -> serve.json
#   algebra       benchmarks/algebra.py --sizes 100000 1000000 4000000 --oracle-rows 100000
#                 --repeats 7                                -> algebra.json
#
# Results go to benchmarks/results/gpu/ (GPU_BENCH_RESULTS), each step's output to logs/
# there; the script ends with one line per step (ok / failed / timed out, seconds) and
# writes them to summary.txt.
#
# Exit status: 0 when every step passed, or when there is no CUDA GPU here (one line,
# "skipped"); 1 when a step failed or timed out; 2 when there is a GPU but JAX cannot be
# made to use it (no CUDA plugin and no package index or wheels to install it from).
#
# Python: GPU_BENCH_PYTHON if set, else the project's .venv (made by `make .venv/.installed`,
# the Makefile's stamp target, when it is missing and a package index can be reached), else
# the `python3` on PATH when its JAX already sees the GPU (as on machines whose image ships
# JAX with CUDA), with liam-core imported from this source tree. When JAX lacks its CUDA
# plugin, `pip install "jax[cuda12]==<installed jax>"` (cuda13 when the driver supports CUDA
# 13) is run into that interpreter, from GPU_BENCH_WHEELS (a folder of wheels: no index) or
# the configured package index after checking that it answers. The wheels of GPU_BENCH_WHEELS
# (default: .whl/ in the repository, if present) are also installed into a temporary folder
# put first on PYTHONPATH, to bring missing packages to a machine without an index.
#
# XLA flags: none inherited (XLA_FLAGS is cleared). The deterministic steps add
# --xla_gpu_deterministic_ops=true: it excludes XLA:GPU's non-deterministic ops (atomics in
# scatter and reductions) and turns off autotuning, whose choice of kernels (cuBLAS, Triton)
# can differ from one process to the next. JAX_PLATFORMS names the GPU backend first and
# CPU second; JAX then falls back to the CPU silently when CUDA does not start, so each step
# checks where it ran (the ALDA runs their default device, algebra and serve the devices in
# their JSON, the matrix the backend of each worker) and fails if that was not the GPU.
# The matrix's processes share the GPU at once, so they do not preallocate its memory. With
# several GPUs the matrix also runs the workers over all of them (the cross-device-count
# check proper); everything else uses the first.

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P) || exit 1
cd "$ROOT" || exit 1

BUDGET_S=${GPU_BENCH_BUDGET_S:-465}
RESULTS=${GPU_BENCH_RESULTS:-$ROOT/benchmarks/results/gpu}
DET_FLAGS="--xla_gpu_deterministic_ops=true"
KILL_AFTER_S=10 # SIGKILL this long after a step's SIGTERM (JAX catches SIGTERM)
RESERVE_S=5     # kept back for the summary
MIN_STEP_S=20   # a step that would get less is skipped

say() { printf 'gpu.sh: %s\n' "$*"; }
skip() {
    say "skipped: $*"
    exit 0
}

START=$SECONDS
elapsed() { echo $((SECONDS - START)); }
left() { echo $((BUDGET_S - (SECONDS - START))); }
half() { # half of what is left, at most $1 s: the set-up's commands together stay in the budget
    local h=$(($(left) / 2))
    ((h > $1)) && h=$1
    ((h < 1)) && h=1
    echo "$h"
}

# ---------------------------------------------------------------- is there a CUDA GPU?

if ! command -v nvidia-smi >/dev/null 2>&1; then
    skip "no CUDA GPU here (nvidia-smi not found)"
fi
GPU_LIST=$(timeout 30 nvidia-smi -L 2>/dev/null | grep '^GPU ')
if [[ -z $GPU_LIST ]]; then
    skip "no CUDA GPU here (nvidia-smi lists none)"
fi
GPU_COUNT=$(printf '%s\n' "$GPU_LIST" | wc -l)
DRIVER_CUDA=$(timeout 30 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\).*/\1/p' | head -n 1)

mkdir -p "$RESULTS/logs" || exit 1
LOGS=$RESULTS/logs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/liam-gpu-bench.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
STEP_PID=""
on_signal() { # stop the running step (timeout passes the signal on to it), then stop
    if [[ -n $STEP_PID ]]; then
        kill -TERM "$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
    fi
    say "interrupted"
    exit 130
}
trap on_signal INT TERM
SITE=$WORK/site
mkdir -p "$SITE"

unset XLA_FLAGS JAX_PLATFORMS
export PYTHONUNBUFFERED=1

say "$GPU_COUNT GPU(s): $(printf '%s\n' "$GPU_LIST" | head -n 1 | sed 's/ (UUID.*//'); driver CUDA ${DRIVER_CUDA:-?}"
if ((GPU_COUNT > 1)); then
    say "note: $GPU_COUNT GPUs; the figures are of the first, the matrix also runs over all"
fi

# ---------------------------------------------------------------- the steps' bookkeeping

STEP_NAMES=()
STEP_STATES=()
STEP_SECONDS=()
STEP_NOTES=()

record() { # name state seconds note
    STEP_NAMES+=("$1")
    STEP_STATES+=("$2")
    STEP_SECONDS+=("$3")
    STEP_NOTES+=("$4")
    printf 'gpu.sh: %-13s %-10s %4d s  %s\n' "$1" "$2" "$3" "$4"
}

append_note() { # TEXT: added to the last step's note (the summary line and summary.txt)
    local i=$((${#STEP_NOTES[@]} - 1))
    [[ -n $1 ]] && STEP_NOTES[i]="${STEP_NOTES[i]:+${STEP_NOTES[i]}; }$1"
    return 0
}

summary() {
    local i line total
    total=$(elapsed)
    {
        echo "gpu.sh summary ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), ${total} s of a ${BUDGET_S} s budget)"
        echo "results: $RESULTS"
        echo "logs:    $LOGS"
        for i in "${!STEP_NAMES[@]}"; do
            printf '  %-13s %-10s %4d s  %s\n' "${STEP_NAMES[$i]}" "${STEP_STATES[$i]}" \
                "${STEP_SECONDS[$i]}" "${STEP_NOTES[$i]}"
        done
    } >"$RESULTS/summary.txt"
    echo
    cat "$RESULTS/summary.txt"
    for line in "${STEP_STATES[@]}"; do
        [[ $line == ok ]] || return 1
    done
    return 0
}

# run_step NAME CAP_S NOTE_FILE -- COMMAND...: COMMAND under `timeout`, output to logs/NAME.log.
# The note file (written by the command, optional) holds the one-line summary of the step.
run_step() {
    local name=$1 cap=$2 note_file=$3
    shift 4
    local log=$LOGS/$name.log budget start rc state note
    budget=$(($(left) - KILL_AFTER_S - RESERVE_S))
    ((budget > cap)) && budget=$cap
    if ((budget < MIN_STEP_S)); then
        record "$name" skipped 0 "no time left in the ${BUDGET_S} s budget"
        return 1
    fi
    say "$name: running (at most ${budget} s; log $log)"
    rm -f "$note_file"
    start=$SECONDS
    # In the background, so that a signal to this script reaches the step (see on_signal).
    timeout --kill-after="$KILL_AFTER_S" "$budget" "$@" >"$log" 2>&1 </dev/null &
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    STEP_PID=""
    note=""
    [[ -s $note_file ]] && note=$(head -n 1 "$note_file")
    case $rc in
    0) state=ok ;;
    124 | 137) state="timed out" note="after ${budget} s${note:+; $note}" ;;
    *) state=failed note="exit $rc${note:+; $note}" ;;
    esac
    record "$name" "$state" $((SECONDS - start)) "$note"
    if [[ $state != ok ]]; then
        sed 's/^/    | /' "$log" | tail -n 15
    fi
    [[ $state == ok ]]
}

# ---------------------------------------------------------------- which Python

registry_answers() { # PYTHON PACKAGE: the configured package index lists PACKAGE
    timeout "$(half 40)" "$1" -m pip index versions "$2" --disable-pip-version-check --retries 0 \
        --timeout 10 >"$WORK/index.txt" 2>&1
}

venv_works() { # the project's .venv exists and has JAX (a half-made one does not count)
    [[ -x $ROOT/.venv/bin/python ]] && "$ROOT/.venv/bin/python" -c "import jax" >/dev/null 2>&1
}

PY_FROM=""
if [[ -n ${GPU_BENCH_PYTHON:-} ]]; then
    PY=$GPU_BENCH_PYTHON
    PY_FROM="GPU_BENCH_PYTHON"
elif venv_works; then
    PY=$ROOT/.venv/bin/python
    PY_FROM=".venv"
else
    BASE_PY=$(command -v python3.11 || command -v python3 || true)
    if [[ -n $BASE_PY ]] && registry_answers "$BASE_PY" hydra-core; then
        budget=$(half 300)
        say "no working .venv: making it (make .venv/.installed, at most $budget s)"
        timeout --kill-after=10 "$budget" make PYTHON="$BASE_PY" .venv/.installed \
            >"$LOGS/venv.log" 2>&1 || say "making .venv failed (log $LOGS/venv.log)"
    fi
    if venv_works; then
        PY=$ROOT/.venv/bin/python
        PY_FROM=".venv (made now)"
    elif [[ -n $BASE_PY ]]; then
        PY=$BASE_PY
        PY_FROM="python3 on PATH, no working .venv"
    else
        say "failed: no working .venv and no python3 on PATH"
        exit 2
    fi
fi

WHEELS=${GPU_BENCH_WHEELS:-}
[[ -z $WHEELS && -d $ROOT/.whl ]] && WHEELS=$ROOT/.whl
if [[ -n $WHEELS ]]; then
    shopt -s nullglob
    wheel_files=("$WHEELS"/*.whl)
    shopt -u nullglob
    if ((${#wheel_files[@]})); then
        say "installing ${#wheel_files[@]} wheel(s) of $WHEELS into a temporary PYTHONPATH folder"
        timeout "$(half 120)" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --disable-pip-version-check --upgrade --target "$SITE" "${wheel_files[@]}" \
            >"$LOGS/wheels.log" 2>&1 || say "installing the wheels failed (log $LOGS/wheels.log)"
    fi
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

# liam-core from this tree when the interpreter has none: a package folder of links to
# src/liam_core/* plus conf/ as liam_core.conf (what the wheel ships), first on PYTHONPATH.
if ! "$PY" -c "import liam_core" >/dev/null 2>&1; then
    mkdir -p "$SITE/liam_core"
    for entry in "$ROOT"/src/liam_core/*; do
        [[ $(basename "$entry") == __pycache__ ]] || ln -sfn "$entry" "$SITE/liam_core/"
    done
    ln -sfn "$ROOT/conf" "$SITE/liam_core/conf"
    PY_FROM="$PY_FROM, liam-core from src/"
fi

# ---------------------------------------------------------------- does JAX see the GPU?

cat >"$WORK/probe.py" <<'PY'
"""Print what this interpreter's JAX sees, one key=value a line (for benchmarks/gpu.sh)."""
import importlib.metadata as metadata


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


print("jax=" + version("jax"))
print("jaxlib=" + version("jaxlib"))
print("plugins=" + " ".join(
    f"{name}=={version(name)}" for name in ("jax-cuda12-plugin", "jax-cuda13-plugin")
    if version(name)
))
extras = (metadata.metadata("jax").get_all("Provides-Extra") or []) if version("jax") else []
print("extras=" + " ".join(extra for extra in extras if extra in ("cuda12", "cuda13")))
try:
    import jax

    gpus = jax.devices("gpu")
    print("gpus=" + str(len(gpus)))
    print("kind=" + gpus[0].device_kind)
except Exception as error:  # noqa: BLE001 - any failure means: no GPU for JAX
    print("gpus=0")
    print("error=" + " ".join(str(error).split())[:300])
else:
    try:  # the backend's name for JAX_PLATFORMS ("cuda"); a private API, hence the fallback
        from jax._src import xla_bridge

        names = [n for n, backend in xla_bridge.backends().items() if backend.platform == "gpu"]
    except Exception:  # noqa: BLE001
        names = []
    print("backend=" + (names[0] if names else "cuda"))
PY

probe() {
    declare -gA JAXINFO=()
    local key value
    while IFS='=' read -r key value; do
        [[ -n $key ]] && JAXINFO[$key]=$value
    done < <(timeout "$(half 120)" "$PY" "$WORK/probe.py" 2>"$LOGS/probe.log")
}

setup_fail() {
    record setup failed "$(elapsed)" "$1"
    summary
    exit 2
}

probe
if [[ -z ${JAXINFO[jax]:-} ]]; then
    setup_fail "$PY ($PY_FROM) has no jax (log $LOGS/probe.log)"
fi
INSTALL_NOTE=""
if [[ ${JAXINFO[gpus]:-0} == 0 ]]; then
    JAX_VERSION=${JAXINFO[jax]}
    if [[ -n ${GPU_BENCH_JAX_CUDA:-} ]]; then
        CUDA_EXTRA=$GPU_BENCH_JAX_CUDA
    elif [[ ${JAXINFO[plugins]:-} == *jax-cuda12-plugin* ]]; then
        CUDA_EXTRA=cuda12 # the plugin there, at this jax's version
    elif [[ ${JAXINFO[plugins]:-} == *jax-cuda13-plugin* ]]; then
        CUDA_EXTRA=cuda13
    elif [[ ${DRIVER_CUDA:-12} -ge 13 && ${JAXINFO[extras]:-} == *cuda13* ]]; then
        CUDA_EXTRA=cuda13
    else
        CUDA_EXTRA=cuda12
    fi
    SPEC="jax[$CUDA_EXTRA]==$JAX_VERSION"
    say "JAX $JAX_VERSION sees no GPU (${JAXINFO[error]:-no error}; plugins: ${JAXINFO[plugins]:-none})"
    if [[ -n $WHEELS ]]; then
        say "installing $SPEC from the wheels in $WHEELS"
        timeout --kill-after=10 "$(half 300)" "$PY" -m pip install -q --no-index \
            --find-links "$WHEELS" --disable-pip-version-check "$SPEC" >"$LOGS/plugin.log" 2>&1 ||
            setup_fail "could not install $SPEC from $WHEELS: $(tail -n 1 "$LOGS/plugin.log" | cut -c1-200) (log $LOGS/plugin.log)"
        INSTALL_NOTE="installed $SPEC from $WHEELS"
    elif registry_answers "$PY" "jax-$CUDA_EXTRA-plugin"; then
        if ! grep -q -- "$JAX_VERSION" "$WORK/index.txt"; then
            setup_fail "the package index has no jax-$CUDA_EXTRA-plugin $JAX_VERSION for jax $JAX_VERSION"
        fi
        budget=$(half 300)
        say "installing $SPEC from the package index (at most $budget s; log $LOGS/plugin.log)"
        timeout --kill-after=10 "$budget" "$PY" -m pip install -q \
            --disable-pip-version-check "$SPEC" >"$LOGS/plugin.log" 2>&1 ||
            setup_fail "could not install $SPEC: $(tail -n 1 "$LOGS/plugin.log" | cut -c1-200) (log $LOGS/plugin.log)"
        INSTALL_NOTE="installed $SPEC"
    else
        setup_fail "JAX $JAX_VERSION has no working CUDA plugin, and no package index answers here ($(tail -n 1 "$WORK/index.txt" | cut -c1-160)); on a machine that reaches one, pip download \"$SPEC\" -d DIR, bring DIR and set GPU_BENCH_WHEELS=DIR"
    fi
    probe
    if [[ ${JAXINFO[gpus]:-0} == 0 ]]; then
        setup_fail "JAX still sees no GPU after '$INSTALL_NOTE' (${JAXINFO[error]:-}; log $LOGS/plugin.log)"
    fi
fi
GPU_PLATFORMS="${JAXINFO[backend]:-cuda},cpu"
record setup ok "$(elapsed)" "python $PY ($PY_FROM), jax ${JAXINFO[jax]}, ${JAXINFO[gpus]} x ${JAXINFO[kind]:-gpu}${INSTALL_NOTE:+, $INSTALL_NOTE}"

has_modules() { # MODULE...: all importable, else a note names the missing ones and it fails
    local missing
    missing=$("$PY" - "$@" 2>/dev/null <<'PY'
import importlib.util
import sys

print(" ".join(name for name in sys.argv[1:] if importlib.util.find_spec(name) is None))
PY
    ) || missing="(the import check itself failed)"
    [[ -z $missing ]] && return 0
    echo "$missing"
    return 1
}

# on_gpu JSON: fail the last step unless JSON's machine.devices are GPUs (JAX_PLATFORMS
# "cuda,cpu" falls back to the CPU silently when CUDA does not start).
on_gpu() {
    local devices i
    devices=$("$PY" -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["machine"]["devices"]))' \
        "$1" 2>/dev/null)
    [[ $devices == *cuda* || $devices == *gpu* ]] && return 0
    i=$((${#STEP_STATES[@]} - 1))
    STEP_STATES[i]=failed
    append_note "ran on '${devices:-?}', not the GPU"
    say "${STEP_NAMES[i]}: failed: it ran on '${devices:-?}', not the GPU"
    return 1
}

# needs NAME MODULE...: record NAME as failed when a module is missing (returns 1).
needs() {
    local name=$1 missing
    shift
    if ! missing=$(has_modules "$@"); then
        record "$name" failed 0 "missing Python modules: $missing (carry their wheels: GPU_BENCH_WHEELS)"
        return 1
    fi
}

# ---------------------------------------------------------------- (b) the determinism matrix

cat >"$WORK/matrix.py" <<'PY'
"""The ALDA determinism matrix on one GPU (written and run by benchmarks/gpu.sh).

tests/test_alda_determinism.py proves that every topology gives the bytes of a host-side
loop over single chunks (jax.jit of the kernel per chunk, the pairwise tree in numpy). One
GPU has one topology; what it can show is the premise that makes the device count not
matter there: every executor (pmap, shard_map) and workload on the GPU gives the bytes of
that host loop run on the GPU, run to run. Four worker processes run at once: the GPU with
the deterministic-ops flag (twice), the GPU with XLA's default flags, and 8 simulated CPU
devices (for the GPU-against-CPU comparison, which is expected to differ: other kernels).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

root, out, logs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
budget, det_flags, gpu_platforms = float(sys.argv[4]), sys.argv[5], sys.argv[6]
note, gpu_count = Path(sys.argv[7]), int(sys.argv[8])
WORKER = root / "tests" / "workers" / "alda_worker.py"
WORKLOADS = ("sum", "mean", "covariance", "map", "train")

# JAX_PLATFORMS="cuda,cpu" falls back to the CPU silently when CUDA does not start: the
# runner prints the backend the worker ran on, and a GPU run on anything else fails.
RUNNER = (
    "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
    "import jax; print('PLATFORM=' + jax.default_backend(), flush=True)"
)
env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
env.update(PYTHONUNBUFFERED="1", XLA_PYTHON_CLIENT_PREALLOCATE="false")
gpu = ["--devices", "1", "--executors", "pmap,shard_map", "--reference"]
one = {"CUDA_VISIBLE_DEVICES": "0"} if gpu_count > 1 else {}
gpu_det = {"JAX_PLATFORMS": gpu_platforms, "XLA_FLAGS": det_flags, **one}
RUNS = {
    "gpu_deterministic_ops": (gpu, gpu_det),
    "gpu_deterministic_ops_again": (gpu, gpu_det),
    "gpu_default_flags": (gpu, {"JAX_PLATFORMS": gpu_platforms, **one}),
    "cpu_8_devices": (["--devices", "8", "--reference"], {"JAX_PLATFORMS": "cpu"}),
}
if gpu_count > 1:  # every GPU: rows spread over gpu_count devices, the same bytes expected
    all_gpus = {"JAX_PLATFORMS": gpu_platforms, "XLA_FLAGS": det_flags}
    RUNS[f"gpu_{gpu_count}_devices_deterministic_ops"] = (gpu, all_gpus)

started = time.monotonic()
deadline = started + budget
processes = {}
for name, (args, extra) in RUNS.items():
    with open(logs / f"determinism-{name}.stderr.log", "w") as stderr:
        processes[name] = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(WORKER), *args], stdout=subprocess.PIPE,
            stderr=stderr,
            text=True, cwd=root, env={**env, **extra},
        )
runs = {}
for name, process in processes.items():
    entry = {"args": RUNS[name][0], "env": RUNS[name][1]}
    try:
        stdout, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        entry["returncode"] = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, _ = process.communicate()
        entry["returncode"] = None
        entry["timed_out"] = True
    entry["seconds"] = round(time.monotonic() - started, 1)
    lines = [line for line in stdout.splitlines() if line.startswith('{"devices"')]
    entry["report"] = json.loads(lines[-1]) if lines else None
    platforms = [line[9:] for line in stdout.splitlines() if line.startswith("PLATFORM=")]
    entry["platform"] = platforms[-1] if platforms else None
    wanted = "cpu" if name.startswith("cpu") else "gpu"
    if entry["report"] is not None and entry["platform"] != wanted:
        entry["report_dropped"] = f"ran on {entry['platform']}, not {wanted}"
        entry["report"] = None
    runs[name] = entry
    print(name, "exit", entry["returncode"], "after", entry["seconds"], "s", flush=True)


def cells(name):
    report = runs[name]["report"] or {}
    return {
        key: value for key, value in report.get("digests", {}).items()
        if key.rsplit("/", 1)[-1] in WORKLOADS
    }


def against_reference(name):
    """Cells of a run that differ from its own host loop over single chunks."""
    report = runs[name]["report"]
    if report is None:
        return None
    reference = report.get("reference", {})
    mine = cells(name)
    differ = [key for key, value in mine.items() if value != reference.get(key.rsplit("/", 1)[-1])]
    return {"cells": len(mine), "differ": differ}


def between(a, b):
    """Cells (and reference digests) that differ between two runs."""
    if runs[a]["report"] is None or runs[b]["report"] is None:
        return None
    first, second = cells(a), cells(b)
    ref_a, ref_b = runs[a]["report"]["reference"], runs[b]["report"]["reference"]
    return {
        "cells_compared": len(set(first) & set(second)),
        "cells_differ": sorted(k for k in set(first) & set(second) if first[k] != second[k]),
        "references_differ": sorted(k for k in set(ref_a) & set(ref_b) if ref_a[k] != ref_b[k]),
    }


checks = {name: against_reference(name) for name in RUNS}
checks["run_to_run_deterministic_ops"] = between("gpu_deterministic_ops", "gpu_deterministic_ops_again")
checks["deterministic_ops_vs_default_flags"] = between("gpu_deterministic_ops", "gpu_default_flags")
checks["gpu_vs_cpu"] = between("gpu_deterministic_ops", "cpu_8_devices")
must_match = ["gpu_deterministic_ops", "gpu_deterministic_ops_again"]
if gpu_count > 1:
    many = f"gpu_{gpu_count}_devices_deterministic_ops"
    must_match.append(many)
    checks[f"1_vs_{gpu_count}_gpus_deterministic_ops"] = between("gpu_deterministic_ops", many)
expected = 2 * len(WORKLOADS)  # pmap and shard_map, every workload
ok = all(
    checks[name] is not None and checks[name]["cells"] == expected and not checks[name]["differ"]
    for name in must_match
) and all(
    check is not None and not check["cells_differ"] and not check["references_differ"]
    for key, check in checks.items()
    if key == "run_to_run_deterministic_ops" or key.endswith("_gpus_deterministic_ops")
)

result = {
    "what": __doc__.strip(),
    "xla_flags_deterministic": det_flags,
    "jax_platforms_gpu": gpu_platforms,
    "passed": ok,
    "checks": checks,
    "runs": runs,
}
out.write_text(json.dumps(result, indent=2) + "\n")


def brief(name):
    check = checks[name]
    if check is None:
        return f"{name}: " + runs[name].get("report_dropped", "no report")
    return f"{name}: {check['cells'] - len(check['differ'])}/{check['cells']} = host loop"


gpu_cpu = checks["gpu_vs_cpu"]
parts = [brief(name) for name in RUNS]
parts.append(
    "GPU vs CPU: n/a" if gpu_cpu is None
    else f"GPU vs CPU: {len(gpu_cpu['references_differ'])}/{len(WORKLOADS)} references differ"
)
note.write_text("; ".join(parts) + "\n")
print(json.dumps(checks, indent=2))
sys.exit(0 if ok else 1)
PY

# ---------------------------------------------------------------- (b) ALDA timing, with and without the flag

cat >"$WORK/alda_gpu.py" <<'PY'
"""benchmarks/alda.py's workloads on one GPU (written and run by benchmarks/gpu.sh).

alda.py compares 8 simulated CPU devices; one GPU has one device, so this times, on the
GPU, plain jax.jit of the whole batch, LaborArray(1) (deterministic) and LaborArray(1,
fast=True), with alda.py's own workloads, data and timing rounds. Run once per XLA_FLAGS
setting (each process starts its backend with the flags it has); --compare puts two runs
side by side.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--root", required=True)
parser.add_argument("--rows", type=int, default=1_000_000)
parser.add_argument("--repeats", type=int, default=7)
parser.add_argument("--workloads", default="sum,mean,covariance,gram,value_and_grad")
parser.add_argument("--label", default="")
parser.add_argument("--out", required=True)
parser.add_argument("--note", default=None)
parser.add_argument("--bandwidth", action="store_true", help="also _machine.device_memory_bandwidth")
parser.add_argument("--compare", nargs=2, metavar=("DETERMINISTIC", "DEFAULT"))
options = parser.parse_args()


def write_note(text):
    if options.note:
        Path(options.note).write_text(text + "\n")


if options.compare:
    runs = [json.loads(Path(path).read_text()) for path in options.compare]
    deterministic, default = runs
    cost, same = {}, {}
    for workload, entry in deterministic["workloads"].items():
        other = default["workloads"].get(workload)
        if other is None:
            continue
        cost[workload] = {
            name: round(ms / other["median_ms"][name], 3)
            for name, ms in entry["median_ms"].items() if other["median_ms"].get(name)
        }
        same[workload] = {
            name: digest == other["digests"].get(name) for name, digest in entry["digests"].items()
        }
    result = {
        "what": "the cost of --xla_gpu_deterministic_ops=true: median ms with the flag over "
        "median ms without it, per workload and candidate (> 1: the flag costs time); and "
        "whether the flag changed the result's bytes",
        "deterministic_ops_over_default": cost,
        "same_digest_with_and_without_flag": same,
        "deterministic_ops": deterministic,
        "default": default,
    }
    Path(options.out).write_text(json.dumps(result, indent=2) + "\n")
    ratios = [r for entry in cost.values() for name, r in entry.items() if name == "alda_1gpu"]
    changed = sum(not v for entry in same.values() for v in entry.values())
    write_note(
        f"LaborArray(1) with the flag / without: {min(ratios):.2f}x..{max(ratios):.2f}x over "
        f"{len(ratios)} workloads; {changed} result(s) changed bytes with the flag"
        if ratios else "nothing to compare"
    )
    print(json.dumps(cost, indent=2))
    sys.exit(0)

sys.path.insert(0, str(Path(options.root) / "benchmarks"))
import alda as bench  # noqa: E402  (it simulates 8 CPU devices for itself; the GPU stays the default)
import _machine  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from liam_core import digest  # noqa: E402
from liam_core.alda import LaborArray  # noqa: E402

device = jax.devices()[0]
if device.platform != "gpu":
    sys.exit(f"the default device is {device}, not a GPU")

rng = np.random.default_rng(0)  # alda.py's data
x = rng.standard_normal((options.rows, 64)).astype(np.float32)
y = np.sin(x[:, :1] + 0.5 * x[:, 1:2]).astype(np.float32)
params = bench.init_mlp(jax.random.key(0))
x1, y1 = jax.device_put(x, device), jax.device_put(y, device)

jit_sum = jax.jit(lambda a: jnp.sum(a, axis=0))  # alda.py's jit_1dev baselines
jit_mean = jax.jit(lambda a: jnp.mean(a, axis=0))
jit_cov = jax.jit(lambda a: jnp.cov(a, rowvar=False))
jit_gram = jax.jit(lambda a: a.T @ a)
jit_vag = jax.jit(lambda p, a, b: jax.value_and_grad(bench.batch_loss_sum)(p, a, b))
base = {
    "sum": lambda: jit_sum(x1),
    "mean": lambda: jit_mean(x1),
    "covariance": lambda: jit_cov(x1),
    "gram": lambda: jit_gram(x1),
    "value_and_grad": lambda: jit_vag(params, x1, y1),
}
systems = {"alda_1gpu": LaborArray(1), "alda_fast_1gpu": LaborArray(1, fast=True)}
runs = {name: bench.alda_workloads(labor, x, y, params) for name, labor in systems.items()}

report = {
    "label": options.label,
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "rows": options.rows,
    "columns": 64,
    "chunk_size": systems["alda_1gpu"].chunk_size,
    "repeats": options.repeats,
    "device": str(device),
    "device_kind": device.device_kind,
    "machine": _machine.describe(),
    "workloads": {},
}
for workload in options.workloads.split(","):
    candidates = {"jit_1gpu": base[workload], **{name: run[workload] for name, run in runs.items()}}
    times = bench.time_rounds(candidates, options.repeats)
    median_ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    report["workloads"][workload] = {
        "median_ms": {name: round(ms, 3) for name, ms in median_ms.items()},
        "alda_1gpu_over_jit_1gpu": round(median_ms["alda_1gpu"] / median_ms["jit_1gpu"], 3),
        "alda_fast_1gpu_over_jit_1gpu": round(
            median_ms["alda_fast_1gpu"] / median_ms["jit_1gpu"], 3
        ),
        "digests": {name: digest(run()) for name, run in candidates.items()},
    }
    print(workload, json.dumps(report["workloads"][workload]["median_ms"]), flush=True)
    Path(options.out).write_text(json.dumps(report, indent=2) + "\n")
if options.bandwidth:
    report["device_memory_bandwidth"] = _machine.device_memory_bandwidth()
    print("device_memory_bandwidth", json.dumps(report["device_memory_bandwidth"]), flush=True)
Path(options.out).write_text(json.dumps(report, indent=2) + "\n")
ratios = [entry["alda_1gpu_over_jit_1gpu"] for entry in report["workloads"].values()]
bandwidth = report.get("device_memory_bandwidth", {}).get("bytes_per_second")
write_note(
    f"LaborArray(1) / jit: {min(ratios):.2f}x..{max(ratios):.2f}x over {len(ratios)} workloads"
    + (f"; device copy {bandwidth / 1e12:.2f} TB/s" if bandwidth else "")
)
PY

# ---------------------------------------------------------------- the steps

MATRIX_CAP=${GPU_BENCH_MATRIX_S:-100}
ALDA_CAP=${GPU_BENCH_ALDA_S:-60}
SERVE_CAP=${GPU_BENCH_SERVE_S:-90}
ALGEBRA_CAP=${GPU_BENCH_ALGEBRA_S:-300}

export JAX_PLATFORMS=$GPU_PLATFORMS

rm -f "$RESULTS"/{determinism,alda,serve,algebra}.json "$LOGS"/alda-*.json
if needs determinism jax numpy equinox optax liam_core; then
    budget=$(($(left) - KILL_AFTER_S - RESERVE_S))
    ((budget > MATRIX_CAP)) && budget=$MATRIX_CAP
    # The driver stops its workers itself 5 s before its own timeout.
    run_step determinism "$MATRIX_CAP" "$LOGS/determinism.note" -- \
        "$PY" "$WORK/matrix.py" "$ROOT" "$RESULTS/determinism.json" "$LOGS" \
        $((budget - 5)) "$DET_FLAGS" "$GPU_PLATFORMS" "$LOGS/determinism.note" "$GPU_COUNT"
fi

if needs alda jax numpy equinox optax scipy liam_core; then
    run_step alda-det-ops "$ALDA_CAP" "$LOGS/alda-det-ops.note" -- \
        env XLA_FLAGS="$DET_FLAGS" "$PY" "$WORK/alda_gpu.py" --root "$ROOT" --label "XLA_FLAGS=$DET_FLAGS" \
        --out "$LOGS/alda-deterministic-ops.json" --note "$LOGS/alda-det-ops.note"
    run_step alda-default "$ALDA_CAP" "$LOGS/alda-default.note" -- \
        "$PY" "$WORK/alda_gpu.py" --root "$ROOT" --label "default XLA flags" --bandwidth \
        --out "$LOGS/alda-default.json" --note "$LOGS/alda-default.note"
    if [[ -s $LOGS/alda-deterministic-ops.json && -s $LOGS/alda-default.json ]]; then
        run_step alda-cost 30 "$LOGS/alda-cost.note" -- \
            "$PY" "$WORK/alda_gpu.py" --root "$ROOT" --out "$RESULTS/alda.json" \
            --note "$LOGS/alda-cost.note" \
            --compare "$LOGS/alda-deterministic-ops.json" "$LOGS/alda-default.json"
    else
        record alda-cost failed 0 "needs both ALDA runs"
    fi
fi

# (c) serving: --quick (tiny counts) and no MLServer (its venv needs a package index and
# minutes). Its HTTP servers run on the CPU (serve.py starts them with JAX_PLATFORMS=cpu);
# the in-process rows are the GPU's.
if needs serve jax numpy equinox hydra omegaconf uvicorn httptools uvloop starlette orjson \
    prometheus_client flatbuffers liam_core; then
    run_step serve "$SERVE_CAP" "$LOGS/serve.note" -- \
        "$PY" benchmarks/serve.py --quick --no-mlserver --out "$RESULTS/serve.json"
    [[ -s $RESULTS/serve.json ]] && on_gpu "$RESULTS/serve.json" && append_note "$("$PY" - "$RESULTS/serve.json" 2>/dev/null <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
mlp = report["in_process"]["mlp_64x256x256x8"]["contenders"]
http = report["http_concurrency_1"].get("liam_core_delay0", {}).get("json", {})
print(
    f"in process, MLP batch 1: Predictor.run p50 {mlp['predictor_run']['p50_us']:.0f} us, "
    f"jax.jit p50 {mlp['jax_jit']['p50_us']:.0f} us"
    + (f"; HTTP c=1 p50 {http['p50_us']:.0f} us (server on CPU)" if http else "")
)
PY
)"
fi

# (a) the algebra: the numpy/scipy/scikit-learn contenders and the float64 errors at 1e5 rows
# only (at 1e6 they alone take minutes: 15 s a numpy spectrum); liam-core and plain JAX at
# every size. It writes its JSON after every case, so a timeout keeps what it measured.
if needs algebra jax numpy scipy sklearn liam_core; then
    run_step algebra "$ALGEBRA_CAP" "$LOGS/algebra.note" -- \
        "$PY" benchmarks/algebra.py --sizes 100000 1000000 4000000 --oracle-rows 100000 \
        --repeats 7 --out "$RESULTS/algebra.json"
    [[ -s $RESULTS/algebra.json ]] && on_gpu "$RESULTS/algebra.json" && append_note "$("$PY" - "$RESULTS/algebra.json" \
        2>/dev/null <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
cases = report["cases"]
pipeline = [c for c in cases if c["stage"] == "pipeline"]
best = max(pipeline, key=lambda c: c["rows"]) if pipeline else None
print(
    f"{len(cases)} of 15 cases in algebra.json"
    + (f"; pipeline at {best['rows']:.0e} rows "
       f"{best['contenders']['liam-core']['median_seconds'] * 1e3:.1f} ms" if best else "")
)
PY
)"
fi

summary
