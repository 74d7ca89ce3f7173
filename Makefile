# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs ktdiff, builds the fixture models, runs the seed comparison
#   make test   creates .venv, installs ktdiff, runs the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KTDIFF := $(VENV)/bin/ktdiff
MODELS := fixtures/models

.PHONY: demo test models bench acceptance clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

models: $(VENV)/.installed
	$(PY) fixtures/build.py $(MODELS)

demo: models
	@echo; echo '$$ ktdiff compare fixtures/models/seed.keras fixtures/seed_torch.py:Net'
	@$(KTDIFF) compare $(MODELS)/seed.keras fixtures/seed_torch.py:Net; code=$$?; \
	  echo "(exit code $$code: 1 = the port differs)"; test $$code -le 1
	@echo; echo '$$ ktdiff compare fixtures/models/seed.keras fixtures/faithful_torch.py:FaithfulNet'
	@$(KTDIFF) compare $(MODELS)/seed.keras fixtures/faithful_torch.py:FaithfulNet; code=$$?; \
	  echo "(exit code $$code: 0 = equivalent)"; test $$code -le 1

# two pytest workers (pytest-xdist), each test file on one of them; the models are built first, once
test: models
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: models
	$(PY) benchmarks/bench_compare.py

# `ktdiff compare --verify` on every fixture pair: verdict, numeric check, time, peak memory (a few minutes)
acceptance: models
	$(PY) benchmarks/verify_fixtures.py

clean:
	rm -rf $(VENV) $(MODELS) .pytest_cache *.egg-info
