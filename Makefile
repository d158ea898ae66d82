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

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || "$$(devtools/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip check
	touch $(STAMP)

clean:
	rm -rf $(VENV) .run .test-db.sqlite3* .bench-db.sqlite3* staticfiles bench-results
