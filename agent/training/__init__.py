"""Training, evaluating and retraining the anomaly model: the commands and tools that replay
files and build from config, so they sit above replay and wiring. The model itself (features,
files, scoring: agent/model/) and its detector (agent/detect/model.py) stay below."""
