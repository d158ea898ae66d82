# The two commands of the README: `make run` (the whole system) and `make test` (the whole suite).
# Each creates the virtual environment and installs what it needs first.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install clean

run: $(STAMP)
	$(PY) -m devtools.run

test: $(STAMP)
	$(PY) manage.py test

# The benchmark suite (docs/performance.md). BENCH_ARGS="--quick" for a smoke run; set
# DATABASE_URL to a PostgreSQL database to measure on PostgreSQL (it creates bench_<name>).
bench: $(STAMP)
	$(PY) -m bench --write-docs $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(STAMP)

# The first install takes a minute or two: say what each step does and let pip show its progress.
$(STAMP): requirements.txt requirements-dev.txt
	@if [ ! -x $(PY) ]; then \
		python="$$(devtools/find-python)" || exit 1; \
		echo "==> Creating the virtual environment $(VENV) with $$python ($$("$$python" --version 2>&1))"; \
		"$$python" -m venv $(VENV) || exit 1; \
	fi
	@echo "==> Installing the pinned requirements (requirements-dev.txt) into $(VENV)"
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	@echo "==> Checking that the installed packages' dependencies agree"
	$(PY) -m pip check
	@touch $(STAMP)
	@echo "==> $(VENV) is ready."

clean:
	rm -rf $(VENV) .run .test-db.sqlite3* .bench-db.sqlite3* staticfiles bench-results
