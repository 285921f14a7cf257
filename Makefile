# Two entry points: `make demo` and `make test`. Both create (or reuse) .venv from requirements.txt.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
DEMO := demo_data

.PHONY: demo test venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	@if ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		rm -rf $(VENV); \
		$(PY) -m venv $(VENV) && $(BIN)/python -m pip --version >/dev/null 2>&1 || { \
			echo "python -m venv unavailable; falling back to virtualenv"; rm -rf $(VENV); \
			$(PY) -m pip install -q --user virtualenv && $(PY) -m virtualenv -q $(VENV); }; \
	fi
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/python make_demo_corpus.py --kind iemocap --out $(DEMO)/iemocap --n 200 --seed 0 --if-missing
	$(BIN)/python corpus_info.py --corpus iemocap --root $(DEMO)/iemocap
	$(BIN)/python demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(DEMO)
