# Every target does its own set-up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: check-install install demo demo-seed demo-search quality-gpu train-demo explore compare compare-arch bench bench-gpu test test-all test-db test-browser-deps lint preview dashboard clean

install: $(STAMP)

# The stamp is keyed on pyproject.toml: a second run does not reinstall, an edited pyproject does.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The main job at demo size with the best recipe measured (experiment=demo = quick + sharp): the study
# (design, GP + EI, pruning), then the refit of the best pair. Its folder is outputs/tune/demo: a second run
# resumes the finished study and says where its report is.
demo: install
	$(BIN)/python tune.py experiment=demo

# The same study with the seed's recipe (fixed decoder, exponential lr, clipping): outputs/tune/quick.
demo-seed: install
	$(BIN)/python tune.py experiment=quick

# The search preset at demo size (experiment=search_demo): lr, the feature map, latent, hidden and the number of
# extra faces searched by Optuna's GPSampler in trials of 300 steps, halved at 100, then a refit: outputs/tune/search_demo.
demo-search: install
	$(BIN)/python tune.py experiment=search_demo

# The face explorer in the browser: make explore RUN=outputs/train/<run> (a run, a .ckpt or a study folder).
explore: install
	@test -n "$(RUN)" || { echo "error: RUN=path/to/run, .ckpt or study folder is required" >&2; exit 2; }
	$(BIN)/pip install --quiet -e '.[app]'
	$(BIN)/python -m lego_vae.explore checkpoint=$(RUN)

# One training run of the same preset, no tuning.
train-demo: install
	$(BIN)/python train.py experiment=quick

# mlp against conv at the same budget: one table (README, "Quality, side by side").
compare: install
	$(BIN)/python -m bench.compare --steps 990

# The quality sweep on one GPU: every recipe at once, equal wall time, judged (bench/quality_gpu.py, ~6 min).
quality-gpu: install
	$(BIN)/python -m bench.quality_gpu

# resconv beside the sharp run, at equal epochs and at equal wall time (README, "A residual conv net").
compare-arch: install
	$(BIN)/python -m bench.compare --runs sharp --arch resconv --name compare-arch --picture docs/compare-arch.png

# The speed and sample-efficiency benchmarks (bench/*.py), each also runnable as python -m bench.NAME.
BENCHES := cpu_speed trainer_overhead worker_startup data_pipeline sampler_overhead pruning_savings sample_efficiency projection explore_latency host_sync
bench: install
	for b in $(BENCHES); do $(BIN)/python -m bench.$$b || exit 1; done

# The device check (bench/gpu.py): 8 min on one GPU; writes bench/results/gpu.json and gpu.md.
bench-gpu: install
	$(BIN)/python -m bench.gpu

# Two pytest workers (pytest-xdist), a test module each at a time (loadscope: a module's fixtures are made once):
# many tests wait on subprocesses, so two workers use two cores better than one. One BLAS/OpenMP thread each
# (torch's default is one per core): two workers and their commands on two cores, not four threads or more.
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadscope

test: install
	$(PYTEST)

test-all: install
	$(PYTEST) -m ''

# A local PostgreSQL server for the multi-worker tuning test; prints its URL (needs root, installs Debian's postgresql).
test-db:
	@bash scripts/test-postgres.sh

# Headless Chromium for the explorer's browser test; prints its path (needs root, installs Debian's chromium).
test-browser-deps:
	@bash scripts/test-chromium.sh

lint: install
	$(BIN)/ruff check .

# A non-editable `pip install .` in a fresh venv (its dependencies linked from .venv), every command run from
# outside the checkout (CI runs it).
check-install: install
	bash scripts/check-install.sh $(PYTHON) $(VENV)

preview: install
	$(BIN)/python -m lego_vae.data.synthetic --preview docs/faces.png
	$(BIN)/python -m lego_vae.data.ldraw.render --preview docs/ldraw-heads.png --size 64

# optuna-dashboard on a study's storage: make dashboard [STUDY=lego-vae] [STORAGE=postgresql://...]
STUDY   ?= lego-vae
STORAGE ?= sqlite:///outputs/tune/$(STUDY)/study.db
dashboard: install
	$(BIN)/pip install --quiet -e '.[dashboard]'
	$(BIN)/optuna-dashboard $(STORAGE)

clean:
	rm -rf outputs .cache .pytest_cache
