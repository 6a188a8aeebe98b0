"""Kernel tests: real namespaces, links and labs, checked against oracles nobody here wrote; they need root."""
