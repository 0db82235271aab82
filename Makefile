# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# The CPU wheel keeps CI small; on a GPU cluster install a CUDA torch into the venv
# first (or set TORCH_SPEC) and pip leaves it alone.
TORCH_SPEC ?= torch==2.13.0
CORES  ?= 2
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast lint dag profile-link bench clean-demo
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

# The embedded default: generated genome + tasks, the whole DAG, no network.
demo: setup
	$(BIN)/snakemake --configfile config/demo.yaml --cores $(CORES) all
	@echo "demo done: see results/demo/ and results/report/"

test: setup
	$(BIN)/python -m pytest -q --durations=15

lint: setup
	$(BIN)/snakemake --lint

# Makes `snakemake --profile slurm ...` resolve the project's profile by its bare name.
profile-link:
	mkdir -p $(HOME)/.config/snakemake
	ln -sfn $(CURDIR)/profiles/slurm $(HOME)/.config/snakemake/slurm
	@echo "linked $(HOME)/.config/snakemake/slurm -> $(CURDIR)/profiles/slurm"

dag: setup
	$(BIN)/snakemake --configfile config/demo.yaml --rulegraph | dot -Tpng > results/rulegraph.png

clean-demo:
	rm -rf resources/demo data/demo data/pretrain results logs benchmarks
