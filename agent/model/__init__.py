"""The IsolationForest model: learn normal traffic per time slot, flag the abnormal, explain.

    config.py     ModelConfig, the `model:` section of the agent config
    calendar.py   business days (chinese-calendar + operator dates), month-end, filing period
    features.py   the named, versioned vector of a time slot; slots from closed windows
    profile.py    what is normal at each hour; each measurement's deviation (z-score)
    core.py       Model: profile + scaler/IsolationForest + threshold; scoring
    trees.py      the scaler and forest as numpy arrays: what the agent scores with
    forest.py     the only module importing scikit-learn (lazily): fit, score, export arrays
    files.py      skops + npz + metadata files, safe loading, refusal, atomic save, rollback
    train.py      fit_model: slots in, Model out; TrainingRefused
    history.py    training data: log files replayed (.gz too) or stored windows; alert spans
    detector.py   ModelDetector (kind "model") and build_model_detector
    explain.py    zh/en text: the measurements off their hour's normal, with normal ranges
    retrain.py    scheduled retraining from stored windows, in a child process (Retrainer)
    commands.py   `invoice-agent train` and `invoice-agent evaluate`
    evaluate.py   detectors over windows without files; recall/delay/false alerts
    synthetic.py  weeks of window-level traffic with labelled incidents (bench, tests)
    demo_model.py rebuilds the shipped models/demo.skops

Loading a model and scoring import numpy, never scikit-learn, skops or scipy (~110 MiB of
RSS, 1.6 s): only training (`train`, the retraining child process) and reading a .skops file
for inspection (files.load_pipeline) do. See docs/model.md.
"""
