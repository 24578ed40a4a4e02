# The session-end scan for leaked secrets (keys in logs, error bodies, metrics, traces, stored state):
# tests/secrets/plugin.py. Off with `-p no:tests.secrets.plugin`.
pytest_plugins = ["tests.secrets.plugin"]
