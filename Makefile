# The README's two commands. Both install what is missing (idempotently) and start what they need.
.PHONY: run test fmt test-edge test-topology bench-edge bench-edge-zipf bench-origin bench-writes bench-load fuzz

run:
	scripts/run.sh

test:
	scripts/test.sh

fmt:
	cargo fmt --all

test-edge:
	scripts/test-edge.sh

test-topology:
	scripts/topology.sh

bench-edge:
	scripts/bench-edge.sh

bench-edge-zipf:
	scripts/bench-edge-zipf.sh

bench-load:
	scripts/bench-load.sh

bench-origin:
	scripts/bench-origin.sh

bench-writes:
	scripts/bench-writes.sh

fuzz:
	scripts/fuzz.sh run 600
