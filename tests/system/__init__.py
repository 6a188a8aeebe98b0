"""System tests: no root; the CLI as a whole (child processes, every help text, bad input), graphviz, the fuzzers."""
