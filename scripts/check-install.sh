#!/usr/bin/env bash
# A non-editable `pip install .` in a fresh venv, and every command run from a folder outside the checkout:
# the configs ship inside the package, the console scripts exist, and a 1-epoch run trains and evaluates.
# The runtime dependencies (no extras) are linked from the dev venv by scripts/link-deps.py and named by a .pth
# line, not installed a second time: a second CUDA torch is 6 GB, more than a CI machine's disk sometimes has.
# `pip check` then proves the installed package's requirements are met by exactly those.
# Usage: scripts/check-install.sh [PYTHON] [DEV_VENV]   (CI: make check-install, after make install)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
dev="${2:-$repo/.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$repo/build"' EXIT  # pip builds in the checkout: leave no build/ behind
"$python" -m venv "$work/venv"
bin="$work/venv/bin"
"$dev/bin/python" "$repo/scripts/link-deps.py" lego-vae "$work/deps"
echo "$work/deps" > "$("$bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/lego-vae-deps.pth"
"$bin/pip" install --quiet --upgrade pip
"$bin/pip" uninstall --quiet --yes setuptools  # the venv's own, older than torch asks; the linked one serves
"$bin/pip" install --quiet --no-deps "$repo"
"$bin/pip" check
cd "$work"   # outside the checkout: nothing may be found through the current folder
test "$("$bin/python" -c 'import lego_vae; print(lego_vae.__file__)')" = "$work/venv/lib/python$("$bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages/lego_vae/__init__.py"
tiny=(data.image_size=16 data.num_images=64 data.batch_size=16 model.hidden=16 model.latent=2 model.channels=4
      log.progress=plain eval.iwae_k=2 eval.judge.num_train=64 eval.judge.num_holdout=32 eval.judge.epochs=1
      "paths.output_root=$work/out" "data.cache_dir=$work/cache")
for cmd in train tune evaluate generate explore; do
  "$bin/lego-vae-$cmd" --help > /dev/null
done
"$bin/lego-vae-train" "${tiny[@]}" trainer.max_epochs=1 hydra.run.dir="$work/out/run"
test -f "$work/out/run/checkpoints/best.ckpt" && test -f "$work/out/run/metrics.json"
"$bin/lego-vae-evaluate" checkpoint="$work/out/run" out_dir="$work/out/again" "data.cache_dir=$work/cache" \
  hydra.run.dir="$work/out/evaluate"
test -f "$work/out/again/report.html"
"$bin/lego-vae-generate" checkpoint="$work/out/run" n=2 pairs=1 traversal.dims=1 hydra.run.dir="$work/out/generate"
test -f "$work/out/generate/morph.gif"
"$bin/lego-vae-tune" "${tiny[@]}" study.n_trials=2 study.n_initial=2 study.epochs=1 refit.epochs=1
test -f "$work/out/tune/lego-vae/best.yaml"
"$bin/python" -m lego_vae.train --help > /dev/null
# The explorer needs the [app] extra; without it, one line and exit status 2.
set +e
"$bin/lego-vae-explore" checkpoint="$work/out/run" 2> "$work/explore.err"; status=$?
set -e
test "$status" -eq 2 && grep -q "^error: the explorer needs gradio" "$work/explore.err"
echo "check-install: a non-editable install ran train, evaluate, generate, tune and explore from $work"
