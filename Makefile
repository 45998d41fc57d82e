# The README's two commands. Both install what is missing (idempotently) and start what they need.
.PHONY: run test fmt

run:
	scripts/run.sh

test:
	scripts/test.sh

fmt:
	cargo fmt --all
