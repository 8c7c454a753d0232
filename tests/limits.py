"""Limits shared by the tests, in a module that imports nothing (tests/test_hub.py runs its steps as scripts where
`hf_minimal` must not be imported, so this cannot live in conftest.py, which imports it)."""

# Seconds a subprocess may take: a guard against hangs, never a speed bound. The suite must pass with other work on
# the cores (a job that takes 30 s on idle cores takes minutes beside two busy processes).
TIMEOUT = 1200
