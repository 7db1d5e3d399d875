# The two commands a new user needs:  make up   and   make test
.PHONY: setup setup-system up test lint sim-long bench clean

setup:
	bash scripts/setup.sh

setup-system:
	bash scripts/setup.sh --system

up: setup
	.venv/bin/paddock up

test: setup-system
	bash scripts/test.sh

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

sim-long: setup
	.venv/bin/paddock sim consensus --seeds 1000 --nodes 3 --mode safety
	.venv/bin/paddock sim consensus --seeds 1000 --nodes 5 --mode safety
	.venv/bin/paddock sim consensus --seeds 1000 --nodes 3 --mode liveness
	.venv/bin/paddock sim consensus --seeds 1000 --nodes 5 --mode liveness

bench: setup
	.venv/bin/python bench/consensus_bench.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
