# One entry point for the common tasks; each target calls a script under scripts/.
.DEFAULT_GOAL := help
.PHONY: help up test bench lint fmt

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

up: ## start the whole system (eva up; ARGS="..." are passed on), installing what is missing
	bash scripts/up.sh $(ARGS)

test: ## run fmt check, clippy and every test, installing what is missing
	bash scripts/test.sh

bench: ## run the benchmark (eva-bench; ARGS="...") and print its figures
	bash scripts/bench.sh $(ARGS)

lint: ## check formatting and run clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	cargo fmt --all
